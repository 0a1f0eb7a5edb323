"""
The client in a trio program: ``trio.run``, a nursery, trio's cancel scopes, client-wide limits.

What it shows, section by section:

1. **A nursery of workers** sharing one client opened with ``max_concurrency=4`` (at most four
   requests in flight, across the whole client: submitting waits for a slot) and
   ``max_per_second=50`` (attempts evenly spaced, 20 ms apart). Waiting for either limit is
   visible in ``RequestResult.wait_time`` and ``stats().wait_time``.
2. **A deadline from trio.** A request submitted inside ``trio.move_on_after`` inherits the
   scope's deadline, even when it is awaited after the scope is left: a retry loop against a
   refusing port ends at that deadline with ``DeadlineExceededError`` (a ``TimeoutError``)
   carrying the last ``httpx.ConnectError``. ``RequestContext(inherit_deadline=False)`` opts out.
3. **A deadline of the request's own**: ``RequestContext(total_timeout=0.2)`` cuts an attempt in
   flight against a server that takes 30 s to answer.
4. **Cancelling.** ``handle.cancel()`` stops a request: it ends ``CANCELLED`` and awaiting it
   raises ``RequestCancelledError``. Cancelling the *wait* (a scope around ``await handle``,
   with the request submitted outside it) does not stop the request: it belongs to the client.
5. ``client.stats()``, printed.

Run it with ``python examples/trio_usage.py``: it starts a local test server and uses a loopback
port that refuses connections, so no network access is needed.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from typing import Any

import trio

from typed_async_client import (
    AsyncResilientClient,
    DeadlineExceededError,
    RequestCancelledError,
    RequestContext,
)
from typed_async_client.testing import LocalServer, refusing_url


async def nursery_of_workers(
    client: AsyncResilientClient, base_url: str, workers: int = 12
) -> dict[str, Any]:
    """``workers`` tasks each fetch one item; the client's limits pace them."""
    statuses: dict[int, int] = {}
    peak = 0

    async def worker(i: int) -> None:
        nonlocal peak
        handle = await client.get(f"{base_url}/items/{i}")  # waits for one of the 4 slots
        peak = max(peak, client.stats().in_flight)
        response = await handle
        statuses[i] = response.status_code

    async with trio.open_nursery() as nursery:
        for i in range(workers):
            nursery.start_soon(worker, i)
    print(f"1. {len(statuses)} workers done, peak in flight {peak} (max_concurrency=4)")
    return {"statuses": sorted(set(statuses.values())), "count": len(statuses), "peak": peak}


async def inherited_deadline(
    client: AsyncResilientClient, base_url: str, refused: str
) -> dict[str, Any]:
    """Requests submitted inside trio.move_on_after take its deadline (unless they opt out)."""
    stubborn = RequestContext(request_id="stubborn", max_retries=1_000, base_delay=0.02)
    with trio.move_on_after(0.3):
        handle = await client.get(refused, context=stubborn)
        inherited = handle.deadline == trio.current_effective_deadline()
        free = await client.get(
            f"{base_url}/delay/0.5", context=RequestContext(inherit_deadline=False)
        )
    # The scope is gone, its deadline stays with the request.
    try:
        await handle
        error: DeadlineExceededError | None = None
    except DeadlineExceededError as exc:
        error = exc
    assert error is not None
    print(
        f"2. {error.request_id}: ran out of time after {error.attempts} attempts "
        f"({type(error.last_error).__name__}); TimeoutError: {isinstance(error, TimeoutError)}"
    )
    opted_out = await free  # no deadline of its own: it outlived the scope
    print(f"   inherit_deadline=False: deadline {free.deadline}, status {opted_out.status_code}")
    return {
        "inherited": inherited,
        "is_timeout_error": isinstance(error, TimeoutError),
        "last_error": type(error.last_error).__name__,
        "retried": error.attempts > 1,
        "opted_out_deadline": free.deadline,
        "opted_out_status": opted_out.status_code,
    }


async def own_deadline(client: AsyncResilientClient, base_url: str) -> dict[str, Any]:
    """``total_timeout`` covers every attempt and sleep; here it cuts the first attempt."""
    handle = await client.get(
        f"{base_url}/delay/30", context=RequestContext(request_id="slow", total_timeout=0.2)
    )
    result = await handle.wait_result()  # never raises: the error is in the result
    error = result.error
    assert isinstance(error, DeadlineExceededError)
    print(f"3. {error}")
    return {
        "status": str(result.status),
        "timeout": error.timeout,
        "attempts": error.attempts,
        "last_error": error.last_error,
    }


async def cancelling(client: AsyncResilientClient, base_url: str) -> dict[str, Any]:
    """Cancel one request; give up waiting for another without cancelling it."""
    doomed = await client.get(f"{base_url}/delay/30", context=RequestContext(request_id="doomed"))
    await trio.sleep(0.05)  # let it start
    doomed.cancel()
    try:
        await doomed
        cancelled_error = ""
    except RequestCancelledError as exc:
        cancelled_error = type(exc).__name__
    result = await doomed.wait_result()
    print(
        f"4. doomed: {result.status} after {result.attempts} attempt(s), raised {cancelled_error}"
    )

    patient = await client.get(f"{base_url}/delay/0.2")  # submitted outside the scope below
    with trio.move_on_after(0.05) as scope:
        await patient  # only this wait is cancelled at the scope's deadline
    response = await patient  # the request went on
    print(
        f"   wait cut: {scope.cancelled_caught}; the request still answered {response.status_code}"
    )
    return {
        "doomed_status": str(result.status),
        "raised": cancelled_error,
        "patient_status": response.status_code,
    }


async def main(base_url: str | None = None) -> dict[str, Any]:
    """
    Run the five sections on trio against ``base_url`` (a local test server when not given).

    Returns:
        What each section observed (``workers``, ``inherited``, ``own``, ``cancel``) and a few
        counters of ``client.stats()`` taken after the client closed (``stats``).
    """
    if base_url is None:
        async with LocalServer() as server:
            return await main(server.url)
    outcome: dict[str, Any] = {}
    with refusing_url() as refused:
        async with AsyncResilientClient(max_concurrency=4, max_per_second=50) as client:
            outcome["workers"] = await nursery_of_workers(client, base_url)
            outcome["inherited"] = await inherited_deadline(client, base_url, refused)
            outcome["own"] = await own_deadline(client, base_url)
            outcome["cancel"] = await cancelling(client, base_url)
        stats = client.stats()
    p50 = math.nan if stats.latency_p50 is None else stats.latency_p50
    p99 = math.nan if stats.latency_p99 is None else stats.latency_p99
    print(
        f"5. stats: {stats.started} started, {stats.succeeded} succeeded, {stats.failed} failed, "
        f"{stats.cancelled} cancelled; {stats.attempts} attempts, {stats.retries} retries; "
        f"{stats.wait_time:.2f}s waiting for the limits; latency p50 {p50:.3f}s, p99 {p99:.3f}s"
    )
    outcome["stats"] = {
        "in_flight": stats.in_flight,
        "waiting": stats.waiting,
        "started": stats.started,
        "succeeded": stats.succeeded,
        "failed": stats.failed,
        "cancelled": stats.cancelled,
        "waited": stats.wait_time > 0,
    }
    return outcome


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python examples/trio_usage.py",
        description="The client in a trio program: nursery, cancel scopes, limits, stats.",
    )
    parser.add_argument(
        "--backend",
        choices=["asyncio", "trio"],
        default="trio",
        help="event loop; this example runs on trio only (trio)",
    )
    args = parser.parse_args(argv)
    if args.backend != "trio":
        parser.error(
            "argument --backend: this example is trio-specific "
            "(trio.open_nursery and trio.move_on_after); the other examples run on both"
        )
    return args


if __name__ == "__main__":
    parse_args()
    trio.run(main)
