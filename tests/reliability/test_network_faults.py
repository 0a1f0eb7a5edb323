"""
Network faults (RELIABILITY.md, "Network faults"): refused and hanging connects, DNS failure,
resets and drops, slow drips, bodies cut short, stale keep-alive connections and TLS failures.

Each case runs through an observed client and ends with ``await observed.check(...)``. Faults
that ``LocalServer`` lacks (a listener that never accepts, a reset in the middle of a body, a
keep-alive connection dropped as the next request arrives, TLS) come from the small raw servers
below. Where httpx raises different errors per backend (fact 8), the accepted set is per backend
and named in the test's docstring.
"""

from __future__ import annotations

import datetime
import functools
import random
import select
import socket
import ssl
import struct
import threading
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
import httpx
import pytest
from anyio.abc import SocketAttribute, SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.tls import TLSStream

from typed_async_client import (
    AsyncEvent,
    AsyncResilientClient,
    DeadlineExceededError,
    EventType,
    RequestContext,
    RequestResult,
    RequestStatus,
    RetryDecisionInput,
    RetryPolicy,
    is_retryable,
)
from typed_async_client.testing import LocalServer

from .conftest import CANARY, POOL, Observed

pytestmark = pytest.mark.anyio

SEED: Final[int] = 20240611
#: Headers that carry the canary on every faulty request: it must not show anywhere.
SECRET_HEADERS: Final[dict[str, str]] = {"Authorization": f"Bearer {CANARY}", "X-Api-Key": CANARY}
#: The error of each LocalServer fault route once the request was read: the same on asyncio
#: and trio (only a reset before the request is read differs, see RESET_ON_ACCEPT).
ROUTE_ERRORS: Final[dict[str, type[Exception]]] = {
    "/reset": httpx.ReadError,
    "/drop": httpx.RemoteProtocolError,
}
#: A reset right after accept, before the request is read (RELIABILITY fact 8). Seen over 200
#: requests each: always ReadError on asyncio; on trio RemoteProtocolError, or ReadError when
#: the reset lands while the request is still being written.
RESET_ON_ACCEPT: Final[dict[str, tuple[type[Exception], ...]]] = {
    "asyncio": (httpx.ReadError,),
    "trio": (httpx.ReadError, httpx.RemoteProtocolError),
}
_LINGER_ZERO: Final[bytes] = struct.pack("ii", 1, 0)
_MAX_REQUESTS_PER_CONNECTION: Final[int] = 100
_INVALID_HOST: Final[str] = "no-such-host.invalid"


@dataclass(frozen=True)
class SeededContext(RequestContext):
    """A context whose full-jitter backoff draws from an RNG seeded per attempt."""

    seed: int = SEED

    def backoff_delay(self, rand: Callable[[], float] | None = None) -> float:
        return RequestContext.backoff_delay(
            self, rand=random.Random(self.seed + self.current_attempt).random
        )


def fast(**changes: Any) -> RequestContext:
    """A context with millisecond backoff, so retrying cases stay fast."""
    return RequestContext(**{"base_delay": 0.001, "max_delay": 0.01, **changes})


def seeded_delays(context: RequestContext, count: int) -> list[float]:
    """The backoff sleeps ``context`` draws before its first ``count`` retries."""
    delays = []
    for _ in range(count):
        delays.append(context.backoff_delay())
        context = context.next_attempt()
    return delays


def with_secret(url: str) -> str:
    """``url`` with the canary in its userinfo and in a sensitive query value."""
    return url.replace("://", f"://user:{CANARY}@", 1) + f"?token={CANARY}"


def events_of(observed: Observed, event_type: EventType, result: RequestResult) -> list[AsyncEvent]:
    """The recorded events of one type for one request, in order."""
    return [
        e
        for e in observed.events
        if e.event_type is event_type and e.context.request_id == result.request_id
    ]


def cause_chain(error: BaseException | None) -> list[BaseException]:
    """``error`` and its causes (``__cause__`` or ``__context__``), at most 16 deep."""
    chain: list[BaseException] = []
    while error is not None and len(chain) < 16:
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


@dataclass
class Peak:
    """The peak of traced memory during a ``traced_peak()`` block, in bytes."""

    bytes: int = 0


@contextmanager
def traced_peak() -> Iterator[Peak]:
    """Trace allocations during the block and record their peak above the block's start."""
    peak = Peak()
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        yield peak
    finally:
        peak.bytes = tracemalloc.get_traced_memory()[1] - base
        if started:
            tracemalloc.stop()


@asynccontextmanager
async def observed_client(server: LocalServer, **options: Any) -> AsyncIterator[Observed]:
    """An observed client like the ``observed`` fixture's, with extra client options."""
    limits = httpx.Limits(max_connections=POOL, max_keepalive_connections=POOL)
    options.setdefault("timeout", 5.0)
    async with AsyncResilientClient(limits=limits, event_queue_size=10_000, **options) as client:
        observed = Observed(client=client, server=server)
        for event_type in EventType:
            client.add_event_callback(event_type, observed.events.append)
        yield observed


# -- a raw server, for faults LocalServer does not script -------------------------------------


#: Answers the ``index``-th request of a connection; returns whether to keep the connection.
Respond = Callable[[SocketStream, int], Awaitable[bool]]


@dataclass
class RawServer:
    """A loopback listener answering each request with hand-written bytes."""

    url: str
    connections: int = 0
    heads: list[bytes] = field(default_factory=list)
    closed: anyio.Event = field(default_factory=anyio.Event)


async def _read_request(buffered: BufferedByteReceiveStream) -> bytes:
    """Read one request (its head, and a Content-Length body); return the head."""
    head = await buffered.receive_until(b"\r\n\r\n", 64 * 1024)
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            await buffered.receive_exactly(int(value))
    return head


async def close_gracefully(stream: SocketStream) -> None:
    """Send a FIN, then give the client a moment to close first (a RST could eat our bytes)."""
    with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        await stream.send_eof()
        with anyio.move_on_after(1.0):
            while await stream.receive():
                pass


async def reset(stream: SocketStream) -> None:
    """Abort the connection with a RST (SO_LINGER 0, then close)."""
    stream.extra(SocketAttribute.raw_socket).setsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO
    )
    await stream.aclose()


def send_then_close(data: bytes) -> Respond:
    """Answer every request with ``data``, then close the connection gracefully."""

    async def respond(stream: SocketStream, index: int) -> bool:
        await stream.send(data)
        await close_gracefully(stream)
        return False

    return respond


@asynccontextmanager
async def raw_server(respond: Respond) -> AsyncIterator[RawServer]:
    """Serve ``respond`` on a loopback port until the block ends."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    server = RawServer(f"http://127.0.0.1:{listener.extra(SocketAttribute.local_port)}")

    async def serve(stream: SocketStream) -> None:
        server.connections += 1
        buffered = BufferedByteReceiveStream(stream)
        try:
            async with stream:
                for index in range(_MAX_REQUESTS_PER_CONNECTION):
                    server.heads.append(await _read_request(buffered))
                    if not await respond(stream, index):
                        break
        except (
            anyio.EndOfStream,
            anyio.IncompleteRead,
            anyio.DelimiterNotFound,
            anyio.BrokenResourceError,
            anyio.ClosedResourceError,
            OSError,
        ):
            pass
        finally:
            server.closed.set()

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        try:
            yield server
        finally:
            tg.cancel_scope.cancel()


# -- connection refused -----------------------------------------------------------------------


async def test_refused_connection_is_retried_with_jittered_backoff_up_to_the_limit(
    observed: Observed, refused_url: str, debug_logs: pytest.LogCaptureFixture
) -> None:
    """Refused connects are retried max_retries times with jittered sleeps, each one recorded."""
    context = SeededContext(max_retries=4, base_delay=0.01, max_delay=0.03)
    expected_sleeps = seeded_delays(context, 4)
    with anyio.fail_after(20):
        await observed.submit(
            "GET", with_secret(refused_url), headers=SECRET_HEADERS, context=context
        )
        [result] = await observed.check(debug_logs)
    assert RequestStatus.ERROR == result.status
    assert isinstance(result.error, httpx.ConnectError)
    assert 5 == result.attempts
    assert [(n, "connect", "ConnectError", None) for n in range(1, 6)] == [
        (a.number, a.phase, a.error, a.status_code) for a in result.history
    ]
    assert [*expected_sleeps, 0.0] == [a.sleep for a in result.history]
    retries = events_of(observed, EventType.RETRY, result)
    assert expected_sleeps == [e.data["delay"] for e in retries]
    assert [2, 3, 4, 5] == [e.data["attempt"] for e in retries]
    # Jittered: distinct draws, each within its exponential ceiling.
    ceilings = [min(0.03, 0.01 * 2**n) for n in range(4)]
    assert all(0.0 <= d <= c for d, c in zip(expected_sleeps, ceilings, strict=True))
    assert 4 == len(set(expected_sleeps))


async def test_refused_until_the_server_listens_again_then_succeeds(
    observed: Observed, server: LocalServer
) -> None:
    """Refused attempts are retried until the listener is back, and the request then succeeds."""
    await server.stop_listening()
    with anyio.fail_after(20):
        async with observed.client.events(EventType.RETRY) as retries:
            await observed.submit(
                "GET", server.url_for("/back"), context=fast(max_retries=1_000, base_delay=0.005)
            )
            async for _event in retries:
                break
            await server.start_listening()
        [result] = await observed.check()
    assert (RequestStatus.SUCCESS, 200) == (result.status, result.status_code)
    assert 1 == server.hits["/back"]
    assert result.attempts == len(result.history) >= 2
    assert {("connect", "ConnectError")} == {(a.phase, a.error) for a in result.history[:-1]}
    assert (None, 200) == (result.history[-1].error, result.history[-1].status_code)


# -- connect hangs ----------------------------------------------------------------------------


@pytest.fixture
def hanging_url() -> Iterator[str]:
    """The URL of a loopback listener whose backlog is full: connecting to it hangs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        # The only backlog slot goes to this connection, never accepted.
        with socket.create_connection(address, timeout=2.0):
            with socket.socket() as probe:
                probe.setblocking(False)
                probe.connect_ex(address)
                _, writable, _ = select.select([], [probe], [], 0.2)
            if writable:
                pytest.skip("this kernel completes connections past a full listen backlog")
            yield f"http://127.0.0.1:{address[1]}"


async def test_connect_hang_raises_connect_timeout(observed: Observed, hanging_url: str) -> None:
    """A connect that never completes ends with ConnectTimeout, not retried by default."""
    timeout = httpx.Timeout(5.0, connect=0.2)
    with anyio.fail_after(20):
        await observed.submit(
            "GET", hanging_url + "/hang", timeout=timeout, context=fast(max_retries=3)
        )
        [result] = await observed.check()
    assert isinstance(result.error, httpx.ConnectTimeout)
    assert [(1, "connect", "ConnectTimeout")] == [
        (a.number, a.phase, a.error) for a in result.history
    ]


async def test_connect_hang_is_bounded_by_the_overall_deadline(
    observed: Observed, hanging_url: str
) -> None:
    """With a long connect timeout, total_timeout ends the hang with DeadlineExceededError."""
    with anyio.fail_after(20):
        await observed.submit(
            "GET",
            hanging_url + "/hang",
            timeout=30.0,
            retry_policy=RetryPolicy.transient(),
            context=fast(max_retries=100, total_timeout=0.5),
        )
        [result] = await observed.check()
    assert isinstance(result.error, DeadlineExceededError)
    assert 1 == result.error.attempts
    assert result.error.last_error is None


async def test_connect_timeouts_retried_until_the_overall_deadline(
    observed: Observed, hanging_url: str
) -> None:
    """Retried connect timeouts stop at the deadline, chaining the last ConnectTimeout."""
    with anyio.fail_after(20):
        await observed.submit(
            "GET",
            hanging_url + "/hang",
            timeout=httpx.Timeout(5.0, connect=0.1),
            retry_policy=RetryPolicy.transient(),
            context=fast(max_retries=100, total_timeout=0.6),
        )
        [result] = await observed.check()
    error = result.error
    assert isinstance(error, DeadlineExceededError)
    assert isinstance(error.last_error, httpx.ConnectTimeout)
    assert error.__cause__ is error.last_error
    assert 2 <= error.attempts == result.attempts < 101
    assert {("connect", "ConnectTimeout")} == {(a.phase, a.error) for a in result.history[:-1]}


# -- DNS failure ------------------------------------------------------------------------------


@functools.cache
def _invalid_host_fails_fast() -> bool:
    """Whether resolving a ``.invalid`` name fails within 2 s (a resolver may hang instead)."""
    outcome: list[bool] = []

    def probe() -> None:
        try:
            socket.getaddrinfo(_INVALID_HOST, 80)
        except OSError:
            outcome.append(True)
        else:
            outcome.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(2.0)
    return [True] == outcome


@pytest.fixture
def invalid_url() -> str:
    """The URL of a ``.invalid`` host, or a skip where resolving it does not fail fast."""
    if not _invalid_host_fails_fast():
        pytest.skip("resolving a .invalid name does not fail fast here (the resolver may hang)")
    return f"http://{_INVALID_HOST}/path"


async def test_dns_failure_is_a_clear_error_with_limited_retries(
    observed: Observed, invalid_url: str, debug_logs: pytest.LogCaptureFixture
) -> None:
    """A name that does not resolve is a ConnectError from a gaierror, retried max_retries times."""
    with anyio.fail_after(20):
        await observed.submit(
            "GET", with_secret(invalid_url), headers=SECRET_HEADERS, context=fast(max_retries=2)
        )
        [result] = await observed.check(debug_logs)
    assert isinstance(result.error, httpx.ConnectError)
    assert any(isinstance(e, socket.gaierror) for e in cause_chain(result.error))
    assert [("connect", "ConnectError")] * 3 == [(a.phase, a.error) for a in result.history]


async def test_dns_failure_can_be_made_permanent(observed: Observed, invalid_url: str) -> None:
    """A predicate that refuses to retry resolution failures ends the request after one attempt."""

    def no_dns_retry(decision: RetryDecisionInput) -> bool | None:
        return (
            False
            if any(isinstance(e, socket.gaierror) for e in cause_chain(decision.error))
            else None
        )

    policy = RetryPolicy(predicate=no_dns_retry)
    with anyio.fail_after(20):
        await observed.submit("GET", invalid_url, retry_policy=policy, context=fast(max_retries=5))
        [result] = await observed.check()
    assert isinstance(result.error, httpx.ConnectError)
    assert [("connect", "ConnectError")] == [(a.phase, a.error) for a in result.history]


# -- reset after accept, FIN without a response, reset mid-body ------------------------------


@asynccontextmanager
async def resetting_on_accept() -> AsyncIterator[RawServer]:
    """A listener that resets every connection as soon as it accepts it, reading nothing."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    server = RawServer(f"http://127.0.0.1:{listener.extra(SocketAttribute.local_port)}")

    async def serve(stream: SocketStream) -> None:
        server.connections += 1
        await reset(stream)

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        try:
            yield server
        finally:
            tg.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("method", "policy"),
    [
        pytest.param("GET", None, id="GET-default-policy"),
        pytest.param("POST", RetryPolicy.transient(), id="POST-transient-preset"),
    ],
)
async def test_reset_right_after_accept_is_not_retried(
    observed: Observed, anyio_backend: str, method: str, policy: RetryPolicy | None
) -> None:
    """A RST on accept fails once: ReadError on asyncio, ReadError/RemoteProtocolError on trio."""
    with anyio.fail_after(20):
        async with resetting_on_accept() as raw:
            await observed.submit(
                method,
                with_secret(raw.url + "/x"),
                headers=SECRET_HEADERS,
                content=b"pay once",
                retry_policy=policy,
                context=fast(max_retries=3),
            )
            [result] = await observed.check()
    assert isinstance(result.error, RESET_ON_ACCEPT[anyio_backend])
    assert (1, 1) == (result.attempts, raw.connections)


@asynccontextmanager
async def mid_body_reset_url() -> AsyncIterator[RawServer]:
    """A raw server announcing 100,000 body bytes, sending 1,000, then resetting."""

    async def respond(stream: SocketStream, index: int) -> bool:
        await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1_000)
        # Let the head and the first bytes reach the client before the RST.
        await anyio.sleep(0.05)
        await reset(stream)
        return False

    async with raw_server(respond) as raw:
        yield raw


@pytest.mark.parametrize("path", ["/reset", "/drop"])
async def test_reset_or_fin_without_response_is_not_retried_by_default(
    observed: Observed, path: str, debug_logs: pytest.LogCaptureFixture
) -> None:
    """A RST (ReadError) or a FIN (RemoteProtocolError) before the response fails once."""
    server = observed.server
    with anyio.fail_after(20):
        await observed.submit(
            "GET", with_secret(server.url_for(path)), headers=SECRET_HEADERS, context=fast()
        )
        [result] = await observed.check(debug_logs)
    assert ROUTE_ERRORS[path] is type(result.error)
    assert (1, 1) == (result.attempts, server.hits[path])


@pytest.mark.parametrize("path", ["/reset", "/drop"])
async def test_post_reaches_the_server_once_even_under_the_transient_preset(
    observed: Observed, path: str
) -> None:
    """A POST that got a RST or a FIN is not resent, even by a policy that resends such a GET."""
    server = observed.server
    with anyio.fail_after(20):
        await observed.submit(
            "POST",
            server.url_for(path),
            content=b"pay once",
            retry_policy=RetryPolicy.transient(),
            context=fast(max_retries=3),
        )
        [result] = await observed.check()
    assert ROUTE_ERRORS[path] is type(result.error)
    assert 1 == result.attempts
    assert ["POST"] == [r.method for r in server.requests if r.path == path]


@pytest.mark.parametrize(
    "marking",
    [
        pytest.param({"context": fast(max_retries=2, idempotent=True)}, id="context"),
        pytest.param(
            {"context": fast(max_retries=2), "headers": {"Idempotency-Key": "k-1"}},
            id="idempotency-key",
        ),
    ],
)
async def test_post_marked_idempotent_is_retried_after_a_reset(
    observed: Observed, marking: dict[str, Any]
) -> None:
    """A POST marked idempotent is resent after a reset, each attempt reaching the server."""
    server = observed.server
    with anyio.fail_after(20):
        await observed.submit(
            "POST",
            server.url_for("/reset"),
            content=b"safe twice",
            retry_policy=RetryPolicy.transient(),
            **marking,
        )
        [result] = await observed.check()
    assert httpx.ReadError is type(result.error)
    assert (3, 3) == (result.attempts, server.hits["/reset"])


async def test_reset_mid_body_is_not_retried_by_default(observed: Observed) -> None:
    """A RST after part of the body fails once with ReadError, on both backends."""
    with anyio.fail_after(20):
        async with mid_body_reset_url() as raw:
            await observed.submit("GET", raw.url + "/half", context=fast(max_retries=3))
            [result] = await observed.check()
    assert httpx.ReadError is type(result.error)
    assert (1, 1) == (result.attempts, len(raw.heads))


async def test_post_reset_mid_body_reaches_the_server_once(observed: Observed) -> None:
    """A plain POST reset mid-body is not resent by the transient preset: the server saw it once."""
    with anyio.fail_after(20):
        async with mid_body_reset_url() as raw:
            await observed.submit(
                "POST",
                raw.url + "/half",
                content=b"pay once",
                retry_policy=RetryPolicy.transient(),
                context=fast(max_retries=3),
            )
            [result] = await observed.check()
    assert httpx.ReadError is type(result.error)
    assert 1 == result.attempts
    assert [b"POST /half HTTP/1.1"] == [head.split(b"\r\n")[0] for head in raw.heads]


@pytest.mark.parametrize("path", ["/reset", "/drop", "/truncate/1000"])
async def test_broken_connection_is_discarded(observed: Observed, path: str) -> None:
    """After a reset, a drop or a cut body, the next request opens a new connection."""
    server = observed.server
    with anyio.fail_after(20):
        broken = await observed.submit("GET", server.url_for(path), context=fast())
        await broken.wait_result()
        connections = [server.connections]
        following = await observed.submit("GET", server.url_for("/next"), context=fast())
        await following.wait_result()
        connections.append(server.connections)
        [failed, succeeded] = await observed.check()
    assert (RequestStatus.ERROR, 200) == (failed.status, succeeded.status_code)
    assert [1, 2] == connections
    assert 1 == succeeded.attempts


# -- latency and slow drip --------------------------------------------------------------------


async def test_latency_on_every_chunk_completes(observed: Observed) -> None:
    """A body sent one byte per 10 ms, each within the read timeout, completes in one attempt."""
    server = observed.server
    with anyio.fail_after(20):
        await observed.submit(
            "GET", server.url_for("/drip/30?interval=0.01"), timeout=2.0, context=fast()
        )
        [result] = await observed.check()
    assert result.response is not None
    assert (200, b"x" * 30, 1) == (result.status_code, result.response.content, result.attempts)


async def test_slow_drip_ends_at_the_overall_deadline(
    observed: Observed, debug_logs: pytest.LogCaptureFixture
) -> None:
    """A drip that would outlast total_timeout ends with DeadlineExceededError, no retry."""
    server = observed.server
    with anyio.fail_after(20):
        await observed.submit(
            "GET",
            with_secret(server.url_for("/drip/200")) + "&interval=0.02",
            headers=SECRET_HEADERS,
            timeout=2.0,
            retry_policy=RetryPolicy.transient(),
            context=fast(max_retries=5, total_timeout=0.4),
        )
        [result] = await observed.check(debug_logs)
    error = result.error
    assert isinstance(error, DeadlineExceededError)
    assert (1, 1, None) == (error.attempts, server.hits["/drip/200"], error.last_error)
    assert 0.4 == error.timeout


async def test_slow_drip_within_the_deadline_completes(observed: Observed) -> None:
    """A drip that ends before total_timeout completes whole."""
    server = observed.server
    with anyio.fail_after(20):
        await observed.submit(
            "GET",
            server.url_for("/drip/10?interval=0.02"),
            timeout=1.0,
            context=fast(total_timeout=10.0),
        )
        [result] = await observed.check()
    assert result.response is not None
    assert (200, 10) == (result.status_code, len(result.response.content))


# -- body cut short ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "caps",
    [
        pytest.param({}, id="buffered"),
        pytest.param({"max_response_bytes": 1 << 20}, id="capped-stream"),
    ],
)
async def test_body_cut_short_is_an_incomplete_response_error(
    server: LocalServer, caps: dict[str, Any]
) -> None:
    """A body closed after 1,000 of 5,000 announced bytes is a RemoteProtocolError, tried once."""
    with anyio.fail_after(20):
        async with observed_client(server, **caps) as observed:
            await observed.submit(
                "GET", server.url_for("/truncate/1000?claimed=5000"), context=fast(max_retries=3)
            )
            [result] = await observed.check()
    assert isinstance(result.error, httpx.RemoteProtocolError)
    assert "(received 1000 bytes, expected 5000)" in str(result.error)
    assert (1, 1) == (result.attempts, server.hits["/truncate/1000"])


# -- stale keep-alive -------------------------------------------------------------------------


async def test_connection_closed_by_the_server_then_next_request_succeeds(
    observed: Observed,
) -> None:
    """After a response with Connection: close, the next request succeeds on a new connection."""
    server = observed.server
    with anyio.fail_after(20):
        first = await observed.submit("GET", server.url_for("/close"), context=fast())
        await first.wait_result()
        second = await observed.submit("GET", server.url_for("/after"), context=fast(max_retries=0))
        await second.wait_result()
        connections = server.connections
        [closed, after] = await observed.check()
    assert (200, 200) == (closed.status_code, after.status_code)
    assert (1, 1, 2) == (closed.attempts, after.attempts, connections)


async def test_idle_keep_alive_closed_by_the_server_is_not_reused(observed: Observed) -> None:
    """A keep-alive connection closed by the server while idle is not reused: no failed attempt."""

    async def respond_once(stream: SocketStream, index: int) -> bool:
        await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return False  # close while the client keeps the connection as idle

    with anyio.fail_after(20):
        async with raw_server(respond_once) as raw:
            first = await observed.submit("GET", raw.url + "/a", context=fast())
            await first.wait_result()
            await raw.closed.wait()
            await anyio.sleep(0.05)  # let the FIN reach the client's socket
            await observed.submit("GET", raw.url + "/b", context=fast(max_retries=0))
            [a, b] = await observed.check()
    assert (200, 200) == (a.status_code, b.status_code)
    assert (1, 2, 2) == (b.attempts, len(raw.heads), raw.connections)


def _drop_the_second_request() -> Respond:
    """Answer the first request of each connection; drop the second as it arrives (a stale race)."""

    async def respond(stream: SocketStream, index: int) -> bool:
        if index == 0:
            await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            return True
        await close_gracefully(stream)
        return False

    return respond


async def test_keep_alive_dropped_as_the_request_arrives_is_retried_under_the_preset(
    observed: Observed,
) -> None:
    """A GET dropped on a reused keep-alive connection is resent on a new one by the preset."""
    with anyio.fail_after(20):
        async with raw_server(_drop_the_second_request()) as raw:
            first = await observed.submit("GET", raw.url + "/a", context=fast())
            await first.wait_result()
            await observed.submit(
                "GET",
                raw.url + "/b",
                retry_policy=RetryPolicy.transient(),
                context=fast(max_retries=2),
            )
            [a, b] = await observed.check()
    assert (200, 200) == (a.status_code, b.status_code)
    assert [("response_headers", "RemoteProtocolError", None), (None, None, 200)] == [
        (h.phase, h.error, h.status_code) for h in b.history
    ]
    assert (3, 2) == (len(raw.heads), raw.connections)


async def test_keep_alive_dropped_as_the_request_arrives_is_retried_when_asked(
    observed: Observed,
) -> None:
    """retry_reused_disconnects resends a GET dropped on a reused keep-alive connection."""
    policy = RetryPolicy(retry_reused_disconnects=True)
    with anyio.fail_after(20):
        async with raw_server(_drop_the_second_request()) as raw:
            first = await observed.submit("GET", raw.url + "/a", context=fast())
            await first.wait_result()
            await observed.submit(
                "GET", raw.url + "/b", retry_policy=policy, context=fast(max_retries=2)
            )
            [_a, b] = await observed.check()
    assert [("response_headers", "RemoteProtocolError", None), (None, None, 200)] == [
        (h.phase, h.error, h.status_code) for h in b.history
    ]
    assert (3, 2) == (len(raw.heads), raw.connections)


# -- TLS --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsSetup:
    """A test CA trusted by ``client_context``, and the server's context for one leaf cert."""

    client_context: ssl.SSLContext
    server_context: ssl.SSLContext


def _tls_setup(case: str) -> TlsSetup:
    """Certificates for ``case``: untrusted, expired, wrong-host, or a valid one (trustme)."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    now = datetime.datetime.now(datetime.timezone.utc)
    if case == "untrusted":
        leaf = trustme.CA().issue_cert("127.0.0.1")
    elif case == "expired":
        leaf = ca.issue_cert(
            "127.0.0.1",
            not_before=now - datetime.timedelta(days=30),
            not_after=now - datetime.timedelta(days=1),
        )
    elif case == "wrong-host":
        leaf = ca.issue_cert("other.example")
    else:
        leaf = ca.issue_cert("127.0.0.1")
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(server_context)
    return TlsSetup(client_context, server_context)


@asynccontextmanager
async def tls_server(context: ssl.SSLContext) -> AsyncIterator[RawServer]:
    """A loopback HTTPS server answering ``200 ok``; failed handshakes are counted and closed."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    server = RawServer(f"https://127.0.0.1:{listener.extra(SocketAttribute.local_port)}")

    async def serve(stream: SocketStream) -> None:
        server.connections += 1
        try:
            tls = await TLSStream.wrap(
                stream, server_side=True, ssl_context=context, standard_compatible=False
            )
        except (ssl.SSLError, anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            await stream.aclose()
            return
        async with tls:
            with suppress(anyio.EndOfStream, anyio.BrokenResourceError, anyio.DelimiterNotFound):
                server.heads.append(await _read_request(BufferedByteReceiveStream(tls)))
                await tls.send(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                )

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        try:
            yield server
        finally:
            tg.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        pytest.param("untrusted", "unable to get local issuer certificate", id="untrusted"),
        pytest.param("expired", "certificate has expired", id="expired"),
        pytest.param("wrong-host", "IP address mismatch", id="wrong-host"),
    ],
)
async def test_tls_verification_failure_is_never_retried(
    server: LocalServer, case: str, reason: str, debug_logs: pytest.LogCaptureFixture
) -> None:
    """A certificate failing verification is a ConnectError, tried once even by the preset."""
    setup = _tls_setup(case)
    with anyio.fail_after(20):
        async with (
            tls_server(setup.server_context) as tls,
            observed_client(
                server, verify=setup.client_context, retry_policy=RetryPolicy.transient()
            ) as observed,
        ):
            await observed.submit(
                "GET",
                with_secret(tls.url + "/x"),
                headers=SECRET_HEADERS,
                context=fast(max_retries=3),
            )
            [result] = await observed.check(debug_logs)
    assert isinstance(result.error, httpx.ConnectError)
    assert not is_retryable(result.error)
    [verification] = [
        e for e in cause_chain(result.error) if isinstance(e, ssl.SSLCertVerificationError)
    ]
    assert reason in verification.verify_message
    assert [] == [e for e in observed.events if e.event_type is EventType.RETRY]
    assert (1, 1, []) == (result.attempts, tls.connections, tls.heads)


async def test_tls_with_a_trusted_certificate_succeeds(server: LocalServer) -> None:
    """The same TLS server with a valid, trusted certificate answers: the control case."""
    setup = _tls_setup("valid")
    with anyio.fail_after(20):
        async with (
            tls_server(setup.server_context) as tls,
            observed_client(server, verify=setup.client_context) as observed,
        ):
            await observed.submit("GET", tls.url + "/x", context=fast())
            [result] = await observed.check()
    assert result.response is not None
    assert (200, b"ok") == (result.status_code, result.response.content)
