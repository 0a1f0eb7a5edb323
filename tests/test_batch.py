"""
Batches: requests scoped by ``async with client.batch()``.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc

import anyio
import httpx
import pytest

from typed_async_client import (
    AsyncResilientClient,
    ClientStateError,
    RequestContext,
    RequestStatus,
)
from typed_async_client.testing import LocalServer

if sys.version_info < (3, 11):
    from exceptiongroup import ExceptionGroup

pytestmark = pytest.mark.anyio


async def test_leaving_the_block_waits_for_every_request(server: LocalServer) -> None:
    """Leaving the block waits for all requests; results come in submission order."""
    with anyio.fail_after(10):
        async with AsyncResilientClient() as client:
            async with client.batch() as batch:
                for i in range(20):
                    await batch.get(
                        server.url_for(f"/delay/0.0{i % 3}"),
                        context=RequestContext(request_id=f"b{i}"),
                    )
            assert 0 == client.active_tasks_count
    assert [f"b{i}" for i in range(20)] == [r.request_id for r in batch.results]
    assert all(r.is_success for r in batch.results)
    assert 20 == batch.submitted


@pytest.mark.parametrize("verb", ["get", "post", "put", "patch", "delete", "options", "head"])
async def test_every_verb_on_a_batch(server: LocalServer, verb: str) -> None:
    """A batch offers every verb of the client."""
    with anyio.fail_after(10):
        async with AsyncResilientClient() as client, client.batch() as batch:
            handle = await getattr(batch, verb)(server.url_for("/v"))
        response = await handle
    assert 200 == response.status_code
    assert 1 == server.hits["/v"]


async def test_max_concurrency_bounds_requests_in_flight(server: LocalServer) -> None:
    """Submission waits for a free slot: never more than max_concurrency requests in flight."""
    peak = 0
    with anyio.fail_after(20):
        async with AsyncResilientClient() as client:
            async with client.batch(max_concurrency=3) as batch:
                for _ in range(30):
                    await batch.get(server.url_for("/delay/0.01"))
                    peak = max(peak, client.active_tasks_count)
            assert 3 == peak
            assert 30 == len(batch.results)
            assert all(r.wait_time >= 0 for r in batch.results)
            assert any(r.wait_time > 0 for r in batch.results)


async def test_fail_fast_cancels_the_rest_and_raises_a_group(
    server: LocalServer, refused_url: str
) -> None:
    """With fail_fast, the first error cancels the batch and is raised in an ExceptionGroup."""
    reached_after_failure = False
    with anyio.fail_after(10):
        async with AsyncResilientClient() as client:
            with pytest.raises(ExceptionGroup) as caught:
                async with client.batch(fail_fast=True) as batch:
                    await batch.get(
                        server.url_for("/delay/30"), context=RequestContext(request_id="slow")
                    )
                    await batch.get(
                        refused_url, context=RequestContext(request_id="bad", max_retries=0)
                    )
                    await anyio.sleep(30)
                    reached_after_failure = True
            outside = await (await client.get(server.url_for("/outside")))
    assert not reached_after_failure
    assert 1 == len(caught.value.exceptions)
    assert isinstance(caught.value.exceptions[0], httpx.ConnectError)
    statuses = {r.request_id: r.status for r in batch.results}
    assert {"slow": RequestStatus.CANCELLED, "bad": RequestStatus.ERROR} == statuses
    assert 200 == outside.status_code


async def test_without_fail_fast_errors_stay_in_results(
    server: LocalServer, refused_url: str
) -> None:
    """Without fail_fast, failures are recorded and the other requests complete."""
    with anyio.fail_after(10):
        async with AsyncResilientClient() as client, client.batch() as batch:
            await batch.get(refused_url, context=RequestContext(max_retries=0))
            await batch.get(server.url_for("/ok"))
    assert [RequestStatus.ERROR, RequestStatus.SUCCESS] == [r.status for r in batch.results]


async def test_block_error_cancels_only_the_batch(server: LocalServer) -> None:
    """An error in the block cancels the batch's requests, not the client's other requests."""
    with anyio.fail_after(10):
        async with AsyncResilientClient() as client:
            outside = await client.get(server.url_for("/delay/0.2"))
            with pytest.raises(ExceptionGroup) as caught:
                async with client.batch() as batch:
                    await batch.get(server.url_for("/delay/30"))
                    raise KeyError("boom")
            assert [KeyError] == [type(e) for e in caught.value.exceptions]
            assert [RequestStatus.CANCELLED] == [r.status for r in batch.results]
            assert 200 == (await outside).status_code


async def test_two_batches_run_side_by_side(server: LocalServer, refused_url: str) -> None:
    """A failing fail-fast batch does not touch another batch running at the same time."""
    with anyio.fail_after(10):
        async with AsyncResilientClient() as client:
            done = anyio.Event()
            calm_results = []

            async def calm() -> None:
                async with client.batch() as calm_batch:
                    for _ in range(5):
                        await calm_batch.get(server.url_for("/delay/0.1"))
                calm_results.extend(calm_batch.results)
                done.set()

            async with anyio.create_task_group() as tg:
                tg.start_soon(calm)
                with pytest.raises(ExceptionGroup):
                    async with client.batch(fail_fast=True) as failing:
                        await failing.get(refused_url, context=RequestContext(max_retries=0))
                await done.wait()
    assert [RequestStatus.SUCCESS] * 5 == [r.status for r in calm_results]


async def test_batch_misuse_is_refused(server: LocalServer) -> None:
    """Submitting outside the block, re-entering, or bad arguments raise clear errors."""
    with anyio.fail_after(10):
        async with AsyncResilientClient() as client:
            batch = client.batch()
            with pytest.raises(ClientStateError, match="submit inside"):
                await batch.get(server.url_for("/x"))
            async with batch:
                pass
            with pytest.raises(ClientStateError, match="once"):
                await batch.__aenter__()
            with pytest.raises(ClientStateError, match="closed"):
                await batch.get(server.url_for("/x"))
            with pytest.raises(ValueError, match="max_concurrency"):
                client.batch(max_concurrency=0)
            with pytest.raises(TypeError, match="fail_fast"):
                client.batch(fail_fast=1)  # type: ignore[arg-type]
        with pytest.raises(ClientStateError):
            async with client.batch():
                pass


async def _run_batch(client: AsyncResilientClient, server: LocalServer, count: int) -> None:
    async with client.batch(max_concurrency=50, collect_results=False) as batch:
        for _ in range(count):
            await batch.get(server.url_for("/m"))


async def _batch_memory(server: LocalServer, count: int) -> tuple[int, int]:
    """Traced memory kept after, and peak during, a batch of ``count`` requests (concurrency 50).

    A first batch under tracing fills what is legitimately kept (the 100 results, the pool's
    connections); what the measured batch adds on top of that is what it leaks.
    """
    async with AsyncResilientClient(max_results=100) as client:
        tracemalloc.start()
        try:
            await _run_batch(client, server, 300)
            gc.collect()
            before, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            await _run_batch(client, server, count)
            _, peak = tracemalloc.get_traced_memory()
            gc.collect()
            after, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert count + 300 == client.stats().succeeded
    print(f"{count:,} requests: kept {after - before:+,} bytes, peak {peak - before:,} bytes")
    return after - before, peak - before


@pytest.mark.parametrize(
    "count",
    [
        1_000,
        # About a minute per backend under tracemalloc: past the suite's 60 s default timeout.
        pytest.param(10_000, marks=[pytest.mark.slow, pytest.mark.timeout(300)], id="10000-slow"),
    ],
)
async def test_big_batch_runs_in_bounded_memory(server: LocalServer, count: int) -> None:
    """A big batch keeps no memory per request and peaks far below one response per request.

    Keeping each request's handle and response costs about 9 KB per request (measured with
    collect_results=True), so the bounds below (100 B kept and 1 KiB of peak per request, over
    a constant) catch a per-request leak.
    """
    with anyio.fail_after(240):
        kept, peak = await _batch_memory(server, count)
    assert kept < 1024 * 1024 + count * 100
    assert peak < 8 * 1024 * 1024 + count * 1024
