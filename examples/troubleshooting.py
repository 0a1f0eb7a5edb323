"""
Troubleshooting and good practice (README "Dépannage et Bonnes Pratiques"), each problem shown
with a measurement rather than a comment.

1. An event queue too small for slow callbacks drops events (counted in ``stats()``).
2. Results pile up unless bounded (``max_results``) or cleaned (``clear_old_results``).
3. Too many concurrent requests: bound them with a capacity limiter before submitting.
4. Reuse one client (the seed's ``ApiService``) instead of one client per call.
5. The seed's "optimal configuration".

The seed uses ``asyncio.Semaphore``, ``asyncio.sleep``, ``asyncio.create_task`` and
``asyncio.gather``; here they are an ``anyio.CapacityLimiter``, ``anyio.sleep`` and task groups,
as in ``docs/usage.md``, so the example runs on asyncio and trio alike. Run it with
``python examples/troubleshooting.py [--backend trio]``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import anyio
import httpx

from typed_async_client import (
    AsyncEvent,
    AsyncResilientClient,
    EventType,
    RequestContext,
    RequestHandle,
    create_async_resilient_client,
)
from typed_async_client.testing import LocalServer

# --- 1. Event queue overflow -------------------------------------------------------------------


async def wait_for(handle: RequestHandle) -> None:
    """Await one request handle (a task group's task; ``start_soon`` wants a coroutine)."""
    await handle


async def events_dropped(base_url: str, event_queue_size: int, requests: int = 30) -> int:
    """
    Send ``requests`` requests while the only SUCCESS callback is stuck; return the drops.

    The callback waits for a gate that opens once every request has ended: it stands for a
    slow sink (a metrics server that is down). Requests never wait for callbacks, so the
    events that do not fit in the queue meanwhile are dropped and counted.
    """
    gate = anyio.Event()

    async def stuck_callback(event: AsyncEvent) -> None:
        await gate.wait()

    async with AsyncResilientClient(event_queue_size=event_queue_size) as client:
        client.add_event_callback(EventType.SUCCESS, stuck_callback)
        try:
            handles = [await client.get(f"{base_url}/data") for _ in range(requests)]
            async with anyio.create_task_group() as tg:
                for handle in handles:
                    tg.start_soon(wait_for, handle)
        finally:
            # Open the gate whatever happens: closing the client waits for the callbacks to
            # receive the events already queued, so a callback stuck forever blocks close().
            gate.set()
    return client.stats().events_dropped


# --- 2. Results that pile up ------------------------------------------------------------------


async def cleanup_task(
    client: AsyncResilientClient,
    interval: float = 300.0,
    max_age: float = 3600.0,
    max_rounds: int = 1_000,
) -> int:
    """Every ``interval`` seconds, remove results older than ``max_age``; return the total."""
    total = 0
    for _ in range(max_rounds):
        if client.is_closed:
            break
        await anyio.sleep(interval)  # every 5 minutes by default
        cleaned = client.clear_old_results(max_age=max_age)  # 1 hour by default
        if cleaned > 0:
            print(f"🧹 Cleaned {cleaned} old results")
            total += cleaned
    return total


async def bounded_results(base_url: str) -> dict[str, int]:
    """Show the two bounds: ``max_results`` evicts, ``clear_old_results`` cleans by age."""
    async with AsyncResilientClient(max_results=3) as client:
        for i in range(5):
            await (await client.get(f"{base_url}/data", context=RequestContext(request_id=f"r{i}")))
        kept, evicted = client.results_count, client.stats().results_evicted

        cleaned = 0

        async def run_cleaner() -> None:
            nonlocal cleaned
            cleaned = await cleanup_task(client, interval=0.05, max_age=0, max_rounds=1)

        # The cleaner runs in the background of a task group, which waits for it.
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_cleaner)
    return {"kept": kept, "evicted": evicted, "cleaned": cleaned}


# --- 3. Too many concurrent requests --------------------------------------------------------


async def bounded_concurrency(base_url: str, requests: int = 100, limit: int = 10) -> int:
    """Send ``requests`` requests, at most ``limit`` at a time; return the peak in flight."""
    # ❌ Problem: submitting everything at once
    #     for i in range(10000):  # Too many!
    #         task = await client.get(f"https://api.com/{i}")
    # ✅ Solution: a capacity limiter, acquired *before* submitting
    limiter = anyio.CapacityLimiter(limit)  # at most `limit` requests in flight
    peak = 0

    async def limited_request(
        client: AsyncResilientClient, url: str, context: RequestContext
    ) -> None:
        nonlocal peak
        async with limiter:
            task = await client.get(url, context=context)
            peak = max(peak, client.active_tasks_count)
            await task

    async with create_async_resilient_client() as client, anyio.create_task_group() as tg:
        for i in range(requests):
            tg.start_soon(
                limited_request,
                client,
                f"{base_url}/items/{i}",
                RequestContext(request_id=f"item_{i}"),
            )
    return peak


# --- 4. Client reuse ----------------------------------------------------------------------------


async def bad_example(base_url: str) -> httpx.Response:
    """❌ A new client (and a new connection) for every call."""
    async with create_async_resilient_client() as client:
        task = await client.get(f"{base_url}/data")
        return await task


class ApiService:
    """✅ One client, opened once, shared by every call."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.client: AsyncResilientClient | None = None

    async def __aenter__(self) -> ApiService:
        self.client = AsyncResilientClient()
        await self.client._initialize_client()  # alias of open()
        return self

    async def __aexit__(self, *args: object) -> None:
        if self.client:
            await self.client.close()

    async def get_data(self, endpoint: str) -> httpx.Response:
        if self.client is None:
            raise RuntimeError("use 'async with ApiService(...)' first")
        context = RequestContext(request_id=f"api_{endpoint}")
        task = await self.client.get(f"{self.base_url}/{endpoint}", context=context)
        return await task


async def client_reuse(server: LocalServer, calls: int = 5) -> dict[str, int]:
    """Count the connections the server accepted for ``calls`` calls, both ways."""
    before = server.connections
    for _ in range(calls):
        await bad_example(server.url)
    bad = server.connections - before

    before = server.connections
    async with ApiService(server.url) as service:
        for endpoint in ("users", "posts", "comments", "users", "posts")[:calls]:
            await service.get_data(endpoint)
    good = server.connections - before
    return {"new_client_each_call": bad, "reused_client": good}


# --- 5. The seed's optimal configuration --------------------------------------------------


def optimal_client() -> AsyncResilientClient:
    """A client configured for high throughput, as the seed suggests."""
    return AsyncResilientClient(
        timeout=httpx.Timeout(
            connect=5.0,  # connect fast
            read=30.0,  # generous reads
            write=10.0,  # moderate writes
            pool=5.0,  # wait little for a pooled connection
        ),
        limits=httpx.Limits(
            max_connections=100,  # many connections
            max_keepalive_connections=50,  # many kept alive
        ),
        event_queue_size=5000,  # a generous event queue
        headers={
            "Connection": "keep-alive",
            "Keep-Alive": "timeout=30, max=100",
        },
    )


async def main(base_url: str | None = None) -> dict[str, Any]:
    """
    Run every section against a local server (started here if ``base_url`` is None).

    Returns:
        One entry per section. ``"connections"`` (section 4) needs to count the connections the
        server accepted, so it is there only when this function started the server.
    """
    if base_url is None:
        async with LocalServer() as server:
            outcome = await run_sections(server.url)
            outcome["connections"] = await client_reuse(server)
    else:
        outcome = await run_sections(base_url)
    print(format_outcome(outcome))
    return outcome


def format_outcome(outcome: dict[str, Any]) -> str:
    """What each section measured, in English."""
    results = outcome["results"]
    lines = [
        f"1. events dropped: {outcome['dropped_small_queue']} with event_queue_size=10, "
        f"{outcome['dropped_large_queue']} with 1000",
        f"2. results: {results['kept']} kept, {results['evicted']} evicted (max_results=3), "
        f"{results['cleaned']} cleaned",
        f"3. peak in flight: {outcome['peak_in_flight']} (capacity limiter of 10)",
    ]
    if "connections" in outcome:
        connections = outcome["connections"]
        lines.append(
            f"4. connections: {connections['new_client_each_call']} with a new client per call, "
            f"{connections['reused_client']} with one reused client"
        )
    lines.append(f"5. optimal configuration: HTTP {outcome['optimal_status']}")
    return "\n".join(lines)


async def run_sections(base_url: str) -> dict[str, Any]:
    """Run sections 1, 2, 3 and 5 against ``base_url``."""
    outcome: dict[str, Any] = {}
    # 1. ❌ event_queue_size=10 is too small for a slow callback; ✅ 1000 is enough here.
    outcome["dropped_small_queue"] = await events_dropped(base_url, event_queue_size=10)
    outcome["dropped_large_queue"] = await events_dropped(base_url, event_queue_size=1000)
    outcome["results"] = await bounded_results(base_url)
    outcome["peak_in_flight"] = await bounded_concurrency(base_url, limit=10)
    async with optimal_client() as client:
        response = await (await client.get(f"{base_url}/data"))
        outcome["optimal_status"] = response.status_code
    return outcome


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python examples/troubleshooting.py",
        description="Common problems, each shown with a measurement.",
    )
    parser.add_argument(
        "--backend",
        choices=["asyncio", "trio"],
        default="asyncio",
        help="event loop (asyncio)",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    anyio.run(main, backend=args.backend)
