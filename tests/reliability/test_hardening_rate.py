"""
Hardening: the rate limit (``max_per_second``) gives back the slots of cancelled waiters.

A waiter cancelled while it waits for its slot must not keep a reservation: after many
cancellations, the next caller on an idle limiter waits at most one interval (``1 / rate``),
and the waiters still queued move up. The spacing itself (no burst, first come first served)
is unchanged.
"""

from __future__ import annotations

import itertools

import anyio
import anyio.lowlevel
import pytest

from typed_async_client import AsyncResilientClient
from typed_async_client._limits import RateLimiter
from typed_async_client.testing import LocalServer

pytestmark = pytest.mark.anyio

RATE = 20.0
INTERVAL = 1 / RATE
#: Slack for a loaded machine; far below the 5 s that 100 kept reservations would cost.
SLACK = 0.1


async def _until_waiting(client: AsyncResilientClient, count: int) -> None:
    """Let submitted requests run until ``count`` of them wait for their rate slot."""
    for _ in range(10_000):
        if client.stats().waiting >= count:
            return
        await anyio.lowlevel.checkpoint()
    raise AssertionError(f"{client.stats().waiting} requests waiting, expected {count}")


async def _waiters_cancelled_all_at_once(limiter: RateLimiter, count: int) -> None:
    """Start ``count`` waiters on ``limiter``, then cancel them together once they all wait."""
    async with anyio.create_task_group() as tg:
        for _ in range(count):
            tg.start_soon(limiter.wait)
        await anyio.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()


async def test_cancelled_waiters_give_their_slots_back() -> None:
    """After 100 waiters are cancelled together, a new wait() takes at most one interval."""
    limiter = RateLimiter(RATE)
    with anyio.fail_after(10):
        await _waiters_cancelled_all_at_once(limiter, 100)
        start = anyio.current_time()
        waited = await limiter.wait()
        elapsed = anyio.current_time() - start
    assert elapsed < INTERVAL + SLACK
    assert 0 <= waited < INTERVAL + SLACK


async def test_waiters_timed_out_one_by_one_give_their_slots_back() -> None:
    """Waiters leaving through move_on_after, in arrival order, keep no reservation."""
    limiter = RateLimiter(RATE)
    outcomes: list[bool] = []

    async def wait_briefly() -> None:
        with anyio.move_on_after(0.01) as scope:
            await limiter.wait()
        outcomes.append(scope.cancelled_caught)

    with anyio.fail_after(10):
        await limiter.wait()  # takes the free slot: every waiter below must queue
        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(wait_briefly)
        start = anyio.current_time()
        await limiter.wait()
        elapsed = anyio.current_time() - start
    assert [True] * 50 == outcomes
    assert elapsed < INTERVAL + SLACK


async def test_queued_waiters_move_up_when_those_ahead_are_cancelled() -> None:
    """Cancelling the waiters ahead of a queued one lets it through about one interval later."""
    limiter = RateLimiter(RATE)
    granted: list[float] = []

    async def wait_in(scope: anyio.CancelScope) -> None:
        with scope:
            await limiter.wait()

    async def last() -> None:
        await limiter.wait()
        granted.append(anyio.current_time())

    with anyio.fail_after(10):
        await limiter.wait()
        ahead = [anyio.CancelScope() for _ in range(40)]
        async with anyio.create_task_group() as tg:
            for scope in ahead:
                tg.start_soon(wait_in, scope)
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(last)
            await anyio.wait_all_tasks_blocked()
            start = anyio.current_time()
            # The head first, then from the back: every order must give the slots back.
            ahead[0].cancel()
            for scope in reversed(ahead[1:]):
                scope.cancel()
    assert 1 == len(granted)
    assert granted[0] - start < INTERVAL + SLACK


async def test_waiter_cancelled_as_its_turn_comes_passes_the_turn_on() -> None:
    """A waiter cancelled just as the one ahead hands it the turn lets the next one through."""
    limiter = RateLimiter(RATE)
    second = anyio.CancelScope()
    granted: list[str] = []

    async def first() -> None:
        await limiter.wait()
        granted.append("first")
        # Its turn is handed over: cancel the second waiter before it resumes.
        second.cancel()

    async def wait_second() -> None:
        with second:
            await limiter.wait()
            granted.append("second")

    async def third() -> None:
        await limiter.wait()
        granted.append("third")

    with anyio.fail_after(10):
        await limiter.wait()
        async with anyio.create_task_group() as tg:
            for waiter in (first, wait_second, third):
                tg.start_soon(waiter)
                await anyio.wait_all_tasks_blocked()
            start = anyio.current_time()
        elapsed = anyio.current_time() - start
    assert ["first", "third"] == granted
    # first waits one interval, third at most one more (the second's slot is not kept).
    assert elapsed < 2 * INTERVAL + SLACK


async def test_waiters_are_served_in_order_and_evenly_spaced() -> None:
    """Ten waiters get their slots in arrival order, at least one interval apart."""
    limiter = RateLimiter(RATE)
    order: list[int] = []
    times: list[float] = []

    async def waiter(index: int) -> None:
        await limiter.wait()
        order.append(index)
        times.append(anyio.current_time())

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for index in range(10):
                tg.start_soon(waiter, index)
                await anyio.wait_all_tasks_blocked()
    assert list(range(10)) == order
    # Slots are spaced on the event loop's clock; a tiny margin covers timer rounding.
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= INTERVAL - 0.005
    assert times[-1] - times[0] >= 9 * INTERVAL - 0.005


async def test_free_slot_is_taken_without_waiting() -> None:
    """On an idle limiter, wait() returns 0 at once, and the next caller waits one interval."""
    limiter = RateLimiter(RATE)
    with anyio.fail_after(10):
        assert 0 == await limiter.wait()
        waited = await limiter.wait()
    assert INTERVAL - 0.005 <= waited < INTERVAL + SLACK


async def test_client_recovers_from_cancelled_rate_waiters(server: LocalServer) -> None:
    """After 100 requests cancelled while waiting for their rate slot, a new one is not delayed."""
    with anyio.fail_after(20):
        async with AsyncResilientClient(max_per_second=RATE) as client:
            handles = [await client.get(server.url_for(f"/queued/{i}")) for i in range(100)]
            # The first takes the free slot; the other 99 queue for theirs.
            await _until_waiting(client, 99)
            for handle in handles:
                handle.cancel()
            for handle in handles:
                await handle.wait_result()
            await client.wait_for_all_requests()
            start = anyio.current_time()
            response = await (await client.get(server.url_for("/fresh")))
            elapsed = anyio.current_time() - start
            stats = client.stats()
    assert 200 == response.status_code
    assert elapsed < 0.5
    assert 0 == stats.waiting
    # At most the first request got a slot before the cancellation.
    assert sum(server.hits[f"/queued/{i}"] for i in range(100)) <= 1


async def test_client_still_spaces_requests_after_cancellations(server: LocalServer) -> None:
    """Once cancelled waiters are gone, ten requests at 20/s still take at least ~0.4 s."""
    with anyio.fail_after(20):
        async with AsyncResilientClient(max_per_second=RATE) as client:
            cancelled = [await client.get(server.url_for("/cancelled")) for _ in range(20)]
            await _until_waiting(client, 19)
            for handle in cancelled:
                handle.cancel()
            await client.wait_for_all_requests()
            start = anyio.current_time()
            handles = [await client.get(server.url_for("/spaced")) for _ in range(10)]
            responses = [await handle for handle in handles]
            elapsed = anyio.current_time() - start
    assert [200] * 10 == [r.status_code for r in responses]
    # Ten slots 1/20 s apart, the first at most one interval away: at least 9 intervals.
    assert elapsed >= 9 * INTERVAL - 0.05
    assert elapsed < 5.0
