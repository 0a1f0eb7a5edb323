"""
Events: their types and records, their delivery to plain and async callbacks, the isolation of
failing or slow callbacks, the bounded stream's counted drops, and delivery before close.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Callable

import anyio
import anyio.lowlevel
import httpx
import pytest

from typed_async_client import (
    AsyncEvent,
    AsyncResilientClient,
    EventType,
    RequestCancelledError,
    RequestContext,
    backoff_delay,
)
from typed_async_client._events import EventBus
from typed_async_client.testing import LocalServer

pytestmark = pytest.mark.anyio

ALL_TYPES = tuple(EventType)
FINAL_TYPES = (EventType.SUCCESS, EventType.ERROR, EventType.CANCELLED)


def _register_all(client: AsyncResilientClient, callback: Callable[[AsyncEvent], object]) -> None:
    for event_type in ALL_TYPES:
        client.add_event_callback(event_type, callback)


async def _wait_until(predicate: Callable[[], bool]) -> None:
    """Poll ``predicate`` at most 1,000 times, 10 ms apart (callers also hold a fail_after)."""
    for _ in range(1000):
        if predicate():
            return
        await anyio.sleep(0.01)
    raise AssertionError("condition never became true")


# -- records ----------------------------------------------------------------------------------


def test_event_type_members() -> None:
    """EventType has the request events and the budget and circuit events, as strings."""
    assert {
        "STARTED": "started",
        "RETRY": "retry",
        "SUCCESS": "success",
        "ERROR": "error",
        "CANCELLED": "cancelled",
        "BUDGET_EXHAUSTED": "budget_exhausted",
        "CIRCUIT_OPENED": "circuit_opened",
        "CIRCUIT_HALF_OPEN": "circuit_half_open",
        "CIRCUIT_CLOSED": "circuit_closed",
    } == {member.name: member.value for member in EventType}
    assert "retry" == str(EventType.RETRY)
    assert EventType("success") is EventType.SUCCESS


def test_async_event_is_frozen() -> None:
    """Assigning a field of an AsyncEvent raises FrozenInstanceError."""
    event = AsyncEvent(EventType.STARTED, RequestContext())
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.event_type = EventType.ERROR  # type: ignore[misc]
    assert {} == dict(event.data)
    assert event.error is None


# -- delivery ---------------------------------------------------------------------------------


async def test_plain_and_async_callbacks_receive_started_and_success(server: LocalServer) -> None:
    """Plain and async callbacks both receive STARTED then SUCCESS with the status code."""
    plain: list[AsyncEvent] = []
    awaited: list[AsyncEvent] = []

    async def async_callback(event: AsyncEvent) -> None:
        await anyio.lowlevel.checkpoint()
        awaited.append(event)

    context = RequestContext(request_id="ok", metadata={"k": "v"})
    with anyio.fail_after(10):
        async with AsyncResilientClient() as client:
            _register_all(client, plain.append)
            _register_all(client, async_callback)
            await (await client.get(server.url_for("/ok"), context=context))
    assert [EventType.STARTED, EventType.SUCCESS] == [e.event_type for e in plain]
    assert [(e.event_type, e.context) for e in plain] == [
        (e.event_type, e.context) for e in awaited
    ]
    started, success = plain
    assert ("ok", 0) == (started.context.request_id, started.context.current_attempt)
    assert 200 == success.data["status_code"]
    assert 1 == success.data["attempts"]
    assert success.error is None
    assert {"k": "v"} == dict(success.metadata)


async def test_http_error_status_is_a_success_event(server: LocalServer) -> None:
    """A 503 response ends with a SUCCESS event carrying status_code 503."""
    events: list[AsyncEvent] = []
    with anyio.fail_after(10):
        async with AsyncResilientClient() as client:
            client.add_event_callback(EventType.SUCCESS, events.append)
            client.add_event_callback(EventType.ERROR, events.append)
            await (await client.get(server.url_for("/status/503")))
    assert [(EventType.SUCCESS, 503)] == [(e.event_type, e.data["status_code"]) for e in events]


async def test_retry_and_error_events_carry_attempt_delay_and_error(refused_url: str) -> None:
    """RETRY events carry the next attempt's context, its delay and the error; ERROR ends it."""
    events: list[AsyncEvent] = []
    context = RequestContext(
        request_id="refused",
        max_retries=2,
        base_delay=0.002,
        max_delay=0.003,
        metadata={"k": "v"},
    )
    with anyio.fail_after(10):
        async with AsyncResilientClient() as client:
            _register_all(client, events.append)
            handle = await client.get(refused_url, context=context)
            with pytest.raises(httpx.ConnectError) as raised:
                await handle
    assert [EventType.STARTED, EventType.RETRY, EventType.RETRY, EventType.ERROR] == [
        e.event_type for e in events
    ]
    assert [0, 1, 2, 2] == [e.context.current_attempt for e in events]
    assert all("refused" == e.context.request_id for e in events)
    assert all({"k": "v"} == dict(e.metadata) for e in events)
    for retry_number, event in enumerate(events[1:3], start=1):
        ceiling = backoff_delay(retry_number, 0.002, 2.0, 0.003, jitter="none")
        assert retry_number + 1 == event.data["attempt"]
        assert 0.0 <= event.data["delay"] <= ceiling
        assert isinstance(event.error, httpx.ConnectError)
    error_event = events[-1]
    assert raised.value is error_event.error
    assert 3 == error_event.data["attempts"]


async def test_cancelled_request_emits_cancelled_event(server: LocalServer) -> None:
    """A request cancelled through its handle ends with one CANCELLED event."""
    events: list[AsyncEvent] = []
    with anyio.fail_after(10):
        async with AsyncResilientClient() as client:
            _register_all(client, events.append)
            handle = await client.get(
                server.url_for("/delay/5"), context=RequestContext(request_id="c")
            )
            await _wait_until(lambda: 1 == server.hits["/delay/5"])
            handle.cancel()
            with pytest.raises(RequestCancelledError):
                await handle
    assert [EventType.STARTED, EventType.CANCELLED] == [e.event_type for e in events]
    assert isinstance(events[-1].error, RequestCancelledError)
    assert 1 == events[-1].data["attempts"]


async def test_exactly_one_final_event_per_request(server: LocalServer, refused_url: str) -> None:
    """Each of several concurrent requests, successful or failing, gets one final event."""
    events: list[AsyncEvent] = []
    with anyio.fail_after(10):
        async with AsyncResilientClient() as client:
            _register_all(client, events.append)
            handles = [await client.get(server.url_for(f"/ok/{i}")) for i in range(4)]
            handles += [
                await client.get(refused_url, context=RequestContext(max_retries=1, base_delay=0))
                for _ in range(3)
            ]
            for handle in handles:
                await handle.wait_result()
    finals = Counter(e.context.request_id for e in events if e.event_type in FINAL_TYPES)
    assert {handle.request_id: 1 for handle in handles} == dict(finals)
    kinds = Counter(e.event_type for e in events)
    assert (7, 4, 3, 3) == (
        kinds[EventType.STARTED],
        kinds[EventType.SUCCESS],
        kinds[EventType.ERROR],
        kinds[EventType.RETRY],
    )


# -- failing and slow callbacks ---------------------------------------------------------------


async def test_raising_callback_is_logged_counted_and_isolated(
    server: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A raising callback is logged and counted; later callbacks and the requests go on."""
    caplog.set_level(logging.ERROR, logger="typed_async_client")
    good: list[str] = []

    def broken(event: AsyncEvent) -> None:
        raise RuntimeError("broken callback")

    async def broken_async(event: AsyncEvent) -> None:
        raise KeyError("broken async callback")

    with anyio.fail_after(10):
        async with AsyncResilientClient() as client:
            client.add_event_callback(EventType.SUCCESS, broken)
            client.add_event_callback(EventType.SUCCESS, broken_async)
            client.add_event_callback(
                EventType.SUCCESS, lambda e: good.append(e.context.request_id)
            )
            first = await (await client.get(server.url_for("/one")))
            second = await (await client.get(server.url_for("/two")))
        stats = client.stats()
    assert (200, 200) == (first.status_code, second.status_code)
    assert 2 == len(good)
    assert 4 == stats.callback_errors
    assert 2 == stats.succeeded
    logged = [r for r in caplog.records if "event callback" in r.getMessage()]
    assert 4 == len(logged)
    assert all(logging.ERROR == r.levelno for r in logged)
    assert {RuntimeError, KeyError} == {r.exc_info[0] for r in logged if r.exc_info}


async def test_slow_callback_never_blocks_requests_and_drops_are_counted(
    server: LocalServer,
) -> None:
    """With a blocked callback and a 2-slot stream, requests finish and 3 overflow events drop."""
    entered = anyio.Event()
    release = anyio.Event()
    delivered: list[str] = []

    async def slow(event: AsyncEvent) -> None:
        delivered.append(event.context.request_id)
        entered.set()
        await release.wait()

    with anyio.fail_after(10):
        async with AsyncResilientClient(event_queue_size=2) as client:
            client.add_event_callback(EventType.STARTED, slow)
            first = await client.get(server.url_for("/first"))
            await entered.wait()  # the dispatcher now holds the first event, blocked
            assert 200 == (await first).status_code
            handles = [await client.get(server.url_for(f"/next/{i}")) for i in range(5)]
            for handle in handles:
                assert 200 == (await handle).status_code
            blocked = client.stats()
            pending = client.event_queue_size
            release.set()
        final = client.stats()
    # 6 STARTED events: 1 in the callback, 2 buffered, 3 dropped.
    assert (6, 3, 2, 6) == (
        blocked.events_emitted,
        blocked.events_dropped,
        blocked.events_pending,
        blocked.succeeded,
    )
    assert 2 == pending
    assert (6, 3, 0) == (final.events_emitted, final.events_dropped, final.events_pending)
    assert final.events_emitted - final.events_dropped == len(delivered)
    assert first.request_id == delivered[0]


async def test_events_emitted_before_close_are_all_delivered(server: LocalServer) -> None:
    """Events still queued when the block ends are all delivered before `async with` exits."""
    entered = anyio.Event()
    gate = anyio.Event()
    delivered: list[AsyncEvent] = []

    async def gated(event: AsyncEvent) -> None:
        entered.set()
        await gate.wait()
        delivered.append(event)

    with anyio.fail_after(10):
        async with AsyncResilientClient() as client:
            client.add_event_callback(EventType.STARTED, gated)
            client.add_event_callback(EventType.SUCCESS, gated)
            handles = [await client.get(server.url_for(f"/r/{i}")) for i in range(10)]
            for handle in handles:
                await handle
            await entered.wait()
            before = client.stats()
            assert [] == delivered
            gate.set()
        after = client.stats()
    assert (20, 0, 19) == (before.events_emitted, before.events_dropped, before.events_pending)
    assert 20 == len(delivered)
    assert {EventType.STARTED: 10, EventType.SUCCESS: 10} == Counter(
        e.event_type for e in delivered
    )
    assert (20, 0, 0) == (after.events_emitted, after.events_dropped, after.events_pending)


# -- registration -----------------------------------------------------------------------------


async def test_removed_callback_is_no_longer_called(server: LocalServer) -> None:
    """A removed callback is not called, and with no callback left no event is built."""
    calls: list[AsyncEvent] = []
    with anyio.fail_after(10):
        async with AsyncResilientClient() as client:
            client.add_event_callback(EventType.STARTED, calls.append)
            client.remove_event_callback(EventType.STARTED, calls.append)
            await (await client.get(server.url_for("/ok")))
        stats = client.stats()
    assert [] == calls
    assert 0 == stats.events_emitted


def test_removing_an_unregistered_callback_raises() -> None:
    """Removing a callback that is not registered for that type raises ValueError."""
    client = AsyncResilientClient()
    calls: list[AsyncEvent] = []
    client.add_event_callback(EventType.STARTED, calls.append)
    with pytest.raises(ValueError, match="not registered"):
        client.remove_event_callback(EventType.SUCCESS, calls.append)
    client.remove_event_callback(EventType.STARTED, calls.append)
    with pytest.raises(ValueError, match="not registered"):
        client.remove_event_callback(EventType.STARTED, calls.append)


@pytest.mark.parametrize(
    ("event_type", "callback"),
    [
        pytest.param("started", print, id="str-event-type"),
        pytest.param(None, print, id="none-event-type"),
        pytest.param(EventType.STARTED, "not callable", id="str-callback"),
        pytest.param(EventType.STARTED, None, id="none-callback"),
    ],
)
def test_add_event_callback_rejects_bad_arguments(event_type: object, callback: object) -> None:
    """add_event_callback raises TypeError for a non-EventType type or a non-callable."""
    client = AsyncResilientClient()
    with pytest.raises(TypeError):
        client.add_event_callback(event_type, callback)  # type: ignore[arg-type]


async def test_no_event_is_built_without_callbacks(server: LocalServer, refused_url: str) -> None:
    """Without callbacks no event is built, and only the observed types are built otherwise."""
    quick = RequestContext(max_retries=1, base_delay=0.0)
    with anyio.fail_after(10):
        async with AsyncResilientClient() as bare:
            await (await bare.get(server.url_for("/ok")))
            await (await bare.get(refused_url, context=quick)).wait_result()
        async with AsyncResilientClient() as observed:
            successes: list[AsyncEvent] = []
            observed.add_event_callback(EventType.SUCCESS, successes.append)
            await (await observed.get(server.url_for("/ok")))
            await (
                await observed.get(refused_url, context=quick.clone(request_id="q2"))
            ).wait_result()
    assert 0 == bare.stats().events_emitted
    assert 1 == bare.stats().retries
    assert 1 == observed.stats().events_emitted
    assert 1 == len(successes)


def test_event_queue_size_is_validated() -> None:
    """event_queue_size must be a positive int; infinite or fractional sizes are rejected."""
    for bad in (0, -1):
        with pytest.raises(ValueError, match=r"^event_queue_size"):
            AsyncResilientClient(event_queue_size=bad)
    for wrong in (True, 1.5, float("inf")):
        with pytest.raises(TypeError, match=r"^event_queue_size"):
            AsyncResilientClient(event_queue_size=wrong)  # type: ignore[arg-type]


# -- EventBus, directly -----------------------------------------------------------------------


def test_bus_drops_and_counts_events_before_it_runs() -> None:
    """An observed event emitted before the dispatcher runs is counted as emitted and dropped."""
    bus = EventBus(4)
    bus.add_callback(EventType.STARTED, print)
    bus.emit(AsyncEvent(EventType.STARTED, RequestContext()))
    assert (1, 1, 0) == (bus.emitted, bus.dropped, bus.pending)


def test_bus_wants_only_registered_types() -> None:
    """wants() is true exactly for the types that have a callback."""
    bus = EventBus(1)
    bus.add_callback(EventType.RETRY, print)
    assert [EventType.RETRY] == [t for t in EventType if bus.wants(t)]
    bus.remove_callback(EventType.RETRY, print)
    assert [] == [t for t in EventType if bus.wants(t)]


async def test_bus_delivers_in_order_and_drains_on_close() -> None:
    """The dispatcher calls callbacks in registration order, per event in emission order, and
    delivers what was queued before close; events emitted after close are dropped."""
    bus = EventBus(8)
    calls: list[tuple[str, str]] = []

    async def second(event: AsyncEvent) -> None:
        calls.append(("second", event.context.request_id))

    bus.add_callback(EventType.STARTED, lambda e: calls.append(("first", e.context.request_id)))
    bus.add_callback(EventType.STARTED, second)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(bus.run)
            for request_id in ("a", "b", "c"):
                bus.emit(AsyncEvent(EventType.STARTED, RequestContext(request_id=request_id)))
            bus.close()
            bus.emit(AsyncEvent(EventType.STARTED, RequestContext(request_id="late")))
    assert [(name, rid) for rid in "abc" for name in ("first", "second")] == calls
    assert (4, 3, 1, 0) == (bus.emitted, bus.delivered, bus.dropped, bus.pending)


async def test_bus_counts_callback_errors_and_keeps_dispatching() -> None:
    """A callback that raises is counted and the dispatcher goes on with the next events."""
    bus = EventBus(8)
    seen: list[str] = []

    def flaky(event: AsyncEvent) -> None:
        if "bad" == event.context.request_id:
            raise ValueError("flaky")
        seen.append(event.context.request_id)

    bus.add_callback(EventType.ERROR, flaky)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(bus.run)
            for request_id in ("ok1", "bad", "ok2"):
                bus.emit(AsyncEvent(EventType.ERROR, RequestContext(request_id=request_id)))
            bus.close()
    assert ["ok1", "ok2"] == seen
    assert (1, 3) == (bus.callback_errors, bus.delivered)


async def test_bus_drops_when_full_and_counts_exactly() -> None:
    """With no dispatcher reading, a full stream drops each further event and counts it."""
    bus = EventBus(3)
    received: list[AsyncEvent] = []
    bus.add_callback(EventType.RETRY, received.append)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(bus.run)
            await anyio.wait_all_tasks_blocked()  # the dispatcher now waits on the empty stream
            # No checkpoint between the emits: the waiting dispatcher takes the first event
            # directly, the buffer takes the next 3 and the other 6 are dropped.
            for _ in range(10):
                bus.emit(AsyncEvent(EventType.RETRY, RequestContext()))
            queued = bus.pending
            dropped = bus.dropped
            bus.close()
    assert 10 == bus.emitted
    assert 3 == queued
    assert bus.emitted == dropped + bus.delivered
    assert 6 == dropped  # the dispatcher, already waiting, took the first event directly
    assert 4 == len(received)
