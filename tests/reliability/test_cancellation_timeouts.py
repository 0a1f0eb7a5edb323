"""
Reliability: cancellation and timeouts (RELIABILITY.md, "Cancellation and timeouts").

A request cancelled while it connects, writes its body, waits for the response head or reads
the body ends CANCELLED after that single attempt, with its connection closed and the pool left
usable; the cancellation stays where it belongs (the request's own scope, or the awaiting task's
scope). Deadlines end retry loops with a ``DeadlineExceededError`` that carries the last error,
per-attempt timeouts are retried only when safe, seeded random cancellations never poison the
pool, closing with a hundred requests in flight ends every one of them, BaseExceptions from a
transport are neither retried nor swallowed, and bad durations are refused at construction.
"""

from __future__ import annotations

import gc
import math
import random
import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import pytest
from anyio.abc import TaskStatus

from typed_async_client import (
    AsyncEvent,
    AsyncResilientClient,
    Backoff,
    CircuitBreaker,
    DeadlineExceededError,
    EventType,
    RequestCancelledError,
    RequestContext,
    RequestHandle,
    RequestStatus,
    RetryBudget,
    RetryPolicy,
)
from typed_async_client.testing import LocalServer

from .conftest import FINAL_EVENTS, POOL, Observed

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found,unused-ignore]

pytestmark = pytest.mark.anyio

SEED = 5_2024

#: A policy that would retry nearly anything for an idempotent request: a cancellation that
#: leaked into the retry decision would show up as a second attempt.
EAGER = RetryPolicy.transient(backoff=Backoff(base=0.01, cap=0.01, jitter="none"))


async def _wait_until(predicate: Callable[[], bool], what: str) -> None:
    """Poll ``predicate`` at most 1,000 times, 10 ms apart (callers also hold a fail_after)."""
    for _ in range(1000):
        if predicate():
            return
        await anyio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


class PhaseTrace:
    """An httpcore ``trace`` extension recording each step and flagging chosen ones."""

    def __init__(self, *watched: str, stall_on: str | None = None) -> None:
        self.steps: list[str] = []
        self.reached = {name: anyio.Event() for name in watched}
        self.stall_on = stall_on

    async def __call__(self, name: str, info: Mapping[str, Any]) -> None:
        self.steps.append(name)
        if name in self.reached:
            self.reached[name].set()
        if name == self.stall_on:
            await anyio.sleep_forever()


async def _assert_cancelled_once(observed: Observed, handle: RequestHandle) -> None:
    """The request ended CANCELLED after exactly one attempt, and no retry was scheduled."""
    with pytest.raises(RequestCancelledError) as excinfo:
        await handle
    assert not isinstance(excinfo.value, anyio.get_cancelled_exc_class())
    result = await handle.wait_result()
    assert (RequestStatus.CANCELLED, 1) == (result.status, result.attempts)
    assert excinfo.value is result.error
    stats = observed.client.stats()
    assert (1, 0, 1) == (stats.attempts, stats.retries, stats.cancelled)
    assert [] == [e for e in observed.events if e.event_type is EventType.RETRY]


# -- cancelled in each phase ------------------------------------------------------------------


@pytest.fixture
def stalled_connect_url() -> Iterator[str]:
    """A loopback port whose accept queue is full: a new connection hangs in the handshake."""
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        # The one connection a backlog of 0 admits; it is never accepted, so later SYNs drop.
        filler.connect(("127.0.0.1", port))
        yield f"http://127.0.0.1:{port}"


async def test_cancel_during_connect(observed: Observed, stalled_connect_url: str) -> None:
    """A request cancelled while its TCP handshake hangs ends CANCELLED after one attempt."""
    trace = PhaseTrace("connection.connect_tcp.started")
    context = RequestContext(request_id="connect", max_retries=3, idempotent=True)
    with anyio.fail_after(15):
        handle = await observed.submit(
            "GET",
            stalled_connect_url + "/hang",
            context=context,
            retry_policy=EAGER,
            extensions={"trace": trace},
        )
        await trace.reached["connection.connect_tcp.started"].wait()
        await anyio.sleep(0.1)  # the handshake stays stuck: nobody accepts
        handle.cancel()
        await _assert_cancelled_once(observed, handle)
        await observed.check()
    assert "connection.connect_tcp.complete" not in trace.steps


async def test_cancel_while_the_pool_connection_is_connecting(observed: Observed) -> None:
    """A request cancelled inside httpcore's connect step leaves no CONNECTING connection."""
    # The trace stalls in the connect step itself, the state that poisoned httpx's pool.
    trace = PhaseTrace("connection.connect_tcp.started", stall_on="connection.connect_tcp.started")
    with anyio.fail_after(15):
        handle = await observed.submit(
            "GET",
            observed.server.url_for("/never"),
            context=RequestContext(max_retries=3, idempotent=True),
            retry_policy=EAGER,
            extensions={"trace": trace},
        )
        await trace.reached["connection.connect_tcp.started"].wait()
        handle.cancel()
        await _assert_cancelled_once(observed, handle)
        await observed.check()
    assert 0 == observed.server.hits["/never"]


@dataclass
class SlowReader:
    """A loopback listener that accepts one connection and reads nothing until told to drain."""

    url: str = ""
    accepted: int = 0
    drain: anyio.Event = field(default_factory=anyio.Event)
    closed_by_client: anyio.Event = field(default_factory=anyio.Event)

    async def serve(self, listener: socket.socket) -> None:
        # Raw sockets: an anyio stream on asyncio would read eagerly into memory, draining the
        # kernel's buffers, and the upload would never stall.
        await anyio.wait_readable(listener)
        connection, _ = listener.accept()
        with connection:
            connection.setblocking(False)
            self.accepted += 1
            await self.drain.wait()
            # Read what the client sent until it closes the connection (FIN or RST).
            for _ in range(100_000):
                await anyio.wait_readable(connection)
                try:
                    if not connection.recv(1 << 20):
                        break
                except ConnectionResetError:
                    break
            self.closed_by_client.set()


@asynccontextmanager
async def _slow_reader() -> AsyncIterator[SlowReader]:
    reader = SlowReader()
    with socket.socket() as listener:
        # A small fixed receive buffer (inherited by the accepted socket) keeps the kernel from
        # growing the window to tens of MiB, so the upload really stalls.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        reader.url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader.serve, listener)
            try:
                yield reader
            finally:
                tg.cancel_scope.cancel()


# On trio, httpx's request body generator, left suspended by the cancellation, is reported when
# garbage collected (httpcore iterates it without aclosing it); see the report. Narrowly ignored
# here, and collected inside the test so that the warning cannot land in a later one.
@pytest.mark.filterwarnings(
    "ignore:Async generator 'httpx._content.ByteStream.__aiter__' was garbage collected"
    ":ResourceWarning"
)
async def test_cancel_during_a_large_upload_to_a_slow_reader(observed: Observed) -> None:
    """A request cancelled mid-upload ends CANCELLED and its half-written connection is closed."""
    trace = PhaseTrace("http11.send_request_body.started")
    body = b"x" * (16 << 20)  # far more than the client's send buffer and the small window
    with anyio.fail_after(20):
        async with _slow_reader() as reader:
            handle = await observed.submit(
                "PUT",
                reader.url + "/upload",
                content=body,
                context=RequestContext(max_retries=3),
                retry_policy=EAGER,
                extensions={"trace": trace},
            )
            await trace.reached["http11.send_request_body.started"].wait()
            await anyio.sleep(0.3)  # long enough for every buffer on the way to fill
            assert "http11.send_request_body.complete" not in trace.steps
            handle.cancel()
            await _assert_cancelled_once(observed, handle)
            reader.drain.set()
            await reader.closed_by_client.wait()
            accepted = reader.accepted
        await observed.check()
        gc.collect()
    assert 1 == accepted


async def test_cancel_while_waiting_for_the_response_head(observed: Observed) -> None:
    """A request cancelled while the server holds its response head is not sent again."""
    with anyio.fail_after(15):
        handle = await observed.submit(
            "GET",
            observed.server.url_for("/delay/30"),
            context=RequestContext(max_retries=3),
            retry_policy=EAGER,
        )
        await _wait_until(lambda: 1 == observed.server.hits["/delay/30"], "request reached")
        handle.cancel()
        await _assert_cancelled_once(observed, handle)
        await observed.check()
    assert 1 == observed.server.hits["/delay/30"]


async def test_cancel_while_streaming_the_body(observed: Observed) -> None:
    """A request cancelled while its body drips in ends CANCELLED and is not sent again."""
    trace = PhaseTrace("http11.receive_response_body.started")
    with anyio.fail_after(15):
        handle = await observed.submit(
            "GET",
            observed.server.url_for("/drip/200?interval=0.05"),
            context=RequestContext(max_retries=3),
            retry_policy=EAGER,
            extensions={"trace": trace},
        )
        await trace.reached["http11.receive_response_body.started"].wait()
        await anyio.sleep(0.1)
        handle.cancel()
        await _assert_cancelled_once(observed, handle)
        await observed.check()
    assert 1 == observed.server.hits["/drip/200"]
    assert "http11.receive_response_body.complete" not in trace.steps


async def test_cancelling_the_awaiting_task_stays_in_its_scope(observed: Observed) -> None:
    """The awaiting task's cancellation is delivered to its own scope; the request goes on."""
    context = RequestContext(request_id="owned", inherit_deadline=False)
    with anyio.fail_after(15):
        with anyio.move_on_after(0.05) as awaiting:
            handle = await observed.submit(
                "GET", observed.server.url_for("/delay/0.3"), context=context
            )
            await handle
        assert awaiting.cancelled_caught
        assert not handle.done()
        results = await observed.check()
    assert [RequestStatus.SUCCESS] == [r.status for r in results]
    assert 1 == observed.server.hits["/delay/0.3"]


# -- deadlines --------------------------------------------------------------------------------


async def test_deadline_a_backoff_sleep_would_cross_ends_the_request(
    observed: Observed, refused_url: str
) -> None:
    """A deadline inside a backoff sleep ends the request with the last error, no more attempts."""
    policy = RetryPolicy(backoff=Backoff(base=0.3, factor=1.0, cap=0.3, jitter="none"))
    # Attempt 1 fails at ~0 s, sleeps 0.3 s; attempt 2 fails at ~0.3 s; the next sleep would
    # end past the 0.5 s deadline, so the request ends there.
    context = RequestContext(request_id="sleepy", max_retries=10, total_timeout=0.5)
    with anyio.fail_after(15):
        handle = await observed.submit("GET", refused_url, context=context, retry_policy=policy)
        (result,) = await observed.check()
    error = result.error
    assert isinstance(error, DeadlineExceededError)
    assert isinstance(error.last_error, httpx.ConnectError)
    assert error.last_error is error.__cause__
    assert (RequestStatus.ERROR, 2, 2) == (result.status, result.attempts, error.attempts)
    assert [0.3, 0.0] == [attempt.sleep for attempt in result.history]
    assert 1 == observed.client.stats().retries
    assert handle.request_id == error.request_id


async def test_deadline_error_never_reports_an_earlier_attempt_as_the_last() -> None:
    """After a ConnectError then a 503, the deadline error does not blame the ConnectError."""
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) == 1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(503)

    # No jitter: the second sleep is exactly 10 s, past the 1 s deadline (deterministic).
    policy = RetryPolicy.transient(
        backoff=Backoff(base=0.01, factor=1000.0, cap=10.0, jitter="none")
    )
    context = RequestContext(max_retries=5, total_timeout=1.0)
    with anyio.fail_after(15):
        async with AsyncResilientClient(transport=httpx.MockTransport(handler)) as client:
            handle = await client.get("http://127.0.0.1/x", context=context, retry_policy=policy)
            result = await handle.wait_result()
    assert [("ConnectError", None), (None, 503)] == [
        (attempt.error, attempt.status_code) for attempt in result.history
    ]
    assert isinstance(result.error, DeadlineExceededError)
    assert None is result.error.last_error


async def test_attempt_timeouts_are_retried_only_when_safe(observed: Observed) -> None:
    """A per-attempt ReadTimeout is retried for GET, not for POST; the deadline caps GET."""
    policy = RetryPolicy(retry_on=(httpx.ReadTimeout,), backoff=Backoff(base=0.01, cap=0.01))
    with anyio.fail_after(15):
        await observed.submit(
            "GET",
            observed.server.url_for("/delay/5"),
            timeout=0.1,
            context=RequestContext(request_id="get", max_retries=50, total_timeout=0.5),
            retry_policy=policy,
        )
        await observed.submit(
            "POST",
            observed.server.url_for("/delay/4"),
            timeout=0.1,
            content=b"once",
            context=RequestContext(request_id="post", max_retries=50, total_timeout=0.5),
            retry_policy=policy,
        )
        get_result, post_result = await observed.check()
    # GET: retried after each 0.1 s timeout until the overall deadline ended it.
    assert isinstance(get_result.error, DeadlineExceededError)
    assert isinstance(get_result.error.last_error, httpx.ReadTimeout)
    # Each attempt lasts its full timeout except the last, shrunk to the time left.
    assert 2 <= get_result.attempts <= 0.5 / 0.1 + 1
    # The last attempt may be cut off before the server has read it.
    assert get_result.attempts - 1 <= observed.server.hits["/delay/5"] <= get_result.attempts
    # POST may have reached the server: never sent twice.
    assert isinstance(post_result.error, httpx.ReadTimeout)
    assert (1, 1) == (post_result.attempts, observed.server.hits["/delay/4"])


async def test_total_timeout_caps_a_dripping_response_despite_attempt_timeouts(
    observed: Observed,
) -> None:
    """Per-read timeouts never fire on a slow drip; the overall deadline still ends it."""
    with anyio.fail_after(15):
        await observed.submit(
            "GET",
            observed.server.url_for("/drip/100?interval=0.1"),
            timeout=1.0,
            context=RequestContext(max_retries=3, total_timeout=0.35),
            retry_policy=EAGER,
        )
        (result,) = await observed.check()
    assert isinstance(result.error, DeadlineExceededError)
    assert 1 == result.attempts
    assert 1 == observed.server.hits["/drip/100"]


# -- random cancellations over a small pool ---------------------------------------------------


async def test_random_cancellations_over_a_small_pool_never_poison_it(observed: Observed) -> None:
    """Sixteen requests over four connections, cancelled at seeded random points for 3 s."""
    rng = random.Random(SEED)
    live: list[RequestHandle] = []
    with anyio.fail_after(30):
        end = anyio.current_time() + 3.0
        for _ in range(100_000):
            if anyio.current_time() >= end:
                break
            live = [h for h in live if not h.done()]
            while len(live) < 16:
                url = observed.server.url_for(f"/delay/{rng.uniform(0.0, 0.08):.3f}")
                if rng.random() < 0.2:
                    # A cancel scope with a deadline: the request inherits it and is cut off.
                    with anyio.move_on_after(rng.uniform(0.0, 0.05)):
                        live.append(await observed.submit("GET", url))
                else:
                    live.append(await observed.submit("GET", url))
            if rng.random() < 0.5:
                rng.choice(live).cancel()
            await anyio.sleep(rng.uniform(0.0, 0.01))
        results = await observed.check()
    outcomes = Counter(type(r.error).__name__ if r.is_error else r.status.value for r in results)
    assert set(outcomes) <= {"success", "cancelled", "DeadlineExceededError"}
    assert outcomes["success"] > 0
    assert outcomes["cancelled"] > 0
    assert 16 < len(results)


# -- close with requests in flight ------------------------------------------------------------


async def _read_all(
    client: AsyncResilientClient,
    into: list[AsyncEvent],
    ended: list[bool],
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Subscribe to every event and read until the stream ends."""
    async with client.events(buffer=10_000) as stream:
        task_status.started()
        into.extend([event async for event in stream])
    ended.append(True)


def _client_tasks() -> set[str]:
    names = {task.name or "" for task in anyio.get_running_tasks()}
    return {name for name in names if name.startswith("request ") or "EventBus" in name}


@pytest.mark.parametrize(
    ("how", "path", "expected"),
    [
        pytest.param({}, "/delay/0.005", RequestStatus.SUCCESS, id="wait"),
        pytest.param({"grace": 0.2}, "/delay/30", RequestStatus.CANCELLED, id="grace"),
        pytest.param({"cancel": True}, "/delay/30", RequestStatus.CANCELLED, id="cancel"),
    ],
)
async def test_close_with_a_hundred_requests_in_flight(
    server: LocalServer, how: dict[str, Any], path: str, expected: RequestStatus
) -> None:
    """Closing with 100 requests in flight ends each once, ends event streams, and returns."""
    limits = httpx.Limits(max_connections=POOL, max_keepalive_connections=POOL)
    client = AsyncResilientClient(limits=limits, event_queue_size=10_000)
    events: list[AsyncEvent] = []
    ended: list[bool] = []
    with anyio.fail_after(20):  # the backstop: close must return
        async with anyio.create_task_group() as tg:
            await client.open()
            try:
                await tg.start(_read_all, client, events, ended)
                handles = [await client.get(server.url_for(path)) for _ in range(100)]
                assert 100 == client.stats().in_flight  # no checkpoint yet: none has run
                await _wait_until(lambda: server.hits[path] >= 1, "a request reached the server")
            finally:
                await client.close(**how)
        assert [True] == ended
        assert set() == _client_tasks()
        results = [await handle.wait_result() for handle in handles]
        async with AsyncResilientClient() as fresh:
            follow_ups = [await fresh.get(server.url_for("/follow-up")) for _ in range(POOL)]
            responses = [await handle for handle in follow_ups]
    stats = client.stats()
    assert [expected] * 100 == [r.status for r in results]
    assert [r.request_id for r in results] == [h.request_id for h in handles]
    assert all(r is client.get_result(r.request_id) for r in results)
    finals = Counter(e.context.request_id for e in events if e.event_type in FINAL_EVENTS)
    assert {h.request_id: 1 for h in handles} == dict(finals)
    assert (0, 0) == (stats.in_flight, stats.events_dropped)
    assert client.http_client.is_closed
    assert [200] * POOL == [r.status_code for r in responses]


# -- BaseExceptions from a transport ----------------------------------------------------------


class FakeKeyboardInterrupt(BaseException):
    """Stands in for KeyboardInterrupt (a real one would stop asyncio's loop and pytest)."""


class FakeSystemExit(BaseException):
    """Stands in for SystemExit."""


class FaultyTransport(httpx.AsyncBaseTransport):
    """Forwards to a real transport, except ``/boom``, which raises or cancels ``scope``."""

    def __init__(self, fault: str, scope: anyio.CancelScope) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.fault = fault
        self.scope = scope
        self.calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/boom":
            return await self.inner.handle_async_request(request)
        self.calls += 1
        if self.fault == "interrupt":
            raise FakeKeyboardInterrupt("^C")
        if self.fault == "exit":
            raise FakeSystemExit(3)
        self.scope.cancel()  # the client's owner is cancelled from inside the transport
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        await self.inner.aclose()


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


@pytest.mark.parametrize(
    ("fault", "raised"),
    [
        pytest.param("interrupt", FakeKeyboardInterrupt, id="KeyboardInterrupt-like"),
        pytest.param("exit", FakeSystemExit, id="SystemExit-like"),
        pytest.param("cancel", None, id="cancellation"),
    ],
)
async def test_base_exceptions_from_a_transport_are_never_retried_nor_swallowed(
    server: LocalServer, fault: str, raised: type[BaseException] | None
) -> None:
    """A BaseException or a cancellation from the transport ends the client, unretried, unlost."""
    events: list[AsyncEvent] = []
    handles: list[RequestHandle] = []
    caught: list[BaseException] = []
    with anyio.fail_after(15):
        with anyio.CancelScope() as owner:
            transport = FaultyTransport(fault, owner)
            client = AsyncResilientClient(transport=transport, event_queue_size=1000)
            for event_type in EventType:
                client.add_event_callback(event_type, events.append)
            try:
                async with client:
                    handles.extend(
                        [await client.get(server.url_for("/delay/30")) for _ in range(5)]
                    )
                    await _wait_until(lambda: 5 == server.hits["/delay/30"], "5 requests sent")
                    boom = await client.get(
                        server.url_for("/boom"),
                        context=RequestContext(max_retries=5, base_delay=0.0, idempotent=True),
                        retry_policy=RetryPolicy(
                            retry_on=(Exception,), predicate=lambda decision: True
                        ),
                    )
                    handles.append(boom)
                    await anyio.sleep_forever()
            except (FakeKeyboardInterrupt, FakeSystemExit, BaseExceptionGroup) as exc:
                caught.append(exc)
        if raised is None:
            assert owner.cancelled_caught  # the cancellation reached the scope it belonged to
            assert [] == caught
        else:
            assert not owner.cancelled_caught
            assert [raised] == [type(leaf) for exc in caught for leaf in _leaves(exc)]
    stats = client.stats()
    results = [handle.result for handle in handles]
    assert 1 == transport.calls
    assert (6, 0) == (stats.attempts, stats.retries)
    assert [RequestStatus.CANCELLED] * 5 == [r.status for r in results[:5] if r is not None]
    boom_result = results[5]
    assert boom_result is not None
    assert 1 == boom_result.attempts
    if raised is None:
        assert RequestStatus.CANCELLED == boom_result.status
    else:
        assert (RequestStatus.ERROR, raised) == (boom_result.status, type(boom_result.error))
    finals = [e for e in events if e.event_type in FINAL_EVENTS]
    assert len(handles) == len(finals) + stats.events_dropped
    assert (0, 0) == (stats.in_flight, len(_client_tasks()))
    assert client.http_client.is_closed


def _any(value: object) -> Any:
    """A value passed as is, whatever the parameter's type."""
    return value


# -- bad durations ----------------------------------------------------------------------------

BAD_DURATIONS = [
    pytest.param(-1.0, id="negative"),
    pytest.param(math.nan, id="nan"),
    pytest.param(math.inf, id="inf"),
]


@pytest.mark.parametrize("value", BAD_DURATIONS)
@pytest.mark.parametrize("name", ["base_delay", "max_delay", "total_timeout", "backoff_factor"])
def test_request_context_rejects_bad_durations(name: str, value: float) -> None:
    """RequestContext refuses negative, NaN and infinite durations, naming the field."""
    with pytest.raises(ValueError, match=name):
        RequestContext(**{name: _any(value)})


@pytest.mark.parametrize("value", BAD_DURATIONS)
@pytest.mark.parametrize("name", ["base", "cap", "factor"])
def test_backoff_rejects_bad_durations(name: str, value: float) -> None:
    """Backoff refuses negative, NaN and infinite durations, naming the field."""
    with pytest.raises(ValueError, match=name):
        Backoff(**{name: _any(value)})


@pytest.mark.parametrize("value", BAD_DURATIONS)
def test_retry_policy_rejects_bad_max_retry_after(value: float) -> None:
    """RetryPolicy refuses a negative, NaN or infinite max_retry_after."""
    with pytest.raises(ValueError, match="max_retry_after"):
        RetryPolicy(max_retry_after=value)


@pytest.mark.parametrize("value", BAD_DURATIONS)
@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda v: AsyncResilientClient(max_per_second=v), id="max_per_second"),
        pytest.param(lambda v: RetryBudget(min_per_second=v), id="budget-min_per_second"),
        pytest.param(lambda v: RetryBudget(ratio=v), id="budget-ratio"),
        pytest.param(lambda v: CircuitBreaker(recovery_time=v), id="breaker-recovery_time"),
    ],
)
def test_rate_and_budget_options_reject_bad_durations(
    build: Callable[[float], object], value: float
) -> None:
    """The client's rate limit, the retry budget and the breaker refuse bad durations."""
    with pytest.raises(ValueError):
        build(value)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(-1.0, id="negative"),
        pytest.param(math.nan, id="nan"),
        pytest.param(
            math.inf,
            id="inf",
        ),
    ],
)
async def test_close_rejects_a_bad_grace(value: float) -> None:
    """close(grace=...) refuses negative, NaN and infinite durations and stays open."""
    with anyio.fail_after(10):
        async with AsyncResilientClient() as client:
            with pytest.raises(ValueError, match="grace"):
                await client.close(grace=value)
            assert not client.is_closed


@pytest.mark.parametrize("value", BAD_DURATIONS)
def test_client_timeout_rejects_bad_durations(value: float) -> None:
    """The client's timeout option refuses negative, NaN and infinite durations."""
    with pytest.raises(ValueError, match="timeout"):
        AsyncResilientClient(timeout=value)


@pytest.mark.parametrize(
    "value", [pytest.param(-1.0, id="negative"), pytest.param(math.nan, id="nan")]
)
async def test_request_timeout_option_rejects_bad_durations(
    observed: Observed, value: float
) -> None:
    """A request's timeout option refuses negative and NaN durations at the call."""
    with anyio.fail_after(10):
        before = observed.client.stats().started
        with pytest.raises(ValueError, match="timeout"):
            await observed.submit("GET", observed.server.url_for("/t"), timeout=value)
        assert before == observed.client.stats().started
        await observed.check()
