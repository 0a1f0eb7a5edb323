"""
Batches: requests scoped by ``async with client.batch(...) as batch:``.

A batch owns a task group: every request submitted with ``await batch.get(...)`` runs in it, and
leaving the block waits for all of them. Three batches below:

1. **In order, bounded.** 300 requests at ``max_concurrency=20``: submitting waits for a free
   slot, so at most 20 request tasks exist at a time, and ``batch.results`` lists the results in
   submission order whatever order they finished in.
2. **Fail fast.** With ``fail_fast=True`` the first request that ends with an error cancels the
   rest of the batch, the block's body included, and leaving the block raises that error inside
   an ``ExceptionGroup`` (anyio's task-group semantics). An exception raised in the body also
   cancels the batch's requests and arrives in an ``ExceptionGroup``.
3. **Huge batches.** ``collect_results=False`` keeps no handle per request, so memory stays
   flat; read the outcomes from the client's counters (``stats()``), its bounded result store
   or events instead.

Catching an ``ExceptionGroup``: on Python 3.11+ ``except* httpx.ConnectError:`` works. This
example also runs on Python 3.10, so it catches the group itself and splits it, with the
``exceptiongroup`` backport that anyio installs on 3.10.

Run it with ``python examples/batch_usage.py [--backend trio]``: it starts a local test server and
uses a loopback port that refuses connections, so no network access is needed.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any

import anyio
import httpx

from typed_async_client import AsyncResilientClient, RequestContext, RequestStatus
from typed_async_client.testing import LocalServer, refusing_url

if sys.version_info < (3, 11):
    # Python 3.10: the backport, a dependency of anyio there (a builtin from 3.11 on).
    from exceptiongroup import ExceptionGroup  # type: ignore[import-not-found, unused-ignore]


async def in_order(client: AsyncResilientClient, base_url: str, count: int = 300) -> dict[str, Any]:
    """Fetch ``count`` items, 20 at a time; return what the batch saw."""
    peak = 0
    async with client.batch(max_concurrency=20) as batch:
        for i in range(count):
            # Waits here while 20 requests of the batch are in flight.
            await batch.get(f"{base_url}/items/{i}", context=RequestContext(request_id=f"item-{i}"))
            peak = max(peak, client.stats().in_flight)
    # Leaving the block waited for every request: all have a result, in submission order.
    results = batch.results
    paths = [r.response.json()["path"] for r in results if r.response is not None]
    waited = sum(r.wait_time for r in results)
    print(f"1. {len(results)} results, peak in flight {peak}, {waited:.2f}s waiting for slots")
    print(f"   first: {paths[0]}, last: {paths[-1]}")
    return {
        "count": len(results),
        "all_succeeded": all(r.is_success for r in results),
        "in_submission_order": paths == [f"/items/{i}" for i in range(count)],
        "peak_in_flight": peak,
    }


async def fail_fast(client: AsyncResilientClient, base_url: str, refused: str) -> dict[str, Any]:
    """A fail-fast batch whose one refused request cancels the slow ones and the submitting."""
    planned = 20
    caught: list[str] = []
    try:
        async with client.batch(max_concurrency=3, fail_fast=True) as batch:
            await batch.get(f"{base_url}/delay/30", context=RequestContext(request_id="slow-0"))
            await batch.get(f"{base_url}/delay/30", context=RequestContext(request_id="slow-1"))
            down = RequestContext(request_id="down", max_retries=1, base_delay=0.05)
            await batch.get(f"{refused}/down", context=down)
            for i in range(2, planned):
                # Slots are taken by the slow requests: the body waits here until the refused
                # request fails, and that failure cancels this wait too.
                await batch.get(
                    f"{base_url}/delay/30", context=RequestContext(request_id=f"slow-{i}")
                )
            print("never printed: the body was cancelled with the batch")
    except ExceptionGroup as group:
        connect_errors, others = group.split(httpx.ConnectError)
        if others is not None:
            raise  # not ours to handle
        assert connect_errors is not None
        caught = [type(exc).__name__ for exc in connect_errors.exceptions]
    statuses = {r.request_id: r.status for r in batch.results}
    print(f"2. caught {', '.join(caught)}; submitted {batch.submitted} of {planned + 1}")
    by_status = Counter(str(status) for status in statuses.values())
    print(f"   {', '.join(f'{count} {status}' for status, count in sorted(by_status.items()))}")
    down_result = client.get_result("down")
    return {
        "caught": caught,
        "down_attempts": None if down_result is None else down_result.attempts,
        "submitted": batch.submitted,
        "planned": planned + 1,
        "others_cancelled": all(
            status is RequestStatus.CANCELLED for rid, status in statuses.items() if rid != "down"
        ),
        "down_status": statuses["down"],
    }


async def block_error(client: AsyncResilientClient, base_url: str) -> dict[str, Any]:
    """An exception in the body cancels the batch's requests and arrives in a group."""
    outside = await client.get(f"{base_url}/delay/0.1")  # not part of the batch
    reason = ""
    try:
        async with client.batch() as batch:
            await batch.get(f"{base_url}/delay/30")
            raise LookupError("the body changed its mind")
    except ExceptionGroup as group:
        lookup_errors, others = group.split(LookupError)
        if others is not None:
            raise
        assert lookup_errors is not None
        reason = str(lookup_errors.exceptions[0])
    outside_status = (await outside).status_code  # requests outside the batch are untouched
    statuses = [str(r.status) for r in batch.results]
    print(
        f"3. body error {reason!r}: batch requests {', '.join(statuses)}, "
        f"outside request {outside_status}"
    )
    return {"reason": reason, "statuses": statuses, "outside_status": outside_status}


async def huge_batch(base_url: str, count: int = 1_000) -> dict[str, Any]:
    """``count`` requests with ``collect_results=False``: nothing is kept per request."""
    # The client keeps its 100 latest results only; the counters see everything.
    async with AsyncResilientClient(max_results=100) as client:
        async with client.batch(max_concurrency=50, collect_results=False) as batch:
            for i in range(count):
                await batch.get(f"{base_url}/bulk/{i % 10}")
        stats = client.stats()
    print(
        f"4. {batch.submitted} submitted, {len(batch.results)} listed by the batch, "
        f"{stats.succeeded} succeeded, {stats.results_kept} results kept, "
        f"{stats.results_evicted} evicted"
    )
    return {
        "submitted": batch.submitted,
        "listed": len(batch.results),
        "succeeded": stats.succeeded,
        "failed": stats.failed,
        "results_kept": stats.results_kept,
    }


async def main(base_url: str | None = None) -> dict[str, Any]:
    """
    Run the four batches against ``base_url`` (a local test server when not given).

    Returns:
        ``{"in_order": ..., "fail_fast": ..., "block_error": ..., "huge": ...}``, what each
        batch observed.
    """
    if base_url is None:
        async with LocalServer() as server:
            return await main(server.url)
    outcome: dict[str, Any] = {}
    with refusing_url() as refused:
        async with AsyncResilientClient() as client:
            outcome["in_order"] = await in_order(client, base_url)
            outcome["fail_fast"] = await fail_fast(client, base_url, refused)
            outcome["block_error"] = await block_error(client, base_url)
    outcome["huge"] = await huge_batch(base_url)
    return outcome


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python examples/batch_usage.py",
        description="Batches: ordered results, fail_fast, a failing body, a huge batch.",
    )
    parser.add_argument(
        "--backend", choices=["asyncio", "trio"], default="asyncio", help="event loop (asyncio)"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    anyio.run(main, backend=args.backend)
