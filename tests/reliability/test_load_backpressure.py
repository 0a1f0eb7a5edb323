"""
Reliability: load and backpressure (RELIABILITY.md, "Load and backpressure").

Observers never slow requests down: a subscriber that never reads, or that closed its stream,
and a callback that raises or hangs cost dropped (and counted) events, never a blocked request.
Ten thousand submissions at once stay within ``max_concurrency`` in flight with flat memory;
results nobody fetches stay within ``max_results``; a thousand requests failing at once retry at
jittered times within the retry budget and recover; and backoff delays stay at their cap for
attempt numbers far past 1,024.
"""

from __future__ import annotations

import random
import sys
import tracemalloc
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import anyio.lowlevel
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from typed_async_client import (
    AsyncEvent,
    AsyncResilientClient,
    Backoff,
    EventType,
    Jitter,
    RequestContext,
    RequestStatus,
    RetryBudget,
    backoff_delay,
)
from typed_async_client.testing import LocalServer

from .conftest import CANARY, FINAL_EVENTS, POOL, Observed

pytestmark = pytest.mark.anyio

SEED = 1_000_003
PROPERTY = settings(derandomize=True, database=None, deadline=None, max_examples=200)


def _limits() -> httpx.Limits:
    return httpx.Limits(max_connections=POOL, max_keepalive_connections=POOL)


@asynccontextmanager
async def _observed_without_callbacks(
    server: LocalServer, **options: object
) -> AsyncIterator[Observed]:
    """An open client like the ``observed`` fixture's, recording nothing by itself."""
    client = AsyncResilientClient(limits=_limits(), timeout=5.0, **options)  # type: ignore[arg-type]
    async with client:
        yield Observed(client=client, server=server)


# -- slow or absent observers -----------------------------------------------------------------


async def test_subscriber_that_never_reads_never_blocks_requests(server: LocalServer) -> None:
    """A full subscriber buffer drops the oldest events, counted; requests never wait for it."""
    with anyio.fail_after(20):
        async with _observed_without_callbacks(server) as observed:
            client = observed.client
            async with client.events(*FINAL_EVENTS, buffer=4) as stream:
                for i in range(200):
                    await observed.submit("GET", server.url_for(f"/unread/{i}"))
                await client.wait_for_all_requests()  # no request waited for the reader
                assert 196 == stream.dropped
                assert 196 == client.stats().events_dropped
                # The reader wakes up at last: it finds the four newest final events.
                observed.events.extend([await stream.receive() for _ in range(stream.pending)])
                results = await observed.check()
    kept = {e.context.request_id for e in observed.events}
    assert 4 == len(kept)
    assert kept <= {r.request_id for r in results}
    assert [True] * 200 == [r.is_success for r in results]


async def test_subscriber_that_closed_its_stream_never_blocks_requests(
    server: LocalServer,
) -> None:
    """Events for a subscriber that closed its stream are dropped and counted, nothing waits."""
    with anyio.fail_after(20):
        async with _observed_without_callbacks(server) as observed:
            client = observed.client
            async with client.events(*FINAL_EVENTS, buffer=4, overflow="block") as stream:
                stream.close()
                for i in range(50):
                    await observed.submit("GET", server.url_for(f"/closed/{i}"))
                await client.wait_for_all_requests()
                assert 50 == stream.dropped
                assert 50 == client.stats().events_dropped
                results = await observed.check()
    assert [] == observed.events
    assert [True] * 50 == [r.is_success for r in results]


async def test_raising_callback_is_isolated_and_counted(
    observed: Observed, debug_logs: pytest.LogCaptureFixture
) -> None:
    """A callback that raises is logged and counted; the request and later callbacks go on."""

    def broken(event: AsyncEvent) -> None:
        raise RuntimeError("observer bug")

    later: list[AsyncEvent] = []
    client = observed.client
    client.add_event_callback(EventType.STARTED, broken)
    client.add_event_callback(EventType.SUCCESS, broken)
    client.add_event_callback(EventType.SUCCESS, later.append)
    with anyio.fail_after(20):
        for i in range(20):
            await observed.submit("GET", observed.server.url_for(f"/cb/{i}?token={CANARY}"))
        results = await observed.check(debug_logs)
    ids = {r.request_id for r in results}
    assert [True] * 20 == [r.is_success for r in results]
    assert ids <= {e.context.request_id for e in later}
    # Two failures per request; the follow-up burst's own events may add two each.
    assert 40 <= client.stats().callback_errors <= 40 + 2 * POOL
    logged = [r for r in debug_logs.records if r.getMessage().startswith("event callback")]
    assert 40 <= len(logged)
    assert all(r.exc_info is not None for r in logged)


async def test_hung_callback_is_isolated_and_its_backlog_counted(server: LocalServer) -> None:
    """A callback that hangs costs dropped, counted events; no request waits for it."""
    release = anyio.Event()
    hung_calls: list[str] = []

    async def hung(event: AsyncEvent) -> None:
        hung_calls.append(event.context.request_id)
        await release.wait()

    with anyio.fail_after(20):
        async with _observed_without_callbacks(server, event_queue_size=8) as observed:
            client = observed.client
            for event_type in FINAL_EVENTS:
                client.add_event_callback(event_type, observed.events.append)
            client.add_event_callback(EventType.SUCCESS, hung)
            for i in range(100):
                await observed.submit("GET", server.url_for(f"/hung/{i}"))
            await client.wait_for_all_requests()  # every request ended while the callback hung
            assert 1 == len(hung_calls)
            # One event is being dispatched, eight are queued, the other 91 were dropped.
            assert 91 == client.stats().events_dropped
            release.set()
            results = await observed.check()
    ids = {r.request_id for r in results}
    assert 9 == len([e for e in observed.events if e.context.request_id in ids])
    assert [True] * 100 == [r.is_success for r in results]


# -- ten thousand submissions -----------------------------------------------------------------


@dataclass
class CountingTransport(httpx.AsyncBaseTransport):
    """Answers 200 after one checkpoint and samples the client's requests in flight."""

    client: AsyncResilientClient | None = None
    calls: int = 0
    concurrent: int = 0
    peak_concurrent: int = 0
    peak_in_flight: int = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        self.concurrent += 1
        self.peak_concurrent = max(self.peak_concurrent, self.concurrent)
        if self.client is not None:
            self.peak_in_flight = max(self.peak_in_flight, self.client.active_tasks_count)
        try:
            await anyio.lowlevel.checkpoint()
            return httpx.Response(200, content=b"ok")
        finally:
            self.concurrent -= 1


async def test_ten_thousand_submissions_at_once_stay_bounded(server: LocalServer) -> None:
    """10,000 submissions from 100 tasks: at most max_concurrency in flight, memory flat."""
    limit = 32
    transport = CountingTransport()
    client = AsyncResilientClient(
        transport=transport,
        limits=_limits(),
        max_concurrency=limit,
        max_results=256,
        default_context=RequestContext(inherit_deadline=False),
    )
    transport.client = client
    submitted = 0
    memory: dict[str, int] = {}
    peak_waiting = 0

    async def submitter() -> None:
        nonlocal submitted, peak_waiting
        for _ in range(100):
            submitted += 1
            if submitted == 9_400:
                tracemalloc.start()  # tracing all 10,000 would slow the test fourfold
            elif submitted == 9_700:  # the 256 results kept were all made while tracing
                memory["before"] = tracemalloc.get_traced_memory()[0]
            await client.get("http://fast.test/x")
            if submitted % 100 == 0:
                peak_waiting = max(peak_waiting, client.stats().waiting)

    with anyio.fail_after(40):
        async with client:
            observed = Observed(client=client, server=server)
            try:
                async with anyio.create_task_group() as tg:
                    for _ in range(100):
                        tg.start_soon(submitter)
                await client.wait_for_all_requests()
                memory["after"] = tracemalloc.get_traced_memory()[0]
            finally:
                tracemalloc.stop()
            stats = client.stats()
            for event_type in EventType:
                client.add_event_callback(event_type, observed.events.append)
            for i in range(20):
                await observed.submit("GET", f"http://fast.test/tracked/{i}")
            await observed.check()
    assert (10_000, 10_000, 0) == (stats.started, stats.succeeded, stats.in_flight)
    assert (256, 10_000 - 256) == (stats.results_kept, stats.results_evicted)
    assert transport.peak_in_flight <= limit
    assert transport.peak_concurrent <= limit
    assert 0 < peak_waiting <= 100  # admission held the other submitters back
    # The last 300 requests retained nothing beyond what the bounded store turned over (had
    # each kept its result, about 9 KB, that alone would be 2.7 MB).
    assert memory["after"] - memory["before"] < 1_000_000


# -- results nobody fetches -------------------------------------------------------------------


async def test_unfetched_results_are_bounded_and_eviction_is_counted(server: LocalServer) -> None:
    """Past max_results the oldest results go; fetching one gives None, stats count it."""
    with anyio.fail_after(20):
        async with _observed_without_callbacks(server, max_results=50) as observed:
            client = observed.client
            early = [await client.get(server.url_for(f"/r/{i}")) for i in range(150)]
            await client.wait_for_all_requests()
            for event_type in EventType:
                client.add_event_callback(event_type, observed.events.append)
            for i in range(150, 200):
                await observed.submit("GET", server.url_for(f"/r/{i}"))
            results = await observed.check()
            stats = client.stats()
    assert 200 + POOL == stats.started
    assert (50, 150 + POOL) == (stats.results_kept, stats.results_evicted)
    assert [None] * 150 == [client.get_result(handle.request_id) for handle in early]
    # A handle the caller kept still holds its own result.
    assert [True] * 150 == [handle.result is not None for handle in early]
    assert [True] * 50 == [r.is_success for r in results]


# -- a thousand failures, then recovery -------------------------------------------------------


@dataclass(frozen=True)
class SeededContext(RequestContext):
    """A context whose full-jitter backoff draws from a RNG seeded per request and attempt."""

    seed: int = SEED

    def backoff_delay(self, rand: Callable[[], float] | None = None) -> float:
        rng = random.Random(self.seed * 7919 + self.current_attempt)
        return RequestContext.backoff_delay(self, rand=rng.random)


async def test_thousand_failures_then_recovery_spread_retries_within_budget(
    server: LocalServer,
) -> None:
    """1,000 refused requests retry at jittered times, within the budget, and then recover."""
    budget = RetryBudget(ratio=0.1, min_per_second=0.0, max_tokens=1000.0)
    client = AsyncResilientClient(
        limits=_limits(), timeout=5.0, event_queue_size=10_000, retry_budget=budget
    )
    with anyio.fail_after(30):
        async with client:
            observed = Observed(client=client, server=server)
            for event_type in EventType:
                client.add_event_callback(event_type, observed.events.append)
            await server.stop_listening()
            for i in range(1000):
                context = SeededContext(seed=i, max_retries=5, base_delay=0.6, max_delay=0.6)
                await observed.submit("GET", server.url_for(f"/storm/{i}"), context=context)

            def first_attempts_done() -> bool:
                retried = {
                    e.context.request_id for e in observed.events if e.event_type is EventType.RETRY
                }
                ended = sum(1 for h in observed.handles if h.done())
                return len(retried) + ended >= 1000

            for _ in range(1000):
                if first_attempts_done():
                    break
                await anyio.sleep(0.01)
            await server.start_listening()
            results = await observed.check()
            stats = client.stats()
    retries = [e for e in observed.events if e.event_type is EventType.RETRY]
    delays = [e.data["delay"] for e in retries]
    outcomes = Counter(r.status for r in results)
    # Within the budget: one retry per ten requests at most, the rest refused and counted.
    assert len(retries) == stats.retries <= 0.1 * 1000
    assert stats.retries_refused == budget.retries_refused > 0
    # Spread by jitter: every scheduled retry waits a different time, across the range.
    assert len(delays) == len(set(delays))
    assert max(delays) - min(delays) > 0.3
    # Recovery: retries wait behind the first attempts for the pool's slots, so most of them run
    # once the port listens again, and succeed.
    assert outcomes[RequestStatus.SUCCESS] > 0
    assert outcomes[RequestStatus.SUCCESS] + outcomes[RequestStatus.ERROR] == 1000
    assert outcomes[RequestStatus.SUCCESS] == sum(server.hits[f"/storm/{i}"] for i in range(1000))


# -- attempt numbers past 1,024 ---------------------------------------------------------------


@pytest.mark.parametrize("retry", [1_024, 1_025, 1_100, 65_536, 10**6, 10**9])
@pytest.mark.parametrize("factor", [1.5, 2.0, 10.0])
def test_backoff_past_attempt_1024_stays_at_the_cap(retry: int, factor: float) -> None:
    """Far past 1,024 attempts the backoff neither overflows nor leaves its cap."""
    assert 30.0 == backoff_delay(retry, 0.5, factor, 30.0, jitter="none")
    assert 0.0 <= backoff_delay(retry, 0.5, factor, 30.0, rand=random.Random(SEED).random) <= 30.0
    context = RequestContext(
        current_attempt=retry - 1, max_retries=retry, backoff_factor=factor, max_delay=30.0
    )
    assert 0.0 <= context.backoff_delay() <= 30.0


@given(
    retry=st.integers(min_value=1, max_value=10**6),
    base=st.floats(min_value=0.0, max_value=60.0),
    factor=st.floats(min_value=1.0, max_value=100.0),
    cap=st.floats(min_value=60.0, max_value=86_400.0),
    unit=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
@PROPERTY
def test_backoff_is_bounded_for_any_attempt_number(
    retry: int, base: float, factor: float, cap: float, unit: float
) -> None:
    """For any attempt up to 10^6 the delay lies in [0, cap] and the ceiling is monotonic."""
    jitters: list[Jitter] = ["full", "equal", "none"]
    for jitter in jitters:
        delay = backoff_delay(retry, base, factor, cap, jitter=jitter, rand=lambda: unit)
        assert 0.0 <= delay <= cap
    assert backoff_delay(retry, base, factor, cap, jitter="none") <= backoff_delay(
        retry + 1, base, factor, cap, jitter="none"
    )


def test_backoff_with_an_unbounded_cap_does_not_overflow_past_attempt_1024() -> None:
    """With max_delay=sys.float_info.max, attempt 1,025 gets a finite delay, not OverflowError."""
    context = RequestContext(
        base_delay=0.5, max_delay=sys.float_info.max, current_attempt=1024, max_retries=2000
    )
    assert 0.0 <= context.backoff_delay() <= sys.float_info.max
    assert sys.float_info.max == Backoff(base=0.5, cap=sys.float_info.max).cap
    assert 0.5 * 2.0**1023 == backoff_delay(1024, 0.5, 2.0, sys.float_info.max, jitter="none")
    assert sys.float_info.max >= backoff_delay(1025, 0.5, 2.0, sys.float_info.max, jitter="none")


async def test_requests_past_attempt_1024_retry_at_the_capped_delay(
    observed: Observed, refused_url: str
) -> None:
    """A request whose attempt numbers pass 1,024 retries with delays at most the cap."""
    context = RequestContext(
        request_id="veteran",
        current_attempt=1_100,
        max_retries=1_103,
        base_delay=0.001,
        max_delay=0.01,
    )
    with anyio.fail_after(15):
        await observed.submit("GET", refused_url, context=context)
        (result,) = await observed.check()
    retries = [e for e in observed.events if e.event_type is EventType.RETRY]
    assert [1_102, 1_103, 1_104] == [e.data["attempt"] for e in retries]
    assert all(0.0 <= e.data["delay"] <= 0.01 for e in retries)
    assert (RequestStatus.ERROR, 4) == (result.status, result.attempts)
    assert isinstance(result.error, httpx.ConnectError)


async def test_a_backoff_overflow_does_not_take_the_client_down(
    server: LocalServer, refused_url: str
) -> None:
    """A request whose backoff cannot be computed ends alone; the client and others go on."""
    context = RequestContext(
        base_delay=0.5, max_delay=sys.float_info.max, current_attempt=1024, max_retries=2000
    )
    crashed: list[Exception] = []
    with anyio.fail_after(15):
        try:
            async with AsyncResilientClient() as client:
                bystander = await client.get(server.url_for("/delay/0.3"))
                veteran = await client.get(refused_url, context=context)
                await veteran.wait_result()
                await bystander.wait_result()
        except Exception as exc:  # the crash is what this test looks for
            crashed.append(exc)
    assert [] == crashed
    assert RequestStatus.SUCCESS == bystander.result.status  # type: ignore[union-attr]
