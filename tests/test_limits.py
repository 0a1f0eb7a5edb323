"""
Client-wide limits (max_concurrency, max_per_second) and the stats snapshot.
"""

from __future__ import annotations

import dataclasses
import math

import anyio
import pytest

from typed_async_client import AsyncResilientClient, ClientStats, RequestContext
from typed_async_client.testing import LocalServer

pytestmark = pytest.mark.anyio


async def test_max_concurrency_is_shared_by_client_and_batches(server: LocalServer) -> None:
    """max_concurrency bounds the client's and its batches' requests together."""
    peak = 0

    async def watch(stop: anyio.Event, client: AsyncResilientClient) -> None:
        nonlocal peak
        for _ in range(10_000):
            peak = max(peak, client.active_tasks_count)
            if stop.is_set():
                return
            await anyio.sleep(0.001)

    with anyio.fail_after(20):
        async with AsyncResilientClient(max_concurrency=4) as client:
            stop = anyio.Event()
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch, stop, client)
                for _ in range(6):
                    await client.get(server.url_for("/delay/0.02"))
                async with client.batch() as batch:
                    for _ in range(6):
                        await batch.get(server.url_for("/delay/0.02"))
                await client.wait_for_all_requests()
                stop.set()
            stats = client.stats()
    assert 4 == peak
    assert 12 == stats.succeeded
    assert 0 == stats.waiting
    assert stats.wait_time > 0


async def test_submission_waits_while_the_client_is_full(server: LocalServer) -> None:
    """With max_concurrency=1, a second submission waits and shows in stats().waiting."""
    with anyio.fail_after(10):
        async with AsyncResilientClient(max_concurrency=1) as client:
            first = await client.get(server.url_for("/delay/0.3"))
            submitted: list[object] = []

            async def submit_second() -> None:
                submitted.append(await client.get(server.url_for("/second")))

            async with anyio.create_task_group() as tg:
                tg.start_soon(submit_second)
                await anyio.wait_all_tasks_blocked()
                assert 1 == client.stats().waiting
                assert [] == submitted
                assert 1 == client.active_tasks_count
            await first
            second = await submitted[0]  # type: ignore[misc]
    assert 200 == second.status_code
    assert submitted[0].result.wait_time > 0  # type: ignore[attr-defined]


async def test_cancelled_submitter_leaves_no_trace(server: LocalServer) -> None:
    """A submission cancelled while waiting for a slot schedules nothing and frees its place."""
    with anyio.fail_after(10):
        async with AsyncResilientClient(max_concurrency=1) as client:
            blocker = await client.get(server.url_for("/delay/0.2"))
            with anyio.move_on_after(0.05) as scope:
                await client.get(server.url_for("/never"))
            assert scope.cancelled_caught
            await blocker
            after = await (await client.get(server.url_for("/after")))
    assert 200 == after.status_code
    assert 0 == server.hits["/never"]
    assert 2 == client.stats().started


async def test_rate_limit_spaces_attempts_evenly(server: LocalServer) -> None:
    """max_per_second=50 spaces attempts by 20 ms on the event loop's clock: no burst."""
    starts: list[float] = []

    async def hook(_request: object) -> None:
        starts.append(anyio.current_time())

    with anyio.fail_after(10):
        async with AsyncResilientClient(
            max_per_second=50, event_hooks={"request": [hook]}
        ) as client:
            for _ in range(10):
                await client.get(server.url_for("/r"))
            await client.wait_for_all_requests()
            stats = client.stats()
    assert 10 == len(starts)
    # Slots are reserved 1/50 s apart: the tenth attempt cannot start before 9 slots have
    # passed since the first one's (a lower bound, which load only makes easier to meet; the
    # margin covers the first attempt starting a little after its slot).
    assert starts[-1] - starts[0] >= 9 * 0.02 - 0.03
    assert stats.wait_time > 0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"max_concurrency": 0}, ValueError, "max_concurrency"),
        ({"max_concurrency": 1.5}, TypeError, "max_concurrency"),
        ({"max_per_second": 0}, ValueError, "max_per_second"),
        ({"max_per_second": math.inf}, ValueError, "max_per_second"),
        ({"max_per_second": math.nan}, ValueError, "max_per_second"),
        ({"max_per_second": "10"}, TypeError, "max_per_second"),
    ],
)
def test_bad_limits_are_rejected(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    """Bad limit values raise an error naming the argument."""
    with pytest.raises(error, match=match):
        AsyncResilientClient(**kwargs)  # type: ignore[arg-type]


async def test_stats_snapshot_counts_and_percentiles(server: LocalServer, refused_url: str) -> None:
    """stats() is an immutable snapshot whose counters add up and whose percentiles are ordered."""
    with anyio.fail_after(10):
        async with AsyncResilientClient() as client:
            empty = client.stats()
            assert (None, None, None) == (empty.latency_p50, empty.latency_p95, empty.latency_p99)
            for i in range(8):
                await client.get(server.url_for(f"/delay/0.0{i % 3}"))
            await client.get(refused_url, context=RequestContext(max_retries=2, base_delay=0.001))
            cancelled = await client.get(server.url_for("/delay/30"))
            cancelled.cancel()
            await client.wait_for_all_requests()
            stats = client.stats()
    assert isinstance(stats, ClientStats)
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.started = 0  # type: ignore[misc]
    assert (10, 8, 1, 1) == (stats.started, stats.succeeded, stats.failed, stats.cancelled)
    assert (2, 0) == (stats.retries, stats.in_flight)
    assert 8 + 3 + 0 == stats.attempts  # the cancelled request never started an attempt
    assert stats.latency_p50 is not None
    assert stats.latency_p99 is not None
    assert stats.latency_p95 is not None
    assert 0 <= stats.latency_p50 <= stats.latency_p95 <= stats.latency_p99
