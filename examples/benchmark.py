"""
The seed's four figures for this machine: the time for 1,000 concurrent requests, the success
rate, the retry rate and the memory, against the embedded local server with connection faults.

Each request goes to ``/close``, so the server closes its connection after answering and every
request opens a new one. One request in eight goes to a second server, a replica that is down
when the requests start (``LocalServer.stop_listening``: its port refuses connections, a true
``ECONNREFUSED``) and comes back ``DOWN_FOR`` seconds later (``start_listening``): those
requests are retried (connection errors only, the default policy, up to 10 retries from 10 ms
of backoff) until it answers. Client and servers share one process and one event loop, so the
time includes the servers' work; ``benchmarks/run.py`` measures the client alone. ``main()`` is
backend-neutral (anyio). Run it with
``python examples/benchmark.py [--requests N] [--backend trio]``.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import anyio
import httpx

from typed_async_client import AsyncResilientClient, RequestContext, RequestStatus
from typed_async_client.testing import LocalServer, refusing_url

REQUESTS = 1_000
REPLICA_SHARE = 8  # one request in eight goes to the replica
DOWN_FOR = 0.5  # seconds the replica refuses connections at the start


def peak_rss_mib() -> float | None:
    """The process's peak resident memory so far, in MiB (None where unknown)."""
    try:
        import resource  # not on Windows
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


async def main(requests: int = REQUESTS) -> dict[str, Any]:
    """Send ``requests`` requests at once through connection faults; return the four figures."""
    context = RequestContext(max_retries=10, base_delay=0.01, max_delay=0.5, total_timeout=30)
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    rss_before = peak_rss_mib()
    async with LocalServer() as primary, LocalServer() as replica:
        restartable = hasattr(replica, "stop_listening")
        with refusing_url() as refused:
            if restartable:
                await replica.stop_listening()
                down = replica.url_for("/close")
            else:
                # An older LocalServer: those requests go to a port that always refuses, and
                # fail once their retries are spent.
                down = refused
            urls = [
                down if i % REPLICA_SHARE == REPLICA_SHARE - 1 else primary.url_for("/close")
                for i in range(requests)
            ]
            async with AsyncResilientClient(limits=limits, default_context=context) as client:

                async def restart_replica() -> None:
                    await anyio.sleep(DOWN_FOR)
                    await replica.start_listening()

                started = time.perf_counter()
                async with anyio.create_task_group() as tg:
                    if restartable:
                        tg.start_soon(restart_replica)
                    async with client.batch() as batch:
                        for url in urls:
                            await batch.get(url)
                elapsed = time.perf_counter() - started
                results = batch.results
                stats = client.stats()
    succeeded = sum(1 for result in results if result.status is RequestStatus.SUCCESS)
    faults = Counter(
        attempt.error for result in results for attempt in result.history if attempt.error
    )
    rss_after = peak_rss_mib()
    return {
        "requests": len(results),
        "seconds": round(elapsed, 3),
        "requests_per_second": round(len(results) / elapsed, 1),
        "success_rate": succeeded / len(results),
        "retry_rate": stats.retries / stats.attempts if stats.attempts else 0.0,
        "retries": stats.retries,
        "attempts": stats.attempts,
        "faults": dict(faults),
        "peak_rss_mib": None if rss_after is None else round(rss_after, 1),
        "rss_growth_mib": None
        if rss_after is None or rss_before is None
        else round(rss_after - rss_before, 1),
        "fault_mode": f"1 request in {REPLICA_SHARE} to a replica down for {DOWN_FOR} s"
        if restartable
        else f"1 request in {REPLICA_SHARE} to a port that always refuses",
    }


def request_count(text: str) -> int:
    """An argparse type: a number of requests from 1 to 100,000."""
    value = int(text)
    if not 1 <= value <= 100_000:
        raise argparse.ArgumentTypeError(f"must be between 1 and 100000, got {value}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python examples/benchmark.py",
        description="Time concurrent requests through connection faults on a local server.",
    )
    parser.add_argument(
        "--requests", type=request_count, default=REQUESTS, help=f"requests to send ({REQUESTS:,})"
    )
    parser.add_argument(
        "--backend", choices=["asyncio", "trio"], default="asyncio", help="event loop (asyncio)"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    figures = anyio.run(functools.partial(main, requests=args.requests), backend=args.backend)
    print(f"backend:      {args.backend}")
    print(
        f"{figures['requests']:,} concurrent requests: {figures['seconds']:.2f} s "
        f"({figures['requests_per_second']:,.0f} req/s)"
    )
    print(f"success rate: {figures['success_rate']:.1%}")
    print(
        f"retry rate:   {figures['retry_rate']:.1%} of attempts "
        f"({figures['retries']} retries for {figures['attempts']} attempts)"
    )
    if figures["peak_rss_mib"] is not None:
        print(
            f"memory:       {figures['peak_rss_mib']:.1f} MiB peak RSS "
            f"(+{figures['rss_growth_mib']:.1f} MiB during the run)"
        )
    else:
        print("memory:       not measured on this platform")
    seen = ", ".join(f"{name} x{count}" for name, count in figures["faults"].items()) or "none"
    print(f"faults:       {figures['fault_mode']}: {seen}")
