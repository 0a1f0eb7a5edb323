"""
Hardening, items 8 and 9: closing never waits for an observer, and results hold bounded memory.

Item 8: a blocking subscriber (``overflow="block"``) that stops reading, or a callback that
hangs, must not hold ``close()`` forever; what they miss is dropped and counted. Item 9: the
result store bounds the bytes of the response bodies it keeps, dropping the oldest bodies (the
results' records stay, marked ``body_evicted``).

The unit tests drive ``EventBus`` and ``ResultStore`` directly. Tests marked "needs wiring"
use client options that ``_client.py`` gains separately (``max_result_bytes``, the
``ClientStats`` fields ``results_body_bytes`` and ``results_bodies_evicted``, and close()
calling ``release_backpressure()`` and ``wait_finished(cancel_after=...)``).
"""

from __future__ import annotations

import gc
import math
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import httpx
import pytest

from typed_async_client import (
    AsyncEvent,
    AsyncResilientClient,
    EventStream,
    EventType,
    Overflow,
    RequestContext,
    RequestResult,
    RequestStatus,
)
from typed_async_client._events import EventBus
from typed_async_client._results import ResultStore, body_size
from typed_async_client.testing import LocalServer

pytestmark = pytest.mark.anyio

MIB = 1024 * 1024


@contextmanager
def _subscribed(
    bus: EventBus, event_types: frozenset[EventType], buffer: int, overflow: Overflow
) -> Iterator[EventStream]:
    """A subscription closed at the end, as ``client.events()`` does."""
    stream = bus.subscribe(event_types, buffer, overflow)
    try:
        yield stream
    finally:
        bus.unsubscribe(stream)


def _event(request_id: str = "r", event_type: EventType = EventType.STARTED) -> AsyncEvent:
    return AsyncEvent(event_type, RequestContext(request_id=request_id))


# -- item 8: the bus releases blocked publishers -----------------------------------------------


async def test_release_backpressure_lets_a_waiting_publisher_go_on_and_counts_its_event() -> None:
    """A publisher waiting on a full blocking subscriber returns at release; its event is
    dropped and counted on the stream and the bus, and the queued event stays readable."""
    bus = EventBus(8)
    second_done = anyio.Event()

    async def publish_second() -> None:
        await bus.publish(_event("second"))
        second_done.set()

    with anyio.fail_after(10), _subscribed(bus, frozenset(), 1, "block") as stream:
        async with anyio.create_task_group() as tg:
            await tg.start(bus.run)
            await bus.publish(_event("first"))
            tg.start_soon(publish_second)
            await anyio.wait_all_tasks_blocked()
            assert not second_done.is_set()
            bus.release_backpressure()
            await second_done.wait()
            assert (1, 1, 1) == (stream.dropped, bus.subscriber_dropped, stream.pending)
            assert not bus.blocking
            # Released for good: a later event finding the buffer full is dropped at once.
            await bus.publish(_event("third"))
            assert (2, 2) == (stream.dropped, bus.subscriber_dropped)
            # The stream has not ended: the subscriber still reads what it holds, and what fits.
            assert "first" == (await stream.receive()).context.request_id
            await bus.publish(_event("fourth"))
            assert "fourth" == (await stream.receive()).context.request_id
            bus.close()
    assert 2 == stream.dropped


async def test_bus_close_releases_every_publisher_blocked_on_a_silent_subscriber() -> None:
    """close() lets all publishers blocked on a subscriber that stopped reading go on; each
    lost event is counted, and the stream ends after the one it holds."""
    bus = EventBus(8)
    subscription = _subscribed(bus, frozenset({EventType.RETRY}), 1, "block")
    with anyio.fail_after(10), subscription as stream:
        async with anyio.create_task_group() as tg:
            await tg.start(bus.run)
            await bus.publish(_event("held", EventType.RETRY))
            for index in range(5):
                tg.start_soon(bus.publish, _event(f"blocked-{index}", EventType.RETRY))
            await anyio.wait_all_tasks_blocked()
            assert 0 == stream.dropped
            bus.close()
        await bus.wait_finished()
        received = [event.context.request_id async for event in stream]
    assert ["held"] == received
    assert (5, 5) == (stream.dropped, bus.subscriber_dropped)


async def test_blocking_subscription_opened_after_release_never_holds_a_publisher() -> None:
    """A subscription with overflow="block" opened after the release drops instead of waiting."""
    bus = EventBus(8)
    bus.release_backpressure()
    with anyio.fail_after(10), _subscribed(bus, frozenset(), 1, "block") as stream:
        async with anyio.create_task_group() as tg:
            await tg.start(bus.run)
            for index in range(3):
                await bus.publish(_event(f"e{index}"))
            bus.close()
        counts = (stream.pending, stream.dropped)
    assert (1, 2) == counts


async def test_leaving_a_subscription_still_counts_the_event_a_publisher_waited_with() -> None:
    """Unsubscribing still wakes a blocked publisher and counts its event (as before)."""
    bus = EventBus(8)
    stream = bus.subscribe(frozenset(), 1, "block")
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(bus.run)
            await bus.publish(_event("first"))
            tg.start_soon(bus.publish, _event("second"))
            await anyio.wait_all_tasks_blocked()
            bus.unsubscribe(stream)  # closes the stream, whose buffer is thrown away
            await anyio.wait_all_tasks_blocked()
            bus.close()
    assert (1, 1) == (stream.dropped, bus.subscriber_dropped)


# -- item 8: the dispatcher's end is bounded ----------------------------------------------------


async def test_wait_finished_cancel_after_ends_a_hung_callback_and_counts_what_is_left() -> None:
    """Past cancel_after the dispatcher is cancelled: the event in the hung callback and those
    still queued are counted as dropped, and the wait returns promptly."""
    bus = EventBus(16)
    entered = anyio.Event()

    async def hang(event: AsyncEvent) -> None:
        entered.set()
        await anyio.sleep_forever()

    bus.add_callback(EventType.SUCCESS, hang)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(bus.run)
            for index in range(5):
                bus.emit(_event(f"s{index}", EventType.SUCCESS))
            await entered.wait()
            bus.close(drain_timeout=60.0)
            started = time.monotonic()
            await bus.wait_finished(cancel_after=0.1)
            waited = time.monotonic() - started
    assert waited < 5.0
    assert (5, 0, 5, 0) == (bus.emitted, bus.delivered, bus.dropped, bus.pending)


async def test_wait_finished_cancel_after_zero_cancels_at_once_and_later_events_count() -> None:
    """cancel_after=0 ends the dispatcher now; events emitted after its end are dropped too."""
    bus = EventBus(4)
    delivered: list[AsyncEvent] = []
    bus.add_callback(EventType.RETRY, delivered.append)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(bus.run)
            await bus.wait_finished(cancel_after=0)
            bus.emit(_event("late", EventType.RETRY))
            bus.close()
    assert ([], 1) == (delivered, bus.dropped)


async def test_wait_finished_without_cancel_after_delivers_everything() -> None:
    """The default wait lets the callbacks take every queued event."""
    bus = EventBus(16)
    delivered: list[str] = []

    async def slow(event: AsyncEvent) -> None:
        await anyio.sleep(0.01)
        delivered.append(event.context.request_id)

    bus.add_callback(EventType.SUCCESS, slow)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(bus.run)
            for index in range(5):
                bus.emit(_event(f"s{index}", EventType.SUCCESS))
            bus.close()
            await bus.wait_finished()
    assert [f"s{index}" for index in range(5)] == delivered
    assert 0 == bus.dropped


@pytest.mark.parametrize("wrong", [-1.0, math.nan])
async def test_wait_finished_rejects_negative_or_nan_cancel_after(wrong: float) -> None:
    """A negative or NaN cancel_after is a ValueError naming the argument."""
    with pytest.raises(ValueError, match="cancel_after must be >= 0"):
        await EventBus(1).wait_finished(cancel_after=wrong)


async def test_wait_finished_rejects_a_non_number() -> None:
    """A bool or a string for cancel_after is a TypeError."""
    for wrong in (True, "1"):
        with pytest.raises(TypeError, match="cancel_after must be a number"):
            await EventBus(1).wait_finished(cancel_after=wrong)  # type: ignore[arg-type]


async def test_in_dispatcher_is_true_only_inside_callbacks() -> None:
    """in_dispatcher() is true in a callback, false elsewhere and after the dispatcher ends."""
    bus = EventBus(4)
    seen: list[bool] = []
    bus.add_callback(EventType.STARTED, lambda event: seen.append(bus.in_dispatcher()))
    assert not bus.in_dispatcher()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(bus.run)
            assert not bus.in_dispatcher()
            bus.emit(_event())
            bus.close()
    assert [True] == seen
    assert not bus.in_dispatcher()


async def test_wait_finished_from_a_callback_returns_at_once() -> None:
    """A callback that closes the bus and waits for the dispatcher does not deadlock it."""
    bus = EventBus(4)
    calls: list[str] = []

    async def close_from_inside(event: AsyncEvent) -> None:
        bus.close()
        await bus.wait_finished()
        calls.append(event.context.request_id)

    bus.add_callback(EventType.STARTED, close_from_inside)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(bus.run)
            bus.emit(_event("a"))
            bus.emit(_event("b"))
        await bus.wait_finished()
    assert ["a", "b"] == calls


# -- item 8: the client ---------------------------------------------------------------------


async def test_close_from_an_event_callback_does_not_deadlock(server: LocalServer) -> None:
    """A client closed from one of its own event callbacks closes (uses in_dispatcher())."""
    closed_in_callback: list[bool] = []
    done = anyio.Event()
    with anyio.fail_after(10):
        async with AsyncResilientClient() as client:

            async def close_on_success(event: AsyncEvent) -> None:
                await client.close()
                closed_in_callback.append(client.is_closed)
                done.set()

            client.add_event_callback(EventType.SUCCESS, close_on_success)
            await (await client.get(server.url))
            await done.wait()
    assert [True] == closed_in_callback


async def test_close_returns_while_a_blocking_subscriber_has_stopped_reading(
    server: LocalServer,
) -> None:
    """Needs wiring (close() calls bus.release_backpressure() first). A blocking subscriber
    with buffer=1 reads one event and stops: close() still returns promptly, every request
    succeeds, and each event the subscriber missed is counted on its stream and in stats."""
    requests = 30
    client = AsyncResilientClient()
    with anyio.fail_after(30):
        async with client, client.events(buffer=1, overflow="block") as stream:
            handles = [await client.get(server.url_for(f"/n/{i}")) for i in range(requests)]
            first = await stream.receive()
            await anyio.wait_all_tasks_blocked()
            assert any(not handle.done() for handle in handles)  # held by the subscriber
            with anyio.fail_after(5):
                await client.close()
            stats = client.stats()
            pending = stream.pending
            rest = [event async for event in stream]  # ended by the close
    assert first.event_type is EventType.STARTED
    assert (requests, 0, 0) == (stats.succeeded, stats.cancelled, stats.in_flight)
    # Every request emitted STARTED and SUCCESS; each was read, is still queued, or dropped.
    assert 2 * requests == stats.events_emitted
    assert stats.events_emitted == 1 + pending + stream.dropped
    assert stream.dropped == stats.events_dropped
    assert pending == len(rest)


async def test_close_with_grace_bounds_a_hung_callback_and_counts_its_events(
    server: LocalServer,
) -> None:
    """Needs wiring (close(grace=g) calls bus.wait_finished(cancel_after=<what is left of g>)).
    A callback that hangs cannot hold close() past its grace; its events are counted dropped."""
    entered = anyio.Event()

    async def hang(event: AsyncEvent) -> None:
        entered.set()
        await anyio.sleep_forever()

    with anyio.fail_after(30):
        async with AsyncResilientClient() as client:
            client.add_event_callback(EventType.SUCCESS, hang)
            handles = [await client.get(server.url_for(f"/g/{i}")) for i in range(3)]
            for handle in handles:
                await handle
            await entered.wait()
            with anyio.fail_after(5):
                await client.close(grace=0.5)
            stats = client.stats()
    assert (3, 3) == (stats.events_emitted, stats.events_dropped)


# -- item 9: the store's byte bound ------------------------------------------------------------


def _result(
    request_id: str, body: bytes, *, history: list[httpx.Response] | None = None
) -> RequestResult:
    request = httpx.Request("GET", f"https://example.test/{request_id}")
    response = httpx.Response(
        200,
        headers={"content-type": "application/octet-stream", "x-id": request_id},
        content=body,
        request=request,
        history=history or [],
        extensions={"http_version": b"HTTP/1.1", "reason_phrase": b"OK"},
    )
    now = time.time()
    return RequestResult(
        request_id=request_id,
        status=RequestStatus.SUCCESS,
        response=response,
        error=None,
        attempts=1,
        total_time=0.01,
        start_time=now,
        end_time=now,
        context=RequestContext(request_id=request_id),
        method="GET",
        url=str(request.url),
    )


def test_store_counts_the_bytes_of_the_bodies_it_keeps() -> None:
    """body_bytes is the sum of the kept bodies; nothing is evicted under the bound."""
    store = ResultStore(10, max_bytes=1_000)
    for index in range(3):
        store.add(_result(f"r{index}", b"x" * 100))
    assert (300, 0, 0, 3) == (store.body_bytes, store.bodies_evicted, store.evicted, len(store))


def test_store_drops_the_oldest_bodies_first_and_keeps_their_records() -> None:
    """Past the byte bound the oldest bodies go; their results stay, marked, with status,
    headers and request, and a body that httpx refuses to show."""
    store = ResultStore(10, max_bytes=250)
    originals = [_result(f"r{index}", bytes([65 + index]) * 100) for index in range(4)]
    for result in originals:
        store.add(result)
    assert (200, 2, 0, 4) == (store.body_bytes, store.bodies_evicted, store.evicted, len(store))
    assert ["r0", "r1", "r2", "r3"] == list(store.snapshot())  # finishing order kept
    assert [True, True, False, False] == [r.body_evicted for r in store.snapshot().values()]
    stripped = store.get("r0")
    assert stripped is not None
    assert stripped.response is not None
    assert (200, "r0", "HTTP/1.1") == (
        stripped.status_code,
        stripped.response.headers["x-id"],
        stripped.response.http_version,
    )
    assert originals[0].request_id == stripped.request_id
    assert originals[0].history == stripped.history
    assert "https://example.test/r0" == str(stripped.response.request.url)
    with pytest.raises(httpx.ResponseNotRead):
        _ = stripped.response.content
    kept = store.get("r3")
    assert kept is originals[3]
    # The result handed to whoever awaited the request keeps its body.
    assert originals[0].response is not None
    assert b"A" * 100 == originals[0].response.content


async def test_stripped_response_cannot_be_read_again() -> None:
    """Reading an evicted body with aread() raises httpx's StreamConsumed, not b''."""
    store = ResultStore(10, max_bytes=0)
    store.add(_result("r", b"payload"))
    result = store.get("r")
    assert result is not None
    assert result.response is not None
    assert result.body_evicted
    with pytest.raises(httpx.StreamConsumed):
        await result.response.aread()
    await result.response.aclose()


def test_store_never_keeps_a_body_larger_than_its_bound() -> None:
    """A body larger than the bound on its own is dropped on arrival; older bodies stay."""
    store = ResultStore(10, max_bytes=150)
    store.add(_result("small", b"s" * 100))
    store.add(_result("huge", b"h" * 151))
    huge = store.get("huge")
    small = store.get("small")
    assert huge is not None
    assert small is not None
    assert (True, False) == (huge.body_evicted, small.body_evicted)
    assert (100, 1) == (store.body_bytes, store.bodies_evicted)


def test_store_byte_count_follows_count_evictions_replacements_and_clearing() -> None:
    """Whole-result evictions, a reused request id and clear_older_than all release bytes."""
    store = ResultStore(2, max_bytes=None)
    store.add(_result("a", b"a" * 10))
    store.add(_result("b", b"b" * 20))
    store.add(_result("c", b"c" * 40))  # evicts "a" whole
    assert (60, 1, 0) == (store.body_bytes, store.evicted, store.bodies_evicted)
    store.add(_result("b", b"B" * 5))  # replaces "b"
    assert 45 == store.body_bytes
    assert 2 == store.clear_older_than(0.0, now=time.time() + 1.0)
    assert (0, 0) == (store.body_bytes, len(store))


def test_store_without_a_byte_bound_keeps_every_body() -> None:
    """max_bytes=None bounds bodies by the result count alone, still counting their bytes."""
    store = ResultStore(100, max_bytes=None)
    for index in range(50):
        store.add(_result(f"r{index}", b"x" * 1_000))
    assert (50_000, 0) == (store.body_bytes, store.bodies_evicted)
    assert not any(r.body_evicted for r in store.snapshot().values())


def test_store_with_a_zero_byte_bound_keeps_no_body() -> None:
    """max_bytes=0 keeps every record and no body; empty bodies are not counted as evicted."""
    store = ResultStore(10, max_bytes=0)
    store.add(_result("full", b"x"))
    store.add(_result("empty", b""))
    full, empty = store.get("full"), store.get("empty")
    assert full is not None
    assert empty is not None
    assert (True, False) == (full.body_evicted, empty.body_evicted)
    assert (0, 1) == (store.body_bytes, store.bodies_evicted)


def test_store_counts_and_drops_redirect_history_bodies() -> None:
    """The bodies of the redirect responses in a result's history count, and go with it."""
    hop = httpx.Response(
        302, headers={"location": "/b"}, content=b"m" * 30, request=httpx.Request("GET", "/a")
    )
    result = _result("r", b"x" * 100, history=[hop])
    assert 130 == body_size(result.response)
    store = ResultStore(10, max_bytes=129)
    store.add(result)
    kept = store.get("r")
    assert kept is not None
    assert kept.response is not None
    assert [302] == [earlier.status_code for earlier in kept.response.history]
    assert 0 == body_size(kept.response)
    with pytest.raises(httpx.ResponseNotRead):
        _ = kept.response.history[0].content


def test_body_size_of_an_unread_or_missing_response_is_zero() -> None:
    """A streamed response never read into memory, or no response, holds no body bytes."""
    streamed = httpx.Response(200, stream=httpx.ByteStream(b"x" * 100))
    assert (0, 0) == (body_size(streamed), body_size(None))


@pytest.mark.parametrize(
    ("wrong", "error"),
    [(-1, ValueError), (True, TypeError), (1.5, TypeError), ("1", TypeError)],
)
def test_store_rejects_bad_byte_bounds(wrong: object, error: type[Exception]) -> None:
    """The byte bound is an int >= 0 or None; the message names max_result_bytes."""
    with pytest.raises(error, match="max_result_bytes"):
        ResultStore(10, max_bytes=wrong)  # type: ignore[arg-type]


# -- item 9: the client ------------------------------------------------------------------------


@contextmanager
def _traced() -> Iterator[None]:
    """Trace allocations for the block (unless something already traces them)."""
    already = tracemalloc.is_tracing()
    if not already:
        tracemalloc.start()
    try:
        yield
    finally:
        if not already:
            tracemalloc.stop()


async def _download(
    client: AsyncResilientClient, server: LocalServer, count: int, size: int
) -> None:
    """Fetch ``count`` bodies of ``size`` bytes one after the other, keeping no reference."""
    for _ in range(count):
        handle = await client.get(server.url_for(f"/big/{size}"))
        response = await handle
        assert size == len(response.content)
        del handle, response


async def test_client_keeps_response_bodies_within_the_default_byte_bound(
    server: LocalServer,
) -> None:
    """36 unfetched 2 MiB responses (72 MiB) leave the default 64 MiB of bodies: the 4 oldest
    results lose their body but stay, and traced memory stays near the bound."""
    count, size = 36, 2 * MIB
    with anyio.fail_after(60), _traced():
        async with AsyncResilientClient() as client:
            gc.collect()
            baseline, _ = tracemalloc.get_traced_memory()
            await _download(client, server, count, size)
            gc.collect()
            retained, _ = tracemalloc.get_traced_memory()
            results = list(client.get_all_results().values())
    assert count == len(results)
    assert all(r.status_code == 200 for r in results)
    assert [True] * 4 + [False] * 32 == [r.body_evicted for r in results]
    kept = sum(len(r.response.content) for r in results if r.response and not r.body_evicted)
    assert 32 * size == kept
    assert retained - baseline < 64 * MIB + 6 * MIB


async def test_client_max_result_bytes_bounds_the_bodies_kept(server: LocalServer) -> None:
    """Needs wiring (max_result_bytes, stats fields). 40 unfetched 2 MiB responses under an
    8 MiB bound: 4 bodies kept, 36 counted as evicted, every record kept, memory bounded."""
    count, size, bound = 40, 2 * MIB, 8 * MIB
    with anyio.fail_after(60), _traced():
        async with AsyncResilientClient(max_result_bytes=bound) as client:
            gc.collect()
            baseline, _ = tracemalloc.get_traced_memory()
            await _download(client, server, count, size)
            gc.collect()
            retained, _ = tracemalloc.get_traced_memory()
            stats = client.stats()
    assert (count, 0) == (stats.results_kept, stats.results_evicted)
    assert bound == stats.results_body_bytes
    assert count - 4 == stats.results_bodies_evicted
    assert retained - baseline < bound + 6 * MIB


async def test_client_max_result_bytes_none_keeps_every_body(server: LocalServer) -> None:
    """Needs wiring. max_result_bytes=None keeps every body, and counts their bytes."""
    with anyio.fail_after(30):
        async with AsyncResilientClient(max_result_bytes=None) as client:
            await _download(client, server, 5, 1_000)
            stats = client.stats()
    assert (5_000, 0) == (
        stats.results_body_bytes,
        stats.results_bodies_evicted,
    )


def test_client_rejects_a_negative_max_result_bytes() -> None:
    """Needs wiring. A negative max_result_bytes is a ValueError naming it."""
    with pytest.raises(ValueError, match="max_result_bytes"):
        AsyncResilientClient(max_result_bytes=-1)
