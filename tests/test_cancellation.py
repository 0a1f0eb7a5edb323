"""
The cancellation suite, in the spirit of httpcore's ``tests/test_cancellations.py``: a request
cancelled while connecting, while waiting for its response, during a backoff sleep or before its
task started ends CANCELLED with one final event and no further attempt; cancelling the awaiting
task leaves the request alone; closing the client with requests in flight waits, cancels or
grants a grace period, and leaves no task, stream or connection behind; BaseExceptions are never
retried nor swallowed.
"""

from __future__ import annotations

import math
import random
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import httpx
import pytest
from anyio.abc import TaskStatus

from typed_async_client import (
    AsyncEvent,
    AsyncResilientClient,
    EventStream,
    EventType,
    RequestCancelledError,
    RequestContext,
    RequestHandle,
    RequestStatus,
)
from typed_async_client.testing import LocalServer

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found,unused-ignore]

pytestmark = pytest.mark.anyio

FINAL_TYPES = frozenset({EventType.SUCCESS, EventType.ERROR, EventType.CANCELLED})


@dataclass(frozen=True)
class SeededContext(RequestContext):
    """A context whose full-jitter backoff draws from a RNG seeded per attempt."""

    seed: int = 1234

    def backoff_delay(self, rand: Callable[[], float] | None = None) -> float:
        return RequestContext.backoff_delay(
            self, rand=random.Random(self.seed + self.current_attempt).random
        )


async def _wait_until(predicate: Callable[[], bool]) -> None:
    """Poll ``predicate`` at most 1,000 times, 10 ms apart (callers also hold a fail_after)."""
    for _ in range(1000):
        if predicate():
            return
        await anyio.sleep(0.01)
    raise AssertionError("condition never became true")


def _client_tasks() -> set[str]:
    """Names of the running tasks started by a client: its requests and its dispatcher."""
    names = {task.name or "" for task in anyio.get_running_tasks()}
    return {name for name in names if name.startswith("request ") or "EventBus" in name}


def _finals(events: list[AsyncEvent], request_id: str) -> list[EventType]:
    return [
        e.event_type
        for e in events
        if e.context.request_id == request_id and e.event_type in FINAL_TYPES
    ]


@asynccontextmanager
async def _observed(client: AsyncResilientClient) -> AsyncIterator[EventStream]:
    """Open the client with a subscription to every event; close it (cancelling) at the end."""
    await client.open()
    try:
        async with client.events(buffer=1000) as stream:
            yield stream
    finally:
        await client.close(cancel=True)


async def _close_and_drain(client: AsyncResilientClient, stream: EventStream) -> list[AsyncEvent]:
    """Close the client, then read every event its subscription still holds."""
    await client.close()
    return [event async for event in stream]


async def _assert_cancelled(handle: RequestHandle) -> None:
    """The handle ended CANCELLED and awaiting it raises the library's error, every time."""
    for _ in range(2):
        with pytest.raises(RequestCancelledError) as excinfo:
            await handle
        assert not isinstance(excinfo.value, anyio.get_cancelled_exc_class())
    assert handle.result is not None
    assert RequestStatus.CANCELLED == handle.result.status
    assert excinfo.value is handle.result.error
    assert handle.request_id == excinfo.value.request_id


# -- handle.cancel() --------------------------------------------------------------------------


async def test_cancel_while_waiting_for_the_response(server: LocalServer) -> None:
    """A request cancelled while the server holds its response ends CANCELLED, not retried."""
    context = RequestContext(request_id="waiting", max_retries=3, base_delay=0.0)
    with anyio.fail_after(15):
        client = AsyncResilientClient()
        async with _observed(client) as stream:
            handle = await client.get(server.url_for("/delay/30"), context=context)
            await _wait_until(lambda: 1 == server.hits["/delay/30"])
            handle.cancel()
            handle.cancel()  # a second cancel changes nothing
            await _assert_cancelled(handle)
            await client.wait_for_all_requests()
            events = await _close_and_drain(client, stream)
        stats = client.stats()
    assert [EventType.CANCELLED] == _finals(events, "waiting")
    assert [] == [e for e in events if e.event_type is EventType.RETRY]
    assert (1, 0, 1, 0) == (stats.attempts, stats.retries, stats.cancelled, stats.failed)
    assert 1 == handle.result.attempts  # type: ignore[union-attr]
    assert 1 == server.hits["/delay/30"]


async def test_cancel_wins_over_a_pending_deadline(server: LocalServer) -> None:
    """handle.cancel() on a request with a deadline of its own ends it CANCELLED, not timed out."""
    context = RequestContext(max_retries=0, total_timeout=20.0)
    with anyio.fail_after(15):
        async with AsyncResilientClient(timeout=10.0) as client:
            handle = await client.get(server.url_for("/delay/30"), context=context)
            await _wait_until(lambda: 1 == server.hits["/delay/30"])
            assert handle.deadline != math.inf
            handle.cancel()
            result = await handle.wait_result()
    assert result.status is RequestStatus.CANCELLED
    assert isinstance(result.error, RequestCancelledError)
    assert result.attempts == 1
    assert result.history[0].error is not None  # the interrupted attempt is on record


async def test_cancel_while_connecting(server: LocalServer) -> None:
    """A request cancelled as httpx starts sending it ends CANCELLED after that one attempt."""
    sending = anyio.Event()

    async def on_request(request: httpx.Request) -> None:
        sending.set()

    context = RequestContext(request_id="connecting", max_retries=3, base_delay=0.0)
    with anyio.fail_after(15):
        client = AsyncResilientClient(event_hooks={"request": [on_request]})
        async with _observed(client) as stream:
            handle = await client.get(server.url_for("/delay/30"), context=context)
            await sending.wait()
            handle.cancel()
            await _assert_cancelled(handle)
            await client.wait_for_all_requests()
            events = await _close_and_drain(client, stream)
        stats = client.stats()
    assert [EventType.CANCELLED] == _finals(events, "connecting")
    assert (1, 0, 1) == (stats.attempts, stats.retries, stats.cancelled)
    # The single attempt may or may not have reached the server; there is no second one.
    assert server.hits["/delay/30"] <= 1


@pytest.mark.parametrize("observer", ["subscriber", "callback"])
async def test_cancel_during_a_backoff_sleep(refused_url: str, observer: str) -> None:
    """A request cancelled in its backoff sleep ends CANCELLED without another attempt."""
    context = SeededContext(request_id="sleeping", max_retries=3, base_delay=10.0, max_delay=10.0)
    # The seeded first sleep is long, so the cancel surely lands inside it, yet it fits in the
    # 15 s backstop deadline the request inherits (or no retry would even start).
    assert 5.0 < context.backoff_delay() < 12.0
    retried = anyio.Event()
    retry_events: list[AsyncEvent] = []

    def on_retry(event: AsyncEvent) -> None:
        retry_events.append(event)
        retried.set()

    with anyio.fail_after(15):
        client = AsyncResilientClient()
        async with _observed(client) as stream:
            if observer == "callback":
                client.add_event_callback(EventType.RETRY, on_retry)
            async with client.events(EventType.RETRY) as retries:
                handle = await client.get(refused_url, context=context)
                if observer == "subscriber":
                    retry_events.append(await retries.receive())
                else:
                    await retried.wait()
            before = client.stats()
            handle.cancel()
            await _assert_cancelled(handle)
            await client.wait_for_all_requests()
            events = await _close_and_drain(client, stream)
        after = client.stats()
    assert [context.backoff_delay()] == [e.data["delay"] for e in retry_events]
    assert (1, 1) == (before.attempts, before.retries)
    assert (1, 1, 1) == (after.attempts, after.retries, after.cancelled)
    assert 1 == handle.result.attempts  # type: ignore[union-attr]
    assert [EventType.CANCELLED] == _finals(events, "sleeping")
    assert [EventType.STARTED, EventType.RETRY, EventType.CANCELLED] == [
        e.event_type for e in events
    ]


async def test_cancel_before_the_task_started(server: LocalServer) -> None:
    """A request cancelled right after submission ends CANCELLED with no attempt at all."""
    context = RequestContext(request_id="early", max_retries=3, base_delay=0.0)
    with anyio.fail_after(15):
        client = AsyncResilientClient()
        async with _observed(client) as stream:
            handle = await client.get(server.url_for("/early"), context=context)
            handle.cancel()  # no checkpoint since submission: its task has not run yet
            await _assert_cancelled(handle)
            await client.wait_for_all_requests()
            events = await _close_and_drain(client, stream)
        stats = client.stats()
    # Its task ends at once: no STARTED event, no attempt counted anywhere.
    assert [EventType.CANCELLED] == [e.event_type for e in events]
    assert (0, 0, 1) == (stats.attempts, stats.retries, stats.cancelled)
    assert 0 == handle.result.attempts  # type: ignore[union-attr]
    assert 0 == server.hits["/early"]


async def test_cancelling_a_finished_request_does_nothing(
    server: LocalServer, refused_url: str
) -> None:
    """cancel() on a succeeded or failed request changes neither its result nor the events."""
    with anyio.fail_after(15):
        client = AsyncResilientClient()
        async with _observed(client) as stream:
            ok = await client.get(server.url)
            response = await ok
            failed = await client.get(refused_url, context=RequestContext(max_retries=0))
            failed_result = await failed.wait_result()
            ok_result = ok.result
            ok.cancel()
            failed.cancel()
            assert response is await ok
            with pytest.raises(httpx.ConnectError):
                await failed
            events = await _close_and_drain(client, stream)
        stats = client.stats()
    assert ok_result is ok.result
    assert failed_result is failed.result
    assert [EventType.SUCCESS] == _finals(events, ok.request_id)
    assert [EventType.ERROR] == _finals(events, failed.request_id)
    assert (1, 1, 0) == (stats.succeeded, stats.failed, stats.cancelled)


async def test_cancelled_awaiter_does_not_cancel_the_request(server: LocalServer) -> None:
    """A task awaiting a handle inside move_on_after is cancelled; the request still succeeds."""
    with anyio.fail_after(15):
        async with AsyncResilientClient() as client:
            handle = await client.get(server.url_for("/delay/0.5"))
            with anyio.move_on_after(0.05) as scope:
                await handle
            assert scope.cancelled_caught
            assert not handle.done()
            response = await handle
        stats = client.stats()
    assert 200 == response.status_code
    assert RequestStatus.SUCCESS == handle.result.status  # type: ignore[union-attr]
    assert (1, 0) == (stats.succeeded, stats.cancelled)


# -- close ------------------------------------------------------------------------------------


async def _subscriber(
    client: AsyncResilientClient,
    into: list[AsyncEvent],
    ended: list[bool],
    *,
    task_status: TaskStatus[None],
) -> None:
    """Read every event until the stream ends, then record that it ended."""
    async with client.events(buffer=1000) as stream:
        task_status.started()
        into.extend([event async for event in stream])
    ended.append(True)


async def test_close_with_cancel_ends_a_hundred_requests_in_flight(server: LocalServer) -> None:
    """close(cancel=True) ends 100 in-flight requests CANCELLED, ends streams, leaves no task."""
    events: list[AsyncEvent] = []
    ended: list[bool] = []
    client = AsyncResilientClient()
    with anyio.fail_after(15):
        assert set() == _client_tasks()
        async with anyio.create_task_group() as tg, client:
            await tg.start(_subscriber, client, events, ended)
            await tg.start(_subscriber, client, [], ended)
            handles = [await client.get(server.url_for("/delay/30")) for _ in range(100)]
            await _wait_until(lambda: 100 == server.hits["/delay/30"])
            assert 100 == client.stats().in_flight
            await client.close(cancel=True)
            assert set() == _client_tasks()
        # Both subscribers' loops ended, so their tasks let the task group exit.
        assert [True, True] == ended
        assert set() == _client_tasks()
        for handle in handles:
            await _assert_cancelled(handle)
        stats = client.stats()
        assert client.http_client.is_closed
        # A fresh client against the same server still works.
        async with AsyncResilientClient() as fresh:
            assert 200 == (await (await fresh.get(server.url_for("/after")))).status_code
    assert (100, 100, 0, 0) == (stats.cancelled, stats.attempts, stats.retries, stats.in_flight)
    assert 100 == server.hits["/delay/30"]
    assert Counter({EventType.STARTED: 100, EventType.CANCELLED: 100}) == Counter(
        e.event_type for e in events
    )
    assert all([EventType.CANCELLED] == _finals(events, h.request_id) for h in handles)


async def test_close_with_grace_lets_quick_requests_finish(server: LocalServer) -> None:
    """close(grace=...) lets quick requests finish and cancels the slow ones."""
    with anyio.fail_after(15):
        client = await AsyncResilientClient().open()
        try:
            quick = [await client.get(server.url_for("/delay/0.05")) for _ in range(5)]
            slow = [await client.get(server.url_for("/delay/30")) for _ in range(5)]
            await client.close(grace=0.5)
        finally:
            await client.close(cancel=True)
        assert set() == _client_tasks()
        for handle in slow:
            await _assert_cancelled(handle)
        responses = [await handle for handle in quick]
    assert [200] * 5 == [response.status_code for response in responses]
    assert (5, 5) == (client.stats().succeeded, client.stats().cancelled)
    assert client.http_client.is_closed


async def test_normal_close_waits_for_requests_in_flight(server: LocalServer) -> None:
    """Leaving the client's block normally waits for every in-flight request to succeed."""
    events: list[AsyncEvent] = []
    ended: list[bool] = []
    client = AsyncResilientClient()
    with anyio.fail_after(15):
        async with anyio.create_task_group() as tg, client:
            await tg.start(_subscriber, client, events, ended)
            handles = [await client.get(server.url_for("/delay/0.2")) for _ in range(5)]
            assert not any(handle.done() for handle in handles)
        assert [True] == ended
        assert set() == _client_tasks()
    assert all(RequestStatus.SUCCESS == h.result.status for h in handles)  # type: ignore[union-attr]
    assert (5, 0) == (client.stats().succeeded, client.stats().cancelled)
    assert 5 == Counter(e.event_type for e in events)[EventType.SUCCESS]
    assert client.http_client.is_closed


async def test_heavy_cancellation_then_a_fresh_client_succeeds(server: LocalServer) -> None:
    """After many requests cancelled at seeded random points, a new client's request succeeds."""
    rng = random.Random(4242)
    with anyio.fail_after(15):
        async with AsyncResilientClient(limits=httpx.Limits(max_connections=4)) as client:
            handles = []
            for _ in range(40):
                handles.append(await client.get(server.url_for(f"/delay/{rng.uniform(0, 0.05)}")))
                if rng.random() < 0.3:
                    await anyio.sleep(rng.uniform(0, 0.02))
                rng.choice(handles).cancel()
            await client.wait_for_all_requests()
            # The same client is not poisoned either.
            assert 200 == (await (await client.get(server.url_for("/same")))).status_code
        statuses = Counter(h.result.status for h in handles)  # type: ignore[union-attr]
        assert 40 == sum(statuses.values())
        assert 0 == statuses[RequestStatus.ERROR]
        async with AsyncResilientClient() as fresh:
            assert 200 == (await (await fresh.get(server.url_for("/fresh")))).status_code


# -- BaseException ----------------------------------------------------------------------------


class Fatal(BaseException):
    """A BaseException that is not an Exception, standing in for KeyboardInterrupt."""


class FatalTransport(httpx.AsyncBaseTransport):
    """A transport that raises Fatal on every call and counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        raise Fatal("fatal")


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


async def test_base_exception_is_neither_retried_nor_swallowed() -> None:
    """A BaseException from the transport propagates out of the client's block, unretried."""
    transport = FatalTransport()
    context = RequestContext(request_id="fatal", max_retries=5, base_delay=0.0)
    handles: list[RequestHandle] = []
    caught: BaseException | None = None
    with anyio.fail_after(15):
        try:
            async with AsyncResilientClient(transport=transport) as client:
                handles.append(await client.get("http://127.0.0.1/fatal", context=context))
                await handles[0].wait_result()
                await anyio.sleep_forever()  # the failed request task cancels the block
        except BaseException as exc:  # the exception is the subject of the test
            caught = exc
    assert caught is not None
    assert [Fatal] == [type(leaf) for leaf in _leaves(caught)]
    assert 1 == transport.calls
    result = handles[0].result
    assert result is not None
    assert (RequestStatus.ERROR, 1) == (result.status, result.attempts)
    assert isinstance(result.error, Fatal)
    assert (1, 0) == (client.stats().attempts, client.stats().retries)
    assert client.http_client.is_closed
    assert set() == _client_tasks()
