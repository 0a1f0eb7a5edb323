"""
Event stream subscriptions (``async with client.events(...) as stream``): broadcast to every
subscriber, type filtering, drop-oldest overflow with exact counts, opt-in backpressure, the end
of the streams at close, unsubscription, callbacks beside subscribers, argument validation.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from anyio.abc import TaskStatus

from typed_async_client import (
    AsyncEvent,
    AsyncResilientClient,
    EventStream,
    EventType,
    RequestContext,
    RequestStatus,
)
from typed_async_client.testing import LocalServer

pytestmark = pytest.mark.anyio

FINAL_TYPES = frozenset({EventType.SUCCESS, EventType.ERROR, EventType.CANCELLED})


async def _wait_until(predicate: Callable[[], bool]) -> None:
    """Poll ``predicate`` at most 1,000 times, 10 ms apart (callers also hold a fail_after)."""
    for _ in range(1000):
        if predicate():
            return
        await anyio.sleep(0.01)
    raise AssertionError("condition never became true")


async def _collect(
    client: AsyncResilientClient,
    into: list[AsyncEvent],
    *event_types: EventType,
    buffer: int = 1000,
    task_status: TaskStatus[EventStream] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Subscribe, report the stream once subscribed, then read until the stream ends."""
    async with client.events(*event_types, buffer=buffer) as stream:
        task_status.started(stream)
        into.extend([event async for event in stream])


def _ids_and_types(events: list[AsyncEvent]) -> list[tuple[str, EventType]]:
    return [(event.context.request_id, event.event_type) for event in events]


# -- broadcast and filtering ------------------------------------------------------------------


async def test_two_concurrent_subscribers_each_see_every_event(server: LocalServer) -> None:
    """Two subscribers reading concurrently both receive every event, in the same order."""
    first: list[AsyncEvent] = []
    second: list[AsyncEvent] = []
    client = AsyncResilientClient()
    with anyio.fail_after(15):
        async with anyio.create_task_group() as tg, client:
            await tg.start(_collect, client, first)
            await tg.start(_collect, client, second)
            handles = [await client.get(server.url_for(f"/item/{i}")) for i in range(5)]
            await client.wait_for_all_requests()
            # Leaving the client's block ends both streams, so both readers finish.
    ids = {handle.request_id for handle in handles}
    assert 10 == len(first)
    assert _ids_and_types(first) == _ids_and_types(second)
    assert all(a is b for a, b in zip(first, second, strict=True))
    assert {(i, t) for i in ids for t in (EventType.STARTED, EventType.SUCCESS)} == set(
        _ids_and_types(first)
    )
    assert 10 == client.stats().events_emitted


async def test_subscribers_receive_only_the_types_they_asked_for(
    server: LocalServer, refused_url: str
) -> None:
    """A subscription without types gets everything; one with types gets only those types."""
    everything: list[AsyncEvent] = []
    retries: list[AsyncEvent] = []
    finals: list[AsyncEvent] = []
    client = AsyncResilientClient()
    context = RequestContext(request_id="refused", max_retries=2, base_delay=0.0)
    with anyio.fail_after(15):
        async with anyio.create_task_group() as tg, client:
            await tg.start(_collect, client, everything)
            await tg.start(_collect, client, retries, EventType.RETRY)
            await tg.start(_collect, client, finals, EventType.SUCCESS, EventType.ERROR)
            failing = await client.get(refused_url, context=context)
            ok = await client.get(server.url, context=RequestContext(request_id="ok"))
            await client.wait_for_all_requests()
    assert RequestStatus.ERROR == failing.result.status  # type: ignore[union-attr]
    assert RequestStatus.SUCCESS == ok.result.status  # type: ignore[union-attr]
    assert Counter(
        {
            ("refused", EventType.STARTED): 1,
            ("refused", EventType.RETRY): 2,
            ("refused", EventType.ERROR): 1,
            ("ok", EventType.STARTED): 1,
            ("ok", EventType.SUCCESS): 1,
        }
    ) == Counter(_ids_and_types(everything))
    assert [("refused", EventType.RETRY)] * 2 == _ids_and_types(retries)
    assert {("refused", EventType.ERROR), ("ok", EventType.SUCCESS)} == set(_ids_and_types(finals))
    assert 2 == len(finals)


async def test_only_subscribed_types_are_built(refused_url: str) -> None:
    """With a single RETRY subscriber and no callback, only RETRY events are emitted."""
    context = RequestContext(max_retries=3, base_delay=0.0)
    with anyio.fail_after(15):
        async with AsyncResilientClient() as client:
            async with client.events(EventType.RETRY) as stream:
                await (await client.get(refused_url, context=context)).wait_result()
                assert 3 == stream.pending
            stats = client.stats()
    assert (3, 0) == (stats.events_emitted, stats.events_dropped)


# -- overflow ---------------------------------------------------------------------------------


async def test_slow_subscriber_loses_its_oldest_events_only(server: LocalServer) -> None:
    """A subscriber that never reads keeps the newest events; requests and others go on."""
    fast: list[AsyncEvent] = []
    slow_got: list[AsyncEvent] = []
    client = AsyncResilientClient()
    with anyio.fail_after(15):
        async with anyio.create_task_group() as tg, client:
            await tg.start(_collect, client, fast)
            async with client.events(buffer=3) as slow:
                # Requests run one after the other, so the event order is known.
                for i in range(6):
                    response = await (await client.get(server.url_for(f"/seq/{i}")))
                    assert 200 == response.status_code
                assert (3, 9) == (slow.pending, slow.dropped)
                during = client.stats()
                slow_got = [await slow.receive() for _ in range(3)]
                assert 0 == slow.pending
            after_leaving = client.stats()
    assert 12 == len(fast)
    assert [EventType.STARTED, EventType.SUCCESS] * 6 == [e.event_type for e in fast]
    assert fast[-3:] == slow_got
    assert all(a is b for a, b in zip(fast[-3:], slow_got, strict=True))
    assert (12, 9, 6) == (during.events_emitted, during.events_dropped, during.succeeded)
    # The drops of a subscriber that has left still count.
    assert 9 == after_leaving.events_dropped
    assert 9 == client.stats().events_dropped


async def test_block_overflow_makes_requests_wait_for_the_subscriber(server: LocalServer) -> None:
    """With overflow="block" a full buffer holds a request back until the subscriber reads."""
    client = AsyncResilientClient()
    subscription = client.events(EventType.STARTED, buffer=1, overflow="block")
    with anyio.fail_after(15):
        async with client, subscription as stream:
            first = await client.get(server.url_for("/first"))
            assert 200 == (await first).status_code  # its STARTED fills the buffer
            second = await client.get(server.url_for("/second"))
            # Every task is now blocked: the second request can only be waiting for room.
            await anyio.wait_all_tasks_blocked()
            assert not second.done()
            assert 0 == server.hits["/second"]
            assert 1 == client.stats().attempts
            read_first = await stream.receive()
            assert first.request_id == read_first.context.request_id
            assert 200 == (await second).status_code
            read_second = await stream.receive()
            assert second.request_id == read_second.context.request_id
            assert 0 == stream.dropped
    assert (2, 0) == (client.stats().attempts, client.stats().events_dropped)


async def test_leaving_a_blocking_subscription_releases_waiting_requests(
    server: LocalServer,
) -> None:
    """A request waiting for room in a blocking subscriber goes on once the subscriber leaves."""
    with anyio.fail_after(15):
        async with AsyncResilientClient() as client:
            async with client.events(EventType.STARTED, buffer=1, overflow="block"):
                await (await client.get(server.url_for("/first")))
                second = await client.get(server.url_for("/second"))
                await anyio.wait_all_tasks_blocked()
                assert not second.done()
            assert 200 == (await second).status_code
    assert 1 == server.hits["/second"]


async def test_event_left_behind_by_a_blocking_subscriber_is_counted_in_stats(
    server: LocalServer,
) -> None:
    """The event a request was waiting to hand to a leaving subscriber counts as dropped."""
    with anyio.fail_after(15):
        async with AsyncResilientClient() as client:
            async with client.events(EventType.STARTED, buffer=1, overflow="block") as stream:
                await (await client.get(server.url_for("/first")))
                second = await client.get(server.url_for("/second"))
                await anyio.wait_all_tasks_blocked()
            await second
            stats = client.stats()
    assert 1 == stream.dropped
    assert 1 == stats.events_dropped


async def test_blocking_subscriber_receives_final_events(server: LocalServer) -> None:
    """A subscriber with overflow="block" and room in its buffer receives SUCCESS events."""
    with anyio.fail_after(15):
        client = await AsyncResilientClient().open()
        try:
            async with client.events(EventType.SUCCESS, buffer=10, overflow="block") as stream:
                handle = await client.get(server.url)
                await handle
                await client.close()
                received = [event async for event in stream]
        finally:
            await client.close(cancel=True)
    assert [(handle.request_id, EventType.SUCCESS)] == _ids_and_types(received)


async def test_full_blocking_subscriber_drops_final_events_without_blocking(
    server: LocalServer,
) -> None:
    """A final event never waits for a full blocking subscriber: it is dropped and counted."""
    client = AsyncResilientClient()
    subscription = client.events(EventType.STARTED, EventType.SUCCESS, buffer=1, overflow="block")
    with anyio.fail_after(15):
        async with client, subscription as stream:
            handle = await client.get(server.url)
            # STARTED fills the buffer; SUCCESS finds no room, yet the request completes.
            assert 200 == (await handle).status_code
            assert (1, 1) == (stream.pending, stream.dropped)
            assert 1 == client.stats().events_dropped
            received = await stream.receive()
    assert (handle.request_id, EventType.STARTED) == (
        received.context.request_id,
        received.event_type,
    )


# -- end of streams, unsubscription ----------------------------------------------------------


async def test_streams_end_at_close_after_the_queued_events(server: LocalServer) -> None:
    """Closing the client ends a stream once the events already queued in it are read."""
    with anyio.fail_after(15):
        client = await AsyncResilientClient().open()
        try:
            async with client.events() as stream:
                handles = [await client.get(server.url_for(f"/q/{i}")) for i in range(3)]
                for handle in handles:
                    await handle
                await client.close()
                assert 6 == stream.pending
                received = [event async for event in stream]
                # An ended stream stays ended.
                assert [] == [event async for event in stream]
        finally:
            await client.close(cancel=True)
    assert 6 == len(received)
    assert {h.request_id for h in handles} == {e.context.request_id for e in received}
    assert Counter({EventType.STARTED: 3, EventType.SUCCESS: 3}) == Counter(
        e.event_type for e in received
    )


async def test_reading_subscriber_loop_exits_when_the_client_closes(server: LocalServer) -> None:
    """A subscriber blocked in `async for` with nothing queued leaves its loop at close."""
    received: list[AsyncEvent] = []
    loop_exited = anyio.Event()

    async def subscriber(client: AsyncResilientClient, *, task_status: TaskStatus[None]) -> None:
        async with client.events() as stream:
            task_status.started()
            async for event in stream:
                received.append(event)  # noqa: PERF401 (the test polls the list as it grows)
        loop_exited.set()

    client = AsyncResilientClient()
    with anyio.fail_after(15):
        async with anyio.create_task_group() as tg:
            async with client:
                await tg.start(subscriber, client)
                await (await client.get(server.url))
                await _wait_until(lambda: 2 == len(received))
                assert not loop_exited.is_set()
            await loop_exited.wait()
    assert [EventType.STARTED, EventType.SUCCESS] == [e.event_type for e in received]


async def test_leaving_the_block_unsubscribes(server: LocalServer) -> None:
    """After the subscription's block is left, no event is built or counted for it."""
    with anyio.fail_after(15):
        async with AsyncResilientClient() as client:
            await (await client.get(server.url_for("/before")))
            assert 0 == client.stats().events_emitted
            async with client.events():
                await (await client.get(server.url_for("/during")))
                assert 2 == client.stats().events_emitted
            await (await client.get(server.url_for("/after")))
            stats = client.stats()
    assert (2, 0, 3) == (stats.events_emitted, stats.events_dropped, stats.succeeded)


async def test_subscribing_after_close_gives_an_ended_stream(server: LocalServer) -> None:
    """A subscription opened on a closed client yields no event and ends at once."""
    with anyio.fail_after(15):
        async with AsyncResilientClient() as client:
            await (await client.get(server.url))
        async with client.events() as stream:
            received = [event async for event in stream]
    assert [] == received
    assert 0 == stream.dropped


async def test_callbacks_keep_working_beside_subscribers(
    server: LocalServer, refused_url: str
) -> None:
    """Callbacks and a subscriber both receive the same events of the types they share."""
    called: list[AsyncEvent] = []
    subscribed: list[AsyncEvent] = []
    client = AsyncResilientClient()
    context = RequestContext(max_retries=1, base_delay=0.0)
    with anyio.fail_after(15):
        async with anyio.create_task_group() as tg, client:
            for event_type in EventType:
                client.add_event_callback(event_type, called.append)
            await tg.start(_collect, client, subscribed)
            await (await client.get(server.url)).wait_result()
            await (await client.get(refused_url, context=context)).wait_result()
    # STARTED and SUCCESS, then STARTED, RETRY and ERROR.
    assert 5 == len(called)
    assert _ids_and_types(called) == _ids_and_types(subscribed)
    assert (5, 0, 0) == (
        client.stats().events_emitted,
        client.stats().events_dropped,
        client.stats().callback_errors,
    )


# -- arguments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_types", "kwargs", "error", "match"),
    [
        pytest.param((), {"buffer": 0}, ValueError, "buffer", id="buffer-zero"),
        pytest.param((), {"buffer": -1}, ValueError, "buffer", id="buffer-negative"),
        pytest.param((), {"buffer": math.inf}, TypeError, "buffer", id="buffer-inf"),
        pytest.param((), {"buffer": 2.0}, TypeError, "buffer", id="buffer-float"),
        pytest.param((), {"buffer": True}, TypeError, "buffer", id="buffer-bool"),
        pytest.param((), {"overflow": "x"}, ValueError, "overflow", id="overflow-unknown"),
        pytest.param(("retry",), {}, TypeError, "EventType", id="type-as-string"),
        pytest.param((EventType.RETRY, 1), {}, TypeError, "EventType", id="type-as-int"),
    ],
)
async def test_bad_subscription_arguments_are_rejected(
    server: LocalServer,
    event_types: tuple[Any, ...],
    kwargs: dict[str, Any],
    error: type[Exception],
    match: str,
) -> None:
    """Bad buffer, overflow or event types raise at subscription and subscribe nothing."""
    with anyio.fail_after(15):
        async with AsyncResilientClient() as client:
            with pytest.raises(error, match=match):
                async with client.events(*event_types, **kwargs):
                    pass
            await (await client.get(server.url))
            assert 0 == client.stats().events_emitted


async def test_bad_subscription_arguments_raise_at_the_call() -> None:
    """client.events(buffer=0) raises ValueError at the call, before any `async with`."""
    with anyio.fail_after(15):
        async with AsyncResilientClient() as client:
            with pytest.raises(ValueError, match="buffer"):
                client.events(buffer=0)
