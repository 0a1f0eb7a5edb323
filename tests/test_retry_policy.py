"""
Retry policies: ``RetryPolicy`` and ``Backoff`` validation, the transient preset, the
idempotency rule, the predicate hook, attempt history, streaming bodies and the transport
retries warning, over real loopback sockets on asyncio and trio.
"""

from __future__ import annotations

import dataclasses
import math
import ssl
import warnings
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpcore
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from typed_async_client import (
    AsyncEvent,
    AsyncResilientClient,
    Backoff,
    EventType,
    RequestContext,
    RequestResult,
    RequestStatus,
    RetryDecisionInput,
    RetryPolicy,
    TransportRetriesWarning,
)
from typed_async_client._phases import AttemptTrace
from typed_async_client._retry import DEFAULT_POLICY
from typed_async_client._retrying import Retrying
from typed_async_client.testing import LocalServer

pytestmark = pytest.mark.anyio

#: Deterministic property tests: the same examples on every run and every machine.
PROPERTY = settings(derandomize=True, database=None, deadline=None, max_examples=200)

#: A backoff fast enough that a whole retry sequence takes milliseconds.
FAST = Backoff(base=0.001, factor=2.0, cap=0.004)
TRANSIENT = RetryPolicy.transient(backoff=FAST)

#: Where a failure that happened after the request was written may be recorded.
RESPONSE_PHASES = frozenset({"response_headers", "body", "response"})

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


def _sequence(server: LocalServer, key: str, codes: str, **params: str) -> str:
    """The URL of ``/sequence/{key}`` answering ``codes`` in turn."""
    url = httpx.URL(server.url_for(f"/sequence/{key}"), params={"codes": codes, **params})
    return str(url)


def _record(client: AsyncResilientClient, *event_types: EventType) -> list[AsyncEvent]:
    """Collect the client's events of ``event_types`` (complete once the client is closed)."""
    seen: list[AsyncEvent] = []
    for event_type in event_types:
        client.add_event_callback(event_type, seen.append)
    return seen


def _request() -> httpx.Request:
    return httpx.Request("POST", "http://127.0.0.1/")


def _decision(
    method: str = "POST",
    *,
    idempotent: bool = False,
    error: Exception | None = None,
    response: httpx.Response | None = None,
) -> RetryDecisionInput:
    return RetryDecisionInput(
        method=method,
        url="http://127.0.0.1/",
        attempt=1,
        error=error,
        response=response,
        idempotent=idempotent,
    )


async def _chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    """A one-shot streaming request body."""
    for part in parts:
        yield part


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "item",
    [
        pytest.param("ConnectError", id="str"),
        pytest.param(42, id="int"),
        pytest.param(KeyboardInterrupt, id="BaseException-subclass"),
        pytest.param(httpx.ConnectError("x"), id="instance"),
        pytest.param(None, id="None"),
    ],
)
def test_retry_on_rejects_non_exception_types(item: object) -> None:
    """retry_on accepts only Exception subclasses: anything else is a TypeError naming it."""
    with pytest.raises(TypeError, match="retry_on"):
        RetryPolicy(retry_on=(httpx.ConnectError, item))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "status",
    [
        pytest.param(99, id="99"),
        pytest.param(600, id="600"),
        pytest.param(-503, id="negative"),
        pytest.param(True, id="bool"),
        pytest.param("503", id="str"),
        pytest.param(503.0, id="float"),
    ],
)
def test_retry_statuses_must_be_http_statuses(status: object) -> None:
    """A retry status outside 100-599, or not an int, is a ValueError naming the field."""
    with pytest.raises(ValueError, match="retry_statuses"):
        RetryPolicy(retry_statuses=frozenset({status}))  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [-1.0, -0.001, math.nan, math.inf, -math.inf])
def test_max_retry_after_must_be_finite_and_non_negative(value: float) -> None:
    """A negative, NaN or infinite max_retry_after is a ValueError naming the field."""
    with pytest.raises(ValueError, match="max_retry_after"):
        RetryPolicy(max_retry_after=value)


@pytest.mark.parametrize("value", ["5", True, None])
def test_max_retry_after_must_be_a_number(value: object) -> None:
    """A max_retry_after that is not a number is a TypeError naming the field."""
    with pytest.raises(TypeError, match="max_retry_after"):
        RetryPolicy(max_retry_after=value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        pytest.param({"base": 2.0, "cap": 1.0}, "base", id="base>cap"),
        pytest.param({"factor": 0.5}, "factor", id="factor<1"),
        pytest.param({"factor": math.nan}, "factor", id="factor-nan"),
        pytest.param({"base": math.nan}, "base", id="base-nan"),
        pytest.param({"base": -0.1}, "base", id="base-negative"),
        pytest.param({"cap": math.inf}, "cap", id="cap-inf"),
        pytest.param({"cap": math.nan}, "cap", id="cap-nan"),
        pytest.param({"jitter": "gaussian"}, "jitter", id="unknown-jitter"),
        pytest.param({"jitter": "FULL"}, "jitter", id="jitter-case"),
    ],
)
def test_backoff_rejects_bad_values_naming_the_field(kwargs: dict[str, Any], field: str) -> None:
    """Backoff rejects base > cap, factor < 1, NaN/infinite durations and unknown jitters."""
    with pytest.raises(ValueError, match=field):
        Backoff(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        pytest.param({"base": "1"}, "base", id="base-str"),
        pytest.param({"factor": True}, "factor", id="factor-bool"),
        pytest.param({"cap": None}, "cap", id="cap-None"),
    ],
)
def test_backoff_rejects_non_numbers(kwargs: dict[str, Any], field: str) -> None:
    """A Backoff duration that is not a number is a TypeError naming the field."""
    with pytest.raises(TypeError, match=field):
        Backoff(**kwargs)


def test_predicate_and_backoff_types_are_checked() -> None:
    """A predicate that is not callable, or a backoff that is not a Backoff, is a TypeError."""
    with pytest.raises(TypeError, match="predicate"):
        RetryPolicy(predicate=42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="backoff"):
        RetryPolicy(backoff=0.5)  # type: ignore[arg-type]


def test_policy_and_backoff_are_frozen() -> None:
    """RetryPolicy and Backoff are immutable."""
    policy = RetryPolicy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.retry_statuses = frozenset({503})  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        FAST.cap = 10.0  # type: ignore[misc]


def test_policy_normalises_its_collections() -> None:
    """retry_on becomes a tuple, retry_statuses a frozenset, methods upper case."""
    policy = RetryPolicy(
        retry_on=[httpx.ReadError],  # type: ignore[arg-type]
        retry_statuses=[503, 503, 429],  # type: ignore[arg-type]
        idempotent_methods=frozenset({"get", "Post"}),
    )
    assert (httpx.ReadError,) == policy.retry_on
    assert frozenset({429, 503}) == policy.retry_statuses
    assert frozenset({"GET", "POST"}) == policy.idempotent_methods


@pytest.mark.parametrize(
    "methods",
    [pytest.param("POST", id="bare-str"), pytest.param(frozenset({1}), id="int-item")],
)
def test_idempotent_methods_are_checked(methods: object) -> None:
    """idempotent_methods must be a collection of method names: anything else is a TypeError."""
    with pytest.raises(TypeError, match="idempotent_methods"):
        RetryPolicy(idempotent_methods=methods)  # type: ignore[arg-type]


def test_default_policy_retries_connection_errors_only() -> None:
    """The default policy retries connect errors, no status, and is recognised as default."""
    policy = RetryPolicy()
    assert {httpx.ConnectError, httpcore.ConnectError} == set(policy.retry_on)
    assert frozenset() == policy.retry_statuses
    assert IDEMPOTENT == policy.idempotent_methods
    assert (None, None, False) == (
        policy.predicate,
        policy.backoff,
        policy.retry_reused_disconnects,
    )
    assert policy.is_default
    assert DEFAULT_POLICY == policy


def test_transient_preset_contents() -> None:
    """transient() retries connect/pool errors, 429/502/503/504, read errors and disconnects."""
    backoff = Backoff(base=0.1, cap=1.0, jitter="equal")
    policy = RetryPolicy.transient(backoff=backoff, max_retry_after=7.5)
    expected_errors = {
        httpx.ConnectError,
        httpcore.ConnectError,
        httpx.ConnectTimeout,
        httpx.PoolTimeout,
        httpx.ReadError,
    }
    assert expected_errors == set(policy.retry_on)
    assert policy.retry_disconnects
    assert frozenset({429, 502, 503, 504}) == policy.retry_statuses
    assert IDEMPOTENT == policy.idempotent_methods
    assert (backoff, 7.5, True) == (
        policy.backoff,
        policy.max_retry_after,
        policy.retry_reused_disconnects,
    )
    assert not policy.is_default
    assert 60.0 == RetryPolicy.transient().max_retry_after


# -- the decision, without I/O ----------------------------------------------------------------


def test_never_sent_errors_are_retried_for_every_method() -> None:
    """A ConnectTimeout or PoolTimeout proves nothing was sent: a plain POST is retried."""
    policy = RetryPolicy.transient()
    for error in (
        httpx.ConnectError("refused", request=_request()),
        httpx.ConnectTimeout("slow", request=_request()),
        httpx.PoolTimeout("pool", request=_request()),
    ):
        assert policy.retries_error(error, _decision(error=error))


def test_errors_after_sending_need_idempotency() -> None:
    """A ReadError or a server disconnect is retried only for an idempotent request."""
    policy = RetryPolicy.transient()
    for error in (
        httpx.ReadError("reset", request=_request()),
        httpx.RemoteProtocolError(
            "Server disconnected without sending a response.", request=_request()
        ),
        httpx.RemoteProtocolError(
            "peer closed connection without sending complete message body", request=_request()
        ),
    ):
        assert not policy.retries_error(error, _decision(error=error))
        assert policy.retries_error(error, _decision("GET", idempotent=True, error=error))


def test_malformed_response_is_not_a_transient_failure() -> None:
    """A protocol error other than a disconnect (a malformed response) is not retried."""
    policy = RetryPolicy.transient()
    error = httpx.RemoteProtocolError("illegal status line: b'garbage'", request=_request())
    assert not policy.retries_error(error, _decision("GET", idempotent=True, error=error))


def test_reused_disconnect_flag_is_for_idempotent_requests_only() -> None:
    """retry_reused_disconnects retries a reused-connection disconnect, idempotent only."""
    policy = RetryPolicy(retry_reused_disconnects=True)
    error = httpx.RemoteProtocolError("Server disconnected", request=_request())
    assert not policy.retries_error(error, _decision("GET", idempotent=True, error=error))
    assert policy.retries_error(
        error, _decision("GET", idempotent=True, error=error), reused_disconnect=True
    )
    assert not policy.retries_error(
        error, _decision("POST", idempotent=False, error=error), reused_disconnect=True
    )


def test_tls_failure_is_never_retried_even_if_the_predicate_says_so() -> None:
    """A certificate verification failure is never retried, whatever the predicate returns."""
    try:
        try:
            raise ssl.SSLCertVerificationError(1, "certificate verify failed")
        except ssl.SSLCertVerificationError as cause:
            raise httpx.ConnectError("tls", request=_request()) from cause
    except httpx.ConnectError as caught:
        error = caught
    policy = RetryPolicy(predicate=lambda decision: True)
    assert not policy.retries_error(error, _decision(error=error))


def test_status_retry_needs_idempotency() -> None:
    """A retryable status is retried for an idempotent request only."""
    policy = RetryPolicy.transient()
    response = httpx.Response(503, request=_request())
    assert policy.retries_response(response, _decision("GET", idempotent=True, response=response))
    assert not policy.retries_response(response, _decision(response=response))
    ok = httpx.Response(500, request=_request())
    assert not policy.retries_response(ok, _decision("GET", idempotent=True, response=ok))


def _retrying(
    policy: RetryPolicy,
    method: str = "POST",
    *,
    context: RequestContext | None = None,
    client_headers: dict[str, str] | None = None,
    **options: Any,
) -> Retrying:
    return Retrying(
        policy,
        method,
        "http://127.0.0.1/",
        options,
        context or RequestContext(),
        httpx.Headers(client_headers or {}),
    )


@pytest.mark.parametrize(
    ("method", "options", "context", "client_headers", "expected"),
    [
        pytest.param("GET", {}, None, None, True, id="GET"),
        pytest.param("DELETE", {}, None, None, True, id="DELETE"),
        pytest.param("POST", {}, None, None, False, id="POST"),
        pytest.param("PATCH", {}, None, None, False, id="PATCH"),
        pytest.param(
            "POST", {"headers": {"Idempotency-Key": "k"}}, None, None, True, id="POST-key-dict"
        ),
        pytest.param(
            "PATCH",
            {"headers": [("idempotency-key", "k")]},
            None,
            None,
            True,
            id="PATCH-key-pairs",
        ),
        pytest.param("POST", {}, None, {"Idempotency-Key": "k"}, True, id="POST-client-key"),
        pytest.param("POST", {}, RequestContext(idempotent=True), None, True, id="ctx-True"),
        pytest.param("GET", {}, RequestContext(idempotent=False), None, False, id="ctx-False"),
        pytest.param(
            "POST",
            {"headers": {"Idempotency-Key": "k"}},
            RequestContext(idempotent=False),
            None,
            False,
            id="ctx-False-beats-key",
        ),
    ],
)
def test_idempotency_rule(
    method: str,
    options: dict[str, Any],
    context: RequestContext | None,
    client_headers: dict[str, str] | None,
    expected: bool,
) -> None:
    """Idempotent: by method, by Idempotency-Key header, or as the context says (it wins)."""
    retrying = _retrying(
        TRANSIENT, method, context=context, client_headers=client_headers, **options
    )
    assert expected == retrying.idempotent


@pytest.mark.parametrize(
    ("make_content", "expected"),
    [
        pytest.param(lambda: None, True, id="none"),
        pytest.param(lambda: b"body", True, id="bytes"),
        pytest.param(lambda: "body", True, id="str"),
        pytest.param(lambda: bytearray(b"body"), True, id="bytearray"),
        pytest.param(lambda: iter([b"a", b"b"]), False, id="iterator"),
        pytest.param(lambda: _chunks([b"a"]), False, id="async-generator"),
    ],
)
def test_replayable_bodies(make_content: Callable[[], object], expected: bool) -> None:
    """A bytes or str body can be resent; an iterator or async generator cannot."""
    retrying = _retrying(TRANSIENT, content=make_content())
    assert expected == retrying.replayable


def test_streaming_body_rule() -> None:
    """A one-shot body is retried after a never-sent error only, and never on a status."""
    retrying = _retrying(TRANSIENT, "PUT", content=iter([b"a"]))
    context = RequestContext(max_retries=3)
    refused = httpx.ConnectError("refused", request=_request())
    dropped = httpx.RemoteProtocolError(
        "Server disconnected without sending a response.", request=_request()
    )
    assert (True, "") == retrying.retries_error(refused, context, None)
    assert (False, "the streaming body cannot be sent again") == retrying.retries_error(
        dropped, context, None
    )
    response = httpx.Response(503, request=_request())
    assert not retrying.retries_response(response, context)


@pytest.mark.parametrize("jitter", ["full", "equal", "none", "decorrelated"])
@PROPERTY
@given(
    base=st.floats(min_value=0.0, max_value=10.0),
    extra=st.floats(min_value=0.0, max_value=100.0),
    factor=st.floats(min_value=1.0, max_value=10.0),
    retries=st.integers(min_value=1, max_value=12),
)
def test_backoff_delays_stay_within_their_bounds(
    jitter: str, base: float, extra: float, factor: float, retries: int
) -> None:
    """Every Backoff delay lies in its jitter's range under the ceiling, never above the cap."""
    cap = base + extra
    backoff = Backoff(base=base, factor=factor, cap=cap, jitter=jitter)
    retrying = _retrying(RetryPolicy(backoff=backoff), "GET")
    context = RequestContext(max_retries=retries)
    previous = 0.0
    slack = 1e-9
    for n in range(1, retries + 1):
        delay = retrying.next_delay(context)
        ceiling = 0.0 if base == 0.0 else min(cap, base * factor ** (n - 1))
        assert math.isfinite(delay)
        assert 0.0 <= delay <= cap + slack
        if jitter == "full":
            assert delay <= ceiling + slack
        elif jitter == "equal":
            assert ceiling / 2 - slack <= delay <= ceiling + slack
        elif jitter == "none":
            assert ceiling == delay
        else:
            assert base - slack <= delay <= min(cap, max(base, 3.0 * previous)) + slack
        previous = delay
        if n < retries:
            context = context.next_attempt()


# -- statuses over loopback -------------------------------------------------------------------


async def test_default_client_does_not_retry_503(server: LocalServer) -> None:
    """Without a policy, a 503 is returned after one attempt, as before."""
    with anyio.fail_after(15):
        async with AsyncResilientClient() as client:
            handle = await client.get(_sequence(server, "k", "503,200"))
            result = await handle.wait_result()
    assert (RequestStatus.SUCCESS, 503, 1) == (result.status, result.status_code, result.attempts)
    assert 1 == server.sequence_hits["k"]


async def test_transient_retries_a_status_sequence(server: LocalServer) -> None:
    """503, 503, 200 under the transient preset: three attempts and the 200."""
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=TRANSIENT) as client:
            handle = await client.get(_sequence(server, "k", "503,503,200"))
            result = await handle.wait_result()
    assert (RequestStatus.SUCCESS, 200, 3) == (result.status, result.status_code, result.attempts)
    assert 3 == server.sequence_hits["k"]


@pytest.mark.parametrize("status", [429, 502, 504])
async def test_each_transient_status_is_retried(server: LocalServer, status: int) -> None:
    """429, 502 and 504 are retried by the preset like 503."""
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=TRANSIENT) as client:
            response = await (await client.get(_sequence(server, "k", f"{status},200")))
    assert 200 == response.status_code
    assert 2 == server.sequence_hits["k"]


async def test_status_forever_returns_the_last_response(server: LocalServer) -> None:
    """A 503 that never ends: max_retries + 1 attempts, then the last 503 as a success."""
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=TRANSIENT) as client:
            handle = await client.get(
                _sequence(server, "k", "503"), context=RequestContext(max_retries=3)
            )
            result = await handle.wait_result()
    assert (RequestStatus.SUCCESS, 503, 4) == (result.status, result.status_code, result.attempts)
    assert 4 == server.sequence_hits["k"]
    assert result.response is not None
    assert {"key": "k", "hit": 4, "status": 503} == result.response.json()


@pytest.mark.parametrize("status", [500, 501, 404, 408])
async def test_status_outside_the_preset_is_not_retried(server: LocalServer, status: int) -> None:
    """A status the preset does not list (500 among them) ends the request at once."""
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=TRANSIENT) as client:
            handle = await client.get(_sequence(server, "k", f"{status},200"))
            result = await handle.wait_result()
    assert (status, 1) == (result.status_code, result.attempts)
    assert 1 == server.sequence_hits["k"]


async def test_post_status_is_retried_only_when_marked(server: LocalServer) -> None:
    """A 503 on a plain POST is returned; keyed or context-marked, the POST is retried."""
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=TRANSIENT) as client:
            plain = await client.post(_sequence(server, "plain", "503,200"), content=b"x")
            keyed = await client.post(
                _sequence(server, "keyed", "503,200"),
                content=b"x",
                headers={"Idempotency-Key": "order-1"},
            )
            marked = await client.post(
                _sequence(server, "marked", "503,200"),
                content=b"x",
                context=RequestContext(idempotent=True),
            )
            results = [await handle.wait_result() for handle in (plain, keyed, marked)]
    assert [(503, 1), (200, 2), (200, 2)] == [(r.status_code, r.attempts) for r in results]
    assert {"plain": 1, "keyed": 2, "marked": 2} == dict(server.sequence_hits)


async def test_context_can_forbid_retrying_a_get(server: LocalServer) -> None:
    """RequestContext(idempotent=False) stops a GET from being resent after a 503 or a drop."""
    context = RequestContext(idempotent=False, max_retries=3)
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=TRANSIENT) as client:
            status = await (await client.get(_sequence(server, "k", "503,200"), context=context))
            dropped = await client.get(server.url_for("/drop"), context=context)
            result = await dropped.wait_result()
    assert 503 == status.status_code
    assert 1 == server.sequence_hits["k"]
    assert (1, 1) == (result.attempts, server.hits["/drop"])
    assert isinstance(result.error, httpx.RemoteProtocolError)


async def test_policy_idempotent_methods_can_include_post(server: LocalServer) -> None:
    """A policy that lists POST (in any case) as idempotent resends a POST after a drop."""
    policy = dataclasses.replace(TRANSIENT, idempotent_methods=frozenset({"post"}))
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=policy) as client:
            handle = await client.post(
                server.url_for("/drop"), content=b"x", context=RequestContext(max_retries=2)
            )
            result = await handle.wait_result()
    assert (3, 3) == (result.attempts, server.hits["/drop"])


async def test_per_request_policy_overrides_the_clients(server: LocalServer) -> None:
    """A request's own retry_policy replaces the client's, both ways."""
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=TRANSIENT) as client:
            strict = await client.get(
                _sequence(server, "strict", "503,200"), retry_policy=RetryPolicy()
            )
            strict_result = await strict.wait_result()
        async with AsyncResilientClient() as client:
            lenient = await client.get(
                _sequence(server, "lenient", "503,200"), retry_policy=TRANSIENT
            )
            lenient_result = await lenient.wait_result()
    assert (503, 1) == (strict_result.status_code, strict_result.attempts)
    assert (200, 2) == (lenient_result.status_code, lenient_result.attempts)


async def test_per_request_policy_type_is_checked(server: LocalServer) -> None:
    """A retry_policy that is not a RetryPolicy is a TypeError at submission."""
    with anyio.fail_after(15):
        async with AsyncResilientClient() as client:
            with pytest.raises(TypeError, match="retry_policy"):
                await client.get(server.url, retry_policy="transient")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="retry_policy"):
        AsyncResilientClient(retry_policy=object())  # type: ignore[arg-type]


async def test_context_max_retries_still_wins(server: LocalServer) -> None:
    """The context's max_retries bounds a policy that would retry forever."""
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=TRANSIENT) as client:
            zero = await client.get(
                _sequence(server, "zero", "503"), context=RequestContext(max_retries=0)
            )
            one = await client.get(
                _sequence(server, "one", "503"), context=RequestContext(max_retries=1)
            )
            results = [await zero.wait_result(), await one.wait_result()]
    assert [1, 2] == [r.attempts for r in results]
    assert {"zero": 1, "one": 2} == dict(server.sequence_hits)


# -- idempotency over loopback ----------------------------------------------------------------


@pytest.mark.parametrize("policy", [RetryPolicy(), TRANSIENT], ids=["default", "transient"])
async def test_post_is_retried_after_a_refused_connection(
    refused_url: str, policy: RetryPolicy
) -> None:
    """A refused connection proves the POST never left: it is retried under any policy."""
    context = RequestContext(max_retries=2, base_delay=0.001, max_delay=0.002)
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=policy) as client:
            handle = await client.post(refused_url, content=b"x", context=context)
            result = await handle.wait_result()
    assert (RequestStatus.ERROR, 3) == (result.status, result.attempts)
    assert isinstance(result.error, httpx.ConnectError)


async def test_post_reaches_a_recovering_server_exactly_once(server: LocalServer) -> None:
    """A POST refused while the server is down is resent, and reaches it exactly once."""
    await server.stop_listening()
    context = RequestContext(max_retries=100, base_delay=0.005, max_delay=0.01)
    with anyio.fail_after(15):
        async with (
            AsyncResilientClient() as client,
            client.events(EventType.RETRY) as stream,
        ):
            handle = await client.post(server.url_for("/once"), content=b"payload", context=context)
            async for _event in stream:
                break
            await server.start_listening()
            result = await handle.wait_result()
    assert RequestStatus.SUCCESS == result.status
    assert result.response is not None
    assert ("POST", "payload") == (result.response.json()["method"], result.response.json()["body"])
    assert 1 == server.hits["/once"]
    assert result.attempts >= 2
    assert "connect" == result.history[0].phase


async def test_post_is_retried_after_a_pool_timeout(server: LocalServer) -> None:
    """A PoolTimeout proves the POST never left: the preset resends it once a slot frees."""
    limits = httpx.Limits(max_connections=1)
    timeout = httpx.Timeout(5.0, pool=0.05)
    context = RequestContext(max_retries=200)
    with anyio.fail_after(15):
        async with (
            httpx.AsyncClient(limits=limits, timeout=timeout) as http_client,
            AsyncResilientClient(http_client=http_client, retry_policy=TRANSIENT) as client,
        ):
            slow = await client.get(server.url_for("/delay/0.3"), context=RequestContext())
            for _ in range(500):
                if 1 == server.hits["/delay/0.3"]:
                    break
                await anyio.sleep(0.01)
            handle = await client.post(server.url_for("/pooled"), content=b"x", context=context)
            result = await handle.wait_result()
            await slow.wait_result()
    assert (RequestStatus.SUCCESS, 200) == (result.status, result.status_code)
    assert result.attempts >= 2
    assert ("connect", "PoolTimeout") == (result.history[0].phase, result.history[0].error)
    assert 1 == server.hits["/pooled"]


@pytest.mark.parametrize(
    ("path", "error_type"),
    [("/reset", httpx.ReadError), ("/drop", httpx.RemoteProtocolError)],
)
@pytest.mark.parametrize(
    "policy",
    [
        TRANSIENT,
        RetryPolicy(retry_on=(httpx.ReadError, httpx.RemoteProtocolError), backoff=FAST),
    ],
    ids=["transient", "read-errors"],
)
async def test_post_is_never_retried_after_it_may_have_been_sent(
    server: LocalServer, path: str, error_type: type[Exception], policy: RetryPolicy
) -> None:
    """A plain POST cut off after sending (RST or FIN) reaches the server exactly once."""
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=policy) as client:
            handle = await client.post(
                server.url_for(path), content=b"x", context=RequestContext(max_retries=3)
            )
            result = await handle.wait_result()
    assert (RequestStatus.ERROR, 1) == (result.status, result.attempts)
    assert isinstance(result.error, error_type)
    assert 1 == server.hits[path]


@pytest.mark.parametrize("path", ["/reset", "/drop"])
@pytest.mark.parametrize("marking", ["header", "context", "client-header"])
async def test_marked_post_is_retried_after_a_read_failure(
    server: LocalServer, path: str, marking: str
) -> None:
    """A POST marked idempotent (key header or context flag) is resent after a drop or reset."""
    headers: dict[str, str] = {"Idempotency-Key": "pay-7"} if marking == "header" else {}
    client_headers = {"Idempotency-Key": "pay-7"} if marking == "client-header" else None
    context = RequestContext(max_retries=2, idempotent=True if marking == "context" else None)
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=TRANSIENT, headers=client_headers) as client:
            handle = await client.post(
                server.url_for(path), content=b"x", headers=headers, context=context
            )
            result = await handle.wait_result()
    assert (RequestStatus.ERROR, 3) == (result.status, result.attempts)
    assert 3 == server.hits[path]


@pytest.mark.parametrize("path", ["/drop", "/reset"])
async def test_get_is_retried_after_a_drop_under_the_preset(server: LocalServer, path: str) -> None:
    """A GET cut off without a response is retried by the transient preset."""
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=TRANSIENT) as client:
            handle = await client.get(server.url_for(path), context=RequestContext(max_retries=2))
            result = await handle.wait_result()
    assert (RequestStatus.ERROR, 3) == (result.status, result.attempts)
    assert 3 == server.hits[path]


async def test_default_policy_does_not_retry_a_get_after_a_drop(server: LocalServer) -> None:
    """The default policy never resends once the request may have reached the server."""
    with anyio.fail_after(15):
        async with AsyncResilientClient() as client:
            handle = await client.get(server.url_for("/drop"), context=RequestContext())
            result = await handle.wait_result()
    assert (1, 1) == (result.attempts, server.hits["/drop"])


async def test_truncated_body_is_retried_for_a_get(server: LocalServer) -> None:
    """A body cut short fails in the body phase and is retried for a GET under the preset."""
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=TRANSIENT) as client:
            handle = await client.get(
                server.url_for("/truncate/10"), context=RequestContext(max_retries=1)
            )
            result = await handle.wait_result()
    assert 2 == result.attempts
    assert [("body", "RemoteProtocolError")] * 2 == [(a.phase, a.error) for a in result.history]


# -- the predicate hook -----------------------------------------------------------------------


async def test_predicate_can_force_a_retry(server: LocalServer) -> None:
    """A predicate returning True resends even a plain POST after a drop."""
    seen: list[RetryDecisionInput] = []

    def force(decision: RetryDecisionInput) -> bool | None:
        seen.append(decision)
        return True if isinstance(decision.error, httpx.RemoteProtocolError) else None

    policy = RetryPolicy(predicate=force, backoff=FAST)
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=policy) as client:
            handle = await client.post(
                server.url_for("/drop"), content=b"x", context=RequestContext(max_retries=2)
            )
            result = await handle.wait_result()
    assert (3, 3) == (result.attempts, server.hits["/drop"])
    assert [1, 2] == [d.attempt for d in seen]
    assert {("POST", False, None)} == {(d.method, d.idempotent, d.response) for d in seen}
    assert all(d.url == server.url_for("/drop") for d in seen)


async def test_predicate_can_forbid_a_retry(server: LocalServer, refused_url: str) -> None:
    """A predicate returning False stops a retry the rules would allow (statuses, refusals)."""
    seen: list[RetryDecisionInput] = []

    def forbid(decision: RetryDecisionInput) -> bool | None:
        seen.append(decision)
        return False

    policy = RetryPolicy.transient(backoff=FAST)
    policy = dataclasses.replace(policy, predicate=forbid)
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=policy) as client:
            status = await client.get(_sequence(server, "k", "503,200"))
            refused = await client.get(refused_url)
            results = [await status.wait_result(), await refused.wait_result()]
    assert [1, 1] == [r.attempts for r in results]
    assert 503 == results[0].status_code
    assert isinstance(results[1].error, httpx.ConnectError)
    assert 2 == len(seen)
    response_decision = next(d for d in seen if d.response is not None)
    assert (503, None, True) == (
        response_decision.response.status_code if response_decision.response else None,
        response_decision.error,
        response_decision.idempotent,
    )


async def test_predicate_returning_none_defers_to_the_rules(server: LocalServer) -> None:
    """A predicate returning None leaves the decision to the policy's rules."""
    policy = dataclasses.replace(TRANSIENT, predicate=lambda decision: None)
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=policy) as client:
            get = await client.get(_sequence(server, "get", "503,200"))
            post = await client.post(_sequence(server, "post", "503,200"), content=b"x")
            results = [await get.wait_result(), await post.wait_result()]
    assert [(200, 2), (503, 1)] == [(r.status_code, r.attempts) for r in results]


async def test_raising_predicate_fails_only_its_own_request(server: LocalServer) -> None:
    """A predicate that raises ends its own request with that error; others go on."""

    def broken(decision: RetryDecisionInput) -> bool | None:
        raise RuntimeError("predicate bug")

    policy = RetryPolicy(predicate=broken, backoff=FAST)
    with anyio.fail_after(15):
        async with AsyncResilientClient() as client:
            other = await client.get(server.url_for("/delay/0.2"))
            handle = await client.get(_sequence(server, "k", "503"), retry_policy=policy)
            result = await handle.wait_result()
            other_result = await other.wait_result()
    assert RequestStatus.ERROR == result.status
    assert isinstance(result.error, RuntimeError)
    assert RequestStatus.SUCCESS == other_result.status


# -- attempt history --------------------------------------------------------------------------


async def test_history_of_a_status_sequence(server: LocalServer) -> None:
    """History numbers the attempts, keeps statuses, and its sleeps are the RETRY delays."""
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=TRANSIENT) as client:
            retries = _record(client, EventType.RETRY)
            handle = await client.get(_sequence(server, "k", "503,502,200"))
            result = await handle.wait_result()
    history = result.history
    assert [1, 2, 3] == [a.number for a in history]
    assert [503, 502, 200] == [a.status_code for a in history]
    assert [None] * 3 == [a.phase for a in history]
    assert [None] * 3 == [a.error for a in history]
    delays = [e.data["delay"] for e in sorted(retries, key=lambda e: e.data["attempt"])]
    assert [2, 3] == sorted(e.data["attempt"] for e in retries)
    assert [*delays, 0.0] == [a.sleep for a in history]
    assert [503, 502] == [e.data["status_code"] for e in retries]
    assert all(a.duration >= 0.0 for a in history)
    assert [a.start for a in history] == sorted(a.start for a in history)
    assert len(history) == result.attempts


@pytest.mark.parametrize("policy", [RetryPolicy(), TRANSIENT], ids=["default", "transient"])
async def test_history_of_refused_connections(refused_url: str, policy: RetryPolicy) -> None:
    """Refused attempts are recorded in the connect phase as ConnectError, with no status."""
    context = RequestContext(max_retries=2, base_delay=0.001, max_delay=0.002)
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=policy) as client:
            retries = _record(client, EventType.RETRY)
            handle = await client.get(refused_url, context=context)
            result = await handle.wait_result()
    assert [(n, "connect", "ConnectError", None) for n in (1, 2, 3)] == [
        (a.number, a.phase, a.error, a.status_code) for a in result.history
    ]
    delays = [e.data["delay"] for e in sorted(retries, key=lambda e: e.data["attempt"])]
    assert [*delays, 0.0] == [a.sleep for a in result.history]
    assert all("retry_after" not in e.data for e in retries)


@pytest.mark.parametrize(
    ("path", "error"), [("/drop", "RemoteProtocolError"), ("/reset", "ReadError")]
)
async def test_history_of_read_failures(server: LocalServer, path: str, error: str) -> None:
    """A drop or reset is recorded in a response-side phase with its exception's name."""
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=TRANSIENT) as client:
            handle = await client.get(server.url_for(path), context=RequestContext(max_retries=1))
            result = await handle.wait_result()
    assert [(1, error, None), (2, error, None)] == [
        (a.number, a.error, a.status_code) for a in result.history
    ]
    assert all(a.phase in RESPONSE_PHASES for a in result.history)
    assert 0.0 == result.history[-1].sleep


@pytest.mark.parametrize("path", ["/drop", "/reset"])
async def test_failure_before_headers_is_in_the_response_headers_phase(
    server: LocalServer, path: str
) -> None:
    """No response byte arrived: the attempt failed in the response_headers phase."""
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=TRANSIENT) as client:
            handle = await client.get(server.url_for(path), context=RequestContext(max_retries=0))
            result = await handle.wait_result()
    assert ["response_headers"] == [a.phase for a in result.history]


async def test_attempt_trace_keeps_the_phase_that_failed() -> None:
    """Replaying httpcore's steps of a reused-connection disconnect keeps response_headers."""
    trace = AttemptTrace(None)
    for step in (
        "http11.send_request_headers.started",
        "http11.send_request_headers.complete",
        "http11.send_request_body.started",
        "http11.send_request_body.complete",
        "http11.receive_response_headers.started",
        "http11.receive_response_headers.failed",
        "http11.response_closed.started",
        "http11.response_closed.complete",
    ):
        await trace(step, {})
    error = httpx.RemoteProtocolError("Server disconnected without sending a response.")
    assert ("response_headers", True) == (trace.phase, trace.is_reused_disconnect(error))


async def test_reused_disconnect_is_not_retried_on_a_new_connection(server: LocalServer) -> None:
    """retry_reused_disconnects does not cover a disconnect on a fresh connection."""
    policy = RetryPolicy(retry_reused_disconnects=True, backoff=FAST)
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=policy) as client:
            handle = await client.get(server.url_for("/drop"), context=RequestContext())
            result = await handle.wait_result()
    assert (1, 1) == (result.attempts, server.hits["/drop"])


async def test_reused_disconnect_of_a_plain_post_is_not_retried(server: LocalServer) -> None:
    """A plain POST dropped on a reused keep-alive connection is not resent."""
    policy = RetryPolicy(retry_reused_disconnects=True, backoff=FAST)
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=policy) as client:
            await (await client.get(server.url_for("/warm")))
            handle = await client.post(server.url_for("/drop"), content=b"x")
            result = await handle.wait_result()
    assert (1, 1, 1) == (result.attempts, server.hits["/drop"], server.connections)


async def test_reused_disconnect_of_a_get_is_retried_once(server: LocalServer) -> None:
    """A GET dropped on a reused keep-alive connection is resent (on a new connection)."""
    policy = RetryPolicy(retry_reused_disconnects=True, backoff=FAST)
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=policy) as client:
            await (await client.get(server.url_for("/warm")))
            handle = await client.get(server.url_for("/drop"), context=RequestContext())
            result = await handle.wait_result()
    # The retry opens a new connection: a disconnect there is not a reused one, so it stops.
    assert (2, 2) == (result.attempts, server.hits["/drop"])


# -- clean retries ----------------------------------------------------------------------------


@pytest.mark.parametrize("max_response_bytes", [None, 100_000], ids=["read", "streamed-capped"])
async def test_retried_responses_are_closed(
    server: LocalServer, max_response_bytes: int | None
) -> None:
    """Each retried response is closed and its connection reused by the next attempt."""
    responses: list[httpx.Response] = []

    async def keep(response: httpx.Response) -> None:
        responses.append(response)

    with anyio.fail_after(15):
        async with AsyncResilientClient(
            retry_policy=TRANSIENT,
            limits=httpx.Limits(max_connections=1),
            event_hooks={"response": [keep]},
            max_response_bytes=max_response_bytes,
        ) as client:
            first = await client.get(_sequence(server, "k", "503,503,200"))
            result = await first.wait_result()
            follow_up = await (await client.get(server.url_for("/after")))
    assert (200, 3) == (result.status_code, result.attempts)
    assert 200 == follow_up.status_code
    assert [503, 503, 200, 200] == [r.status_code for r in responses]
    assert all(r.is_closed for r in responses)
    assert 1 == server.connections


async def test_streaming_body_is_not_retried_after_a_drop(server: LocalServer) -> None:
    """A keyed POST with an async-generator body is not resent once it may have been sent."""
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=TRANSIENT) as client:
            handle = await client.post(
                server.url_for("/drop"),
                content=_chunks([b"a", b"b"]),
                headers={"Idempotency-Key": "k"},
                context=RequestContext(max_retries=3),
            )
            result = await handle.wait_result()
    assert (RequestStatus.ERROR, 1) == (result.status, result.attempts)
    assert isinstance(result.error, httpx.RemoteProtocolError)
    assert 1 == server.hits["/drop"]


async def test_streaming_body_is_not_retried_on_a_status(server: LocalServer) -> None:
    """A keyed POST with a streaming body gets its 503 back: the body is spent."""
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=TRANSIENT) as client:
            handle = await client.put(
                _sequence(server, "k", "503,200"),
                content=_chunks([b"a", b"b"]),
                context=RequestContext(max_retries=3),
            )
            result = await handle.wait_result()
    assert (503, 1) == (result.status_code, result.attempts)
    assert 1 == server.sequence_hits["k"]


async def test_streaming_body_is_retried_after_a_refusal(server: LocalServer) -> None:
    """A refused connection never read the body: the stream is sent whole on the retry."""
    await server.stop_listening()
    context = RequestContext(max_retries=100, base_delay=0.005, max_delay=0.01)
    with anyio.fail_after(15):
        async with (
            AsyncResilientClient(retry_policy=TRANSIENT) as client,
            client.events(EventType.RETRY) as stream,
        ):
            handle = await client.post(
                server.url_for("/upload"),
                content=_chunks([b"part-1;", b"part-2;", b"part-3"]),
                context=context,
            )
            async for _event in stream:
                break
            await server.start_listening()
            result = await handle.wait_result()
    assert result.response is not None
    assert (200, "part-1;part-2;part-3") == (
        result.response.status_code,
        result.response.json()["body"],
    )
    assert 1 == server.hits["/upload"]
    assert all(a.phase == "connect" for a in result.history[:-1])


# -- transport retries warning ----------------------------------------------------------------


async def test_transport_that_retries_warns() -> None:
    """Wrapping AsyncHTTPTransport(retries=2) warns that attempts multiply, at the caller."""
    with pytest.warns(TransportRetriesWarning, match="retries=2") as record:
        client = AsyncResilientClient(transport=httpx.AsyncHTTPTransport(retries=2))
    await client.close()
    assert 1 == len(record)
    assert __file__ == record[0].filename


async def test_no_transport_warning_by_default() -> None:
    """The default transport, or one without retries, warns nothing."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clients = [
            AsyncResilientClient(),
            AsyncResilientClient(transport=httpx.AsyncHTTPTransport()),
            AsyncResilientClient(transport=httpx.AsyncHTTPTransport(retries=0)),
        ]
    for client in clients:
        await client.close()


async def test_http_client_whose_transport_retries_warns() -> None:
    """A given http_client whose transport retries warns like a given transport does."""
    http_client = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(retries=2))
    try:
        with pytest.warns(TransportRetriesWarning):
            AsyncResilientClient(http_client=http_client)
    finally:
        await http_client.aclose()


# -- jitter over loopback ---------------------------------------------------------------------


@pytest.mark.parametrize("jitter", ["full", "equal", "none", "decorrelated"])
async def test_backoff_jitter_over_loopback(server: LocalServer, jitter: str) -> None:
    """The RETRY delays of a 503 storm follow the Backoff's jitter within its bounds."""
    base, factor, cap = 0.001, 2.0, 0.006
    policy = RetryPolicy.transient(
        backoff=Backoff(base=base, factor=factor, cap=cap, jitter=jitter)
    )
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=policy) as client:
            retries = _record(client, EventType.RETRY)
            handle = await client.get(
                _sequence(server, "k", "503"), context=RequestContext(max_retries=5)
            )
            result = await handle.wait_result()
    assert 6 == result.attempts
    delays = [e.data["delay"] for e in sorted(retries, key=lambda e: e.data["attempt"])]
    assert 5 == len(delays)
    assert delays == [a.sleep for a in result.history[:-1]]
    slack = 1e-12
    previous = 0.0
    for n, delay in enumerate(delays, start=1):
        ceiling = min(cap, base * factor ** (n - 1))
        if jitter == "full":
            assert 0.0 <= delay <= ceiling
        elif jitter == "equal":
            assert ceiling / 2 <= delay <= ceiling
        elif jitter == "none":
            assert ceiling == delay
        else:
            assert base - slack <= delay <= min(cap, max(base, 3.0 * previous)) + slack
        previous = delay
    if jitter == "decorrelated":
        assert base == delays[0]


async def test_results_are_request_results(server: LocalServer) -> None:
    """A retried request's result is a RequestResult with one record per attempt."""
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=TRANSIENT) as client:
            handle = await client.get(_sequence(server, "k", "429,200"))
            result = await handle.wait_result()
    assert isinstance(result, RequestResult)
    assert 2 == len(result.history)
    assert client.get_result(result.request_id) is result
    assert (2, 1) == (client.stats().attempts, client.stats().retries)
