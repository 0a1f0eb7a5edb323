"""
Which failures are retried, the backoff delays between retries, and the retry behaviour of the
client over real loopback sockets on both backends.
"""

from __future__ import annotations

import contextlib
import math
import random
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpcore
import httpx
import pytest
from anyio.abc import SocketAttribute, SocketStream
from anyio.streams.tls import TLSStream
from hypothesis import given, settings
from hypothesis import strategies as st

from typed_async_client import (
    AsyncResilientClient,
    RequestCancelledError,
    RequestContext,
    RequestStatus,
    backoff_delay,
    is_retryable,
)
from typed_async_client.testing import LocalServer

pytestmark = pytest.mark.anyio

#: Deterministic property tests: the same examples on every run and every machine.
PROPERTY = settings(derandomize=True, database=None, deadline=None, max_examples=300)

#: Backoff fast enough that a whole retry sequence takes milliseconds.
BASE = 0.001
CAP = 0.005

#: A self-signed certificate for 127.0.0.1 (valid until 2126) that no CA store trusts.
UNTRUSTED_CERT = """\
-----BEGIN CERTIFICATE-----
MIIBrDCCAVKgAwIBAgIUKgaj/c89cLrgebWR06psaZ7N+igwCgYIKoZIzj0EAwIw
IjEgMB4GA1UEAwwXdHlwZWQtYXN5bmMtY2xpZW50IHRlc3QwIBcNMjYxMTI5MjIw
NTMwWhgPMjEyNjExMDUyMjA1MzBaMCIxIDAeBgNVBAMMF3R5cGVkLWFzeW5jLWNs
aWVudCB0ZXN0MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE9YRtInBRH132PkQn
sXuTvqpQRm6umLveaWJXJY3uE3rd/Ql6oc2nbCJ0YSJlXH20npPTi0CJr8Tl8fb8
UkfMJKNkMGIwHQYDVR0OBBYEFIJh+5fTC3HLaBFGivvsgTPWySzNMB8GA1UdIwQY
MBaAFIJh+5fTC3HLaBFGivvsgTPWySzNMA8GA1UdEwEB/wQFMAMBAf8wDwYDVR0R
BAgwBocEfwAAATAKBggqhkjOPQQDAgNIADBFAiEA5nYDFlxI+V2Pgn9Fa2rf16LK
Q/W+ftCs4KPRCh4nGfACIE1iH9Jrrmi4/vlmW6hZVms1ySA+3uGdhYNj4WSV9yGB
-----END CERTIFICATE-----
"""
#: Its private key, generated for this test only.
UNTRUSTED_KEY = """\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgc9k7qaksT/E41kQF
PABXHyNSk8PlQLN/kXq6rq1o4D+hRANCAAT1hG0icFEfXfY+RCexe5O+qlBGbq6Y
u95pYlclje4Tet39CXqhzadsInRhImVcfbSek9OLQImvxOXx9vxSR8wk
-----END PRIVATE KEY-----
"""


def _request() -> httpx.Request:
    return httpx.Request("GET", "http://127.0.0.1/")


def _tls_failure(depth: int = 2) -> httpx.ConnectError:
    """An httpx.ConnectError chained from a certificate failure, as httpx raises it."""
    try:
        try:
            try:
                raise ssl.SSLCertVerificationError(1, "certificate verify failed")
            except ssl.SSLCertVerificationError as tls_error:
                raise httpcore.ConnectError(str(tls_error)) from tls_error
        except httpcore.ConnectError as core_error:
            raise httpx.ConnectError(str(core_error), request=_request()) from core_error
    except httpx.ConnectError as error:
        return error


async def _wait_until(predicate: Callable[[], bool]) -> None:
    """Poll ``predicate`` at most 1,000 times, 10 ms apart (callers also hold a fail_after)."""
    for _ in range(1000):
        if predicate():
            return
        await anyio.sleep(0.01)
    raise AssertionError("condition never became true")


# -- is_retryable -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(httpx.ConnectError("refused", request=_request()), id="httpx.ConnectError"),
        pytest.param(httpcore.ConnectError("refused"), id="httpcore.ConnectError"),
    ],
)
def test_connect_errors_are_retryable(error: Exception) -> None:
    """httpx and httpcore connection errors are retryable."""
    assert is_retryable(error)


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(httpx.ReadError("reset", request=_request()), id="ReadError"),
        pytest.param(httpx.ReadTimeout("slow", request=_request()), id="ReadTimeout"),
        pytest.param(httpx.ConnectTimeout("slow", request=_request()), id="ConnectTimeout"),
        pytest.param(httpx.PoolTimeout("pool", request=_request()), id="PoolTimeout"),
        pytest.param(httpx.WriteError("write", request=_request()), id="WriteError"),
        pytest.param(
            httpx.RemoteProtocolError("eof", request=_request()), id="RemoteProtocolError"
        ),
        pytest.param(
            httpx.HTTPStatusError(
                "503",
                request=_request(),
                response=httpx.Response(503, request=_request()),
            ),
            id="HTTPStatusError",
        ),
        pytest.param(httpcore.ReadError("reset"), id="httpcore.ReadError"),
        pytest.param(httpcore.ConnectTimeout("slow"), id="httpcore.ConnectTimeout"),
        pytest.param(ValueError("bad"), id="ValueError"),
        pytest.param(ConnectionRefusedError(111, "refused"), id="ConnectionRefusedError"),
        pytest.param(KeyboardInterrupt(), id="KeyboardInterrupt"),
    ],
)
def test_other_errors_are_not_retryable(error: BaseException) -> None:
    """Read errors, timeouts, protocol and status errors and non-httpx errors are permanent."""
    assert not is_retryable(error)


def test_tls_verification_failure_is_not_retryable() -> None:
    """A ConnectError caused by a certificate verification failure is permanent."""
    error = _tls_failure()
    assert isinstance(error.__cause__, httpcore.ConnectError)
    assert not is_retryable(error)
    assert not is_retryable(error.__cause__)


def _raise_implicitly_chained_tls_failure() -> None:
    try:
        raise ssl.SSLCertVerificationError(1, "certificate verify failed")
    except ssl.SSLCertVerificationError:
        raise httpx.ConnectError("tls", request=_request())  # noqa: B904  (implicit on purpose)


def _raise_connect_error_from_refusal() -> None:
    try:
        raise ConnectionRefusedError(111, "refused")
    except ConnectionRefusedError as os_error:
        raise httpx.ConnectError("refused", request=_request()) from os_error


def _raise_chained_connect_errors() -> None:
    try:
        raise httpcore.ConnectError("inner")
    except httpcore.ConnectError as inner:
        raise httpx.ConnectError("outer", request=_request()) from inner


def test_tls_verification_failure_as_implicit_context_is_not_retryable() -> None:
    """A certificate failure found through __context__ (implicit chaining) is permanent too."""
    with pytest.raises(httpx.ConnectError) as raised:
        _raise_implicitly_chained_tls_failure()
    assert raised.value.__cause__ is None
    assert not is_retryable(raised.value)


def test_connect_error_caused_by_a_refusal_stays_retryable() -> None:
    """A ConnectError caused by an OSError that is not a verification failure is retried."""
    with pytest.raises(httpx.ConnectError) as raised:
        _raise_connect_error_from_refusal()
    assert is_retryable(raised.value)


def test_cyclic_cause_chain_does_not_hang() -> None:
    """A cyclic __cause__ chain is walked once: a plain connect error stays retryable."""
    with pytest.raises(httpx.ConnectError) as raised:
        _raise_chained_connect_errors()
    outer = raised.value
    assert isinstance(outer.__cause__, httpcore.ConnectError)
    outer.__cause__.__cause__ = outer  # close the cycle
    assert is_retryable(outer)
    assert is_retryable(outer.__cause__)


def test_cyclic_chain_with_tls_failure_is_not_retryable() -> None:
    """A cyclic chain that holds a certificate failure is permanent and does not hang."""
    error = _tls_failure()
    tls_error = error.__cause__.__cause__  # type: ignore[union-attr]
    assert isinstance(tls_error, ssl.SSLCertVerificationError)
    tls_error.__cause__ = error  # close the cycle
    assert not is_retryable(error)


# -- backoff ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Params:
    """Valid backoff parameters, as a RequestContext accepts them."""

    base_delay: float
    backoff_factor: float
    max_delay: float


params_strategy = st.builds(
    lambda base, factor, extra: Params(base, factor, base + extra),
    st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=60.0)),
    st.floats(min_value=1.0, max_value=16.0),
    st.floats(min_value=0.0, max_value=3600.0),
)
retries = st.integers(min_value=1, max_value=10**6)
unit = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)


def _ceiling(retry: int, p: Params) -> float:
    """The documented ceiling, min(max_delay, base_delay * backoff_factor ** (retry - 1))."""
    if 0.0 == p.base_delay:
        return 0.0
    try:
        raw = p.base_delay * p.backoff_factor ** (retry - 1)
    except OverflowError:
        return p.max_delay
    return min(p.max_delay, raw)


def _delay(retry: int, p: Params, jitter: str, u: float) -> float:
    return backoff_delay(
        retry,
        p.base_delay,
        p.backoff_factor,
        p.max_delay,
        jitter=jitter,  # type: ignore[arg-type]
        rand=lambda: u,
    )


# The implementation compares in log space, so at the cap's boundary it may round to the cap.
REL = 1e-9


@PROPERTY
@given(retry=retries, p=params_strategy, u=unit)
def test_full_jitter_is_within_zero_and_the_ceiling(retry: int, p: Params, u: float) -> None:
    """Full jitter gives a delay in [0, min(max_delay, base * factor ** (n - 1))]."""
    delay = _delay(retry, p, "full", u)
    assert 0.0 <= delay <= p.max_delay
    assert delay <= _ceiling(retry, p) * (1 + REL)


@PROPERTY
@given(retry=retries, p=params_strategy, u=unit)
def test_equal_jitter_is_within_half_and_the_ceiling(retry: int, p: Params, u: float) -> None:
    """Equal jitter gives a delay in [ceiling / 2, ceiling]."""
    ceiling = _ceiling(retry, p)
    delay = _delay(retry, p, "equal", u)
    assert ceiling / 2 * (1 - REL) <= delay <= p.max_delay
    assert delay <= ceiling * (1 + REL)


@PROPERTY
@given(retry=retries, p=params_strategy, u=unit)
def test_no_jitter_is_the_ceiling(retry: int, p: Params, u: float) -> None:
    """Without jitter the delay is the ceiling itself, whatever rand returns."""
    delay = _delay(retry, p, "none", u)
    assert math.isclose(_ceiling(retry, p), delay, rel_tol=REL)
    assert delay <= p.max_delay


@PROPERTY
@given(retry=st.integers(min_value=1, max_value=10**6), p=params_strategy)
def test_large_retry_numbers_stay_at_the_cap(retry: int, p: Params) -> None:
    """Retry numbers up to 10**6 never overflow and never exceed max_delay."""
    for jitter in ("full", "equal", "none"):
        delay = _delay(retry, p, jitter, 0.999)
        assert math.isfinite(delay)
        assert 0.0 <= delay <= p.max_delay


def test_retry_one_million_with_default_settings_is_the_cap() -> None:
    """With the default settings, the millionth retry's ceiling is exactly max_delay."""
    assert 30.0 == backoff_delay(10**6, 0.5, 2.0, 30.0, jitter="none")
    context = RequestContext(max_retries=10**6, current_attempt=10**6 - 1)
    assert 30.0 == context.backoff_delay(rand=lambda: 1.0)


def test_tiny_base_delay_never_overflows() -> None:
    """A valid context with a tiny base_delay still gets a capped delay at high retry numbers."""
    context = RequestContext(
        base_delay=1e-308, max_delay=30.0, max_retries=3000, current_attempt=2000
    )
    assert 30.0 == context.backoff_delay(rand=lambda: 1.0)


@PROPERTY
@given(
    first=retries,
    second=retries,
    p=params_strategy,
)
def test_ceiling_is_monotone(first: int, second: int, p: Params) -> None:
    """The ceiling never decreases from one retry to a later one."""
    low, high = sorted((first, second))
    assert _delay(low, p, "none", 0.0) <= _delay(high, p, "none", 0.0)


def test_seeded_rand_gives_reproducible_delays() -> None:
    """The same seed gives the same delays, from backoff_delay and from the context."""

    def run(seed: int) -> list[float]:
        rand = random.Random(seed).random
        return [backoff_delay(n, 0.1, 2.0, 5.0, rand=rand) for n in range(1, 21)]

    assert run(1234) == run(1234)
    assert run(1234) != run(4321)
    context = RequestContext(base_delay=0.1, max_delay=5.0, max_retries=5, current_attempt=2)
    assert backoff_delay(3, 0.1, 2.0, 5.0, rand=random.Random(7).random) == context.backoff_delay(
        rand=random.Random(7).random
    )


def test_context_backoff_is_full_jitter_of_the_next_retry() -> None:
    """RequestContext.backoff_delay scales the ceiling of retry current_attempt + 1 by rand."""
    context = RequestContext(base_delay=0.5, backoff_factor=3.0, max_delay=100.0, max_retries=9)
    assert 0.25 == context.backoff_delay(rand=lambda: 0.5)
    assert 0.75 == context.next_attempt().backoff_delay(rand=lambda: 0.5)
    assert 0.0 == context.backoff_delay(rand=lambda: 0.0)


@pytest.mark.parametrize("jitter", ["", "Full", "random", "decorrelated"])
def test_invalid_jitter_raises(jitter: str) -> None:
    """An unknown jitter name raises ValueError."""
    with pytest.raises(ValueError, match="jitter"):
        backoff_delay(1, 0.1, 2.0, 1.0, jitter=jitter)  # type: ignore[arg-type]


def test_retry_number_below_one_raises() -> None:
    """Retry numbers start at 1: zero or negative raise ValueError."""
    with pytest.raises(ValueError, match="retry"):
        backoff_delay(0, 0.1, 2.0, 1.0)


# -- retry behaviour over real loopback -------------------------------------------------------


@pytest.mark.parametrize("max_retries", [0, 1, 3])
async def test_refused_connection_is_retried_max_retries_times(
    refused_url: str, max_retries: int
) -> None:
    """A refused connection is tried max_retries + 1 times, then raises httpx.ConnectError."""
    context = RequestContext(
        request_id="refused", max_retries=max_retries, base_delay=BASE, max_delay=CAP
    )
    with anyio.fail_after(10):
        async with AsyncResilientClient() as client:
            handle = await client.get(refused_url, context=context)
            with pytest.raises(httpx.ConnectError) as raised:
                await handle
        stats = client.stats()
    assert httpx.ConnectError is type(raised.value)
    result = client.get_result("refused")
    assert result is not None
    assert (RequestStatus.ERROR, max_retries + 1) == (result.status, result.attempts)
    assert raised.value is result.error
    assert result.is_error
    assert (max_retries, max_retries + 1, 1) == (stats.retries, stats.attempts, stats.failed)


@pytest.mark.parametrize("status", [500, 503])
async def test_http_error_status_is_not_retried(server: LocalServer, status: int) -> None:
    """A 5xx response is returned as is after one attempt, as a successful result."""
    path = f"/status/{status}"
    context = RequestContext(request_id="status", max_retries=3, base_delay=BASE, max_delay=CAP)
    with anyio.fail_after(10):
        async with AsyncResilientClient() as client:
            response = await (await client.get(server.url_for(path), context=context))
        result = client.get_result("status")
    assert status == response.status_code
    assert 1 == server.hits[path]
    assert result is not None
    assert result.is_success
    assert (1, status) == (result.attempts, result.status_code)
    assert 0 == client.stats().retries


async def test_read_timeout_is_not_retried(server: LocalServer) -> None:
    """A read timeout raises httpx.ReadTimeout after exactly one attempt reaching the server."""
    context = RequestContext(request_id="slow", max_retries=3, base_delay=BASE, max_delay=CAP)
    with anyio.fail_after(10):
        async with AsyncResilientClient(timeout=0.2) as client:
            handle = await client.get(server.url_for("/delay/5"), context=context)
            with pytest.raises(httpx.ReadTimeout):
                await handle
        result = client.get_result("slow")
    assert 1 == server.hits["/delay/5"]
    assert result is not None
    assert (RequestStatus.ERROR, 1) == (result.status, result.attempts)
    assert (0, 1) == (client.stats().retries, client.stats().attempts)


async def test_disconnect_without_response_is_not_retried() -> None:
    """A server that reads the request and closes without answering is contacted once."""
    accepted = 0

    async def hang_up(stream: SocketStream) -> None:
        nonlocal accepted
        accepted += 1
        async with stream:
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                await stream.receive()

    context = RequestContext(request_id="hangup", max_retries=3, base_delay=BASE, max_delay=CAP)
    with anyio.fail_after(10):
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(SocketAttribute.local_port)
        async with anyio.create_task_group() as tg:

            async def serve() -> None:
                async with listener:
                    await listener.serve(hang_up)

            tg.start_soon(serve)
            async with AsyncResilientClient() as client:
                handle = await client.get(f"http://127.0.0.1:{port}/", context=context)
                with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
                    await handle
            tg.cancel_scope.cancel()
    assert 1 == accepted
    result = client.get_result("hangup")
    assert result is not None
    assert 1 == result.attempts


@pytest.fixture
def untrusted_tls_context(tmp_path: Path) -> ssl.SSLContext:
    """A server-side TLS context presenting a certificate no client trusts."""
    cert = tmp_path / "cert.pem"
    key = tmp_path / "key.pem"
    cert.write_text(UNTRUSTED_CERT)
    key.write_text(UNTRUSTED_KEY)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def test_tls_verification_failure_is_not_retried(
    untrusted_tls_context: ssl.SSLContext,
) -> None:
    """A real certificate verification failure raises ConnectError after a single connection."""
    accepted = 0

    async def handshake(stream: SocketStream) -> None:
        nonlocal accepted
        accepted += 1
        async with stream:
            with contextlib.suppress(Exception):
                await TLSStream.wrap(
                    stream,
                    server_side=True,
                    ssl_context=untrusted_tls_context,
                    standard_compatible=False,
                )

    context = RequestContext(request_id="tls", max_retries=3, base_delay=BASE, max_delay=CAP)
    with anyio.fail_after(10):
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(SocketAttribute.local_port)
        async with anyio.create_task_group() as tg:

            async def serve() -> None:
                async with listener:
                    await listener.serve(handshake)

            tg.start_soon(serve)
            async with AsyncResilientClient(trust_env=False) as client:
                handle = await client.get(f"https://127.0.0.1:{port}/", context=context)
                with pytest.raises(httpx.ConnectError) as raised:
                    await handle
            tg.cancel_scope.cancel()
    assert not is_retryable(raised.value)
    assert 1 == accepted
    assert 0 == client.stats().retries


async def test_httpcore_connect_error_from_transport_is_retried() -> None:
    """httpcore.ConnectError raised by a transport is retried until the request succeeds."""
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise httpcore.ConnectError(f"fail {calls}")
        return httpx.Response(200)

    context = RequestContext(request_id="core", max_retries=5, base_delay=BASE, max_delay=CAP)
    with anyio.fail_after(10):
        async with AsyncResilientClient(transport=httpx.MockTransport(handler)) as client:
            response = await (await client.get("http://127.0.0.1/", context=context))
    assert 200 == response.status_code
    assert 3 == calls
    result = client.get_result("core")
    assert result is not None
    assert (3, RequestStatus.SUCCESS) == (result.attempts, result.status)


@pytest.mark.parametrize(
    "error_type",
    [
        httpx.ReadError,
        httpx.ReadTimeout,
        httpx.ConnectTimeout,
        httpx.WriteError,
        httpx.PoolTimeout,
        httpx.RemoteProtocolError,
    ],
)
async def test_non_connect_transport_errors_are_not_retried(
    error_type: type[httpx.TransportError],
) -> None:
    """Transport errors other than connection errors end the request after one call."""
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise error_type("boom", request=request)

    context = RequestContext(max_retries=3, base_delay=BASE, max_delay=CAP)
    with anyio.fail_after(10):
        async with AsyncResilientClient(transport=httpx.MockTransport(handler)) as client:
            with pytest.raises(error_type):
                await (await client.get("http://127.0.0.1/", context=context))
    assert 1 == calls


async def test_cancellation_during_an_attempt_is_not_retried(server: LocalServer) -> None:
    """A request cancelled during its attempt ends CANCELLED without any retry."""
    context = RequestContext(request_id="cancel", max_retries=3, base_delay=BASE, max_delay=CAP)
    with anyio.fail_after(10):
        async with AsyncResilientClient() as client:
            handle = await client.get(server.url_for("/delay/5"), context=context)
            await _wait_until(lambda: 1 == server.hits["/delay/5"])
            handle.cancel()
            with pytest.raises(RequestCancelledError):
                await handle
        stats = client.stats()
    result = client.get_result("cancel")
    assert result is not None
    assert (RequestStatus.CANCELLED, 1) == (result.status, result.attempts)
    assert (1, 0, 1) == (stats.attempts, stats.retries, stats.cancelled)
    assert 1 == server.hits["/delay/5"]


@dataclass(frozen=True)
class SlowBackoffContext(RequestContext):
    """A context whose backoff sleep is long and fixed, so a test can cancel during it."""

    def backoff_delay(self, rand: Callable[[], float] = random.random) -> float:
        return 5.0


async def test_cancellation_during_backoff_is_not_retried(refused_url: str) -> None:
    """A request cancelled during its backoff sleep ends CANCELLED with no further attempt."""
    context = SlowBackoffContext(request_id="sleeping", max_retries=3)
    with anyio.fail_after(10):
        async with AsyncResilientClient() as client:
            handle = await client.get(refused_url, context=context)
            await _wait_until(lambda: 1 == client.stats().retries)
            handle.cancel()
            result = await handle.wait_result()
        stats = client.stats()
    assert (RequestStatus.CANCELLED, 1) == (result.status, result.attempts)
    assert isinstance(result.error, RequestCancelledError)
    assert (1, 1, 1) == (stats.attempts, stats.retries, stats.cancelled)


async def test_outer_cancellation_is_not_retried(server: LocalServer) -> None:
    """Cancelling the scope around the client ends its request CANCELLED, never retried."""
    context = RequestContext(request_id="outer", max_retries=3, base_delay=BASE, max_delay=CAP)
    with anyio.fail_after(10):
        with anyio.CancelScope() as scope:
            async with AsyncResilientClient() as client:
                handle = await client.get(server.url_for("/delay/5"), context=context)
                await _wait_until(lambda: 1 == server.hits["/delay/5"])
                scope.cancel()
                await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert handle.result is not None
    assert (RequestStatus.CANCELLED, 1) == (handle.result.status, handle.result.attempts)
    assert (1, 0) == (client.stats().attempts, client.stats().retries)
    assert 1 == server.hits["/delay/5"]


class Interrupt(BaseException):
    """A BaseException standing in for KeyboardInterrupt."""


class InterruptingTransport(httpx.AsyncBaseTransport):
    """A transport that raises a BaseException on every call and counts the calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        raise Interrupt


async def test_base_exception_propagates_and_is_not_retried() -> None:
    """A BaseException from the transport escapes the client's block after a single call."""
    transport = InterruptingTransport()
    context = RequestContext(
        request_id="interrupted", max_retries=3, base_delay=BASE, max_delay=CAP
    )
    with anyio.fail_after(10):
        with pytest.RaisesGroup(Interrupt, flatten_subgroups=True):
            async with AsyncResilientClient(transport=transport) as client:
                handle = await client.get("http://127.0.0.1/", context=context)
                await handle.wait_result()
                await anyio.sleep_forever()
    assert 1 == transport.calls
    assert 0 == client.stats().retries
    assert client.is_closed
    result = client.get_result("interrupted")
    assert result is not None
    assert 1 == result.attempts
    assert isinstance(result.error, Interrupt)
