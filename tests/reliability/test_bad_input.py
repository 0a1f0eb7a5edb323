"""
Reliability: bad user input (RELIABILITY.md, "Bad user input").

A URL or header the client cannot send is refused at the call with a clear error, before
anything is scheduled (``stats().started`` does not move), so it is never retried, and the client
stays usable. A streaming body is resent only when it provably never left (and then in full),
never after it may have been sent. Invalid policies, event buffers and limits are refused at
construction; submitting to a closed client or reusing the id of a request in flight is refused
with the library's own errors.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx
import pytest

from typed_async_client import (
    AsyncResilientClient,
    Backoff,
    ClientClosedError,
    ClientNotOpenError,
    DuplicateRequestIdError,
    EventType,
    RequestContext,
    RequestStatus,
    RetryBudget,
    RetryPolicy,
)
from typed_async_client.testing import LocalServer, instant_retries

from .conftest import EAGER, Observed, refused_at_the_call

pytestmark = pytest.mark.anyio


def _bad(value: object) -> Any:
    """A deliberately ill-typed argument, passed as is."""
    return value


# -- URLs ------------------------------------------------------------------------------------


UNSUPPORTED_SCHEMES: list[str | httpx.URL] = [
    "ftp://127.0.0.1/file",
    "file:///etc/passwd",
    "ws://127.0.0.1/socket",
    "gopher://127.0.0.1:70/",
    " http://127.0.0.1/leading-space",
    httpx.URL("ftp://127.0.0.1/file"),
]

MISSING_SCHEMES = [
    "127.0.0.1:8000/path",
    "//127.0.0.1/path",
    "/relative/path",
    "example.invalid",
    "mailto:someone@example.invalid",
    "",
]

URL_INJECTIONS = [
    "/path\r\nX-Injected: yes",
    "/path\nX-Injected: yes",
    "/path\rX",
    "/path?q=\r\n",
    "/nul\x00byte",
]

HEADER_INJECTIONS: list[Any] = [
    {"X-Note": "a\r\nX-Injected: yes"},
    {"X-Note": "a\nb"},
    {"X-Note": "a\x00b"},
    {"X-Bad\r\nName": "v"},
    [("X-Note", "ok"), ("X-Other", "a\rb")],
    httpx.Headers({"X-Note": "a\r\nb"}),
]


async def test_unsupported_scheme_is_refused_before_scheduling(observed: Observed) -> None:
    """A scheme other than http(s) raises ValueError at the call; nothing is scheduled."""
    with anyio.fail_after(10):
        for url in UNSUPPORTED_SCHEMES:
            await refused_at_the_call(observed, ValueError, "scheme", url)
        results = await observed.check()
    assert [200] * len(UNSUPPORTED_SCHEMES) == [r.status_code for r in results]


async def test_missing_scheme_is_refused_before_scheduling(observed: Observed) -> None:
    """A URL without a scheme (and no base_url) raises ValueError at the call."""
    with anyio.fail_after(10):
        for url in MISSING_SCHEMES:
            await refused_at_the_call(observed, ValueError, "absolute", url)
        await observed.check()


async def test_crlf_in_url_is_refused_before_scheduling(observed: Observed) -> None:
    """CR, LF or NUL anywhere in the URL raises ValueError at the call; nothing reaches a server."""
    with anyio.fail_after(10):
        for suffix in URL_INJECTIONS:
            await refused_at_the_call(
                observed, ValueError, "CR, LF or NUL", observed.server.url + suffix
            )
        await observed.check()
    assert ["/still-usable", "/follow-up"] == list(observed.server.hits)


async def test_crlf_in_a_header_is_refused_before_scheduling(observed: Observed) -> None:
    """A header name or value with CR, LF or NUL raises ValueError at the call."""
    with anyio.fail_after(10):
        for headers in HEADER_INJECTIONS:
            await refused_at_the_call(
                observed,
                ValueError,
                "CR, LF or NUL",
                observed.server.url_for("/h"),
                headers=headers,
            )
        await observed.check()
    assert 0 == observed.server.hits["/h"]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"X-Note": b"a\r\nX-Injected: yes"}, id="bytes-value"),
        pytest.param({b"X-Bad\r\nName": "v"}, id="bytes-name"),
    ],
)
async def test_crlf_in_a_bytes_header_is_refused_before_scheduling(
    observed: Observed, headers: Any
) -> None:
    """Header names and values given as bytes are checked for CR/LF at the call too."""
    with anyio.fail_after(10):
        try:
            await refused_at_the_call(
                observed,
                ValueError,
                "CR, LF or NUL",
                observed.server.url_for("/h"),
                **{"headers": headers},
            )
        finally:
            await observed.check()


def test_crlf_in_a_default_header_is_refused_at_construction() -> None:
    """A client-wide default header with CR/LF is refused when the client is built."""
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        AsyncResilientClient(headers={"X-Note": "a\r\nX-Injected: yes"})


@pytest.mark.parametrize(
    "url", ["http://", "http:///path", "http://:80/path", "http://127.0.0.1:99999/path"]
)
async def test_url_without_a_host_or_with_a_bad_port_isrefused_at_the_call(
    observed: Observed, url: str
) -> None:
    """A URL with no host or an impossible port raises ValueError at the call."""
    with anyio.fail_after(10):
        try:
            await refused_at_the_call(observed, ValueError, "url", url)
        finally:
            await observed.check()


async def test_bad_method_option_and_context_are_refused_before_scheduling(
    observed: Observed,
) -> None:
    """A bad method, an unknown option or a wrong context type is refused at the call."""
    url = observed.server.url_for("/m")
    with anyio.fail_after(10):
        before = observed.client.stats().started
        with pytest.raises(ValueError, match="method"):
            await observed.submit("GET\r\nX: y", url)
        with pytest.raises(ValueError, match="method"):
            await observed.submit("", url)
        with pytest.raises(TypeError, match="unexpected request option"):
            await observed.submit("GET", url, stream=True)
        with pytest.raises(TypeError, match="context"):
            await observed.submit("GET", url, context=_bad({"max_retries": 1}))
        with pytest.raises(TypeError, match="retry_policy"):
            await observed.submit("GET", url, retry_policy=_bad("transient"))
        assert before == observed.client.stats().started
        await observed.submit("GET", url)
        await observed.check()
    assert 1 == observed.server.hits["/m"]


# -- streaming bodies ------------------------------------------------------------------------


def _async_body(parts: list[bytes], pulled: list[int]) -> Callable[[], AsyncIterator[bytes]]:
    async def body() -> AsyncIterator[bytes]:
        for part in parts:
            pulled.append(len(part))
            yield part

    return body


async def test_streaming_body_is_never_resent_after_it_may_have_been_sent(
    observed: Observed,
) -> None:
    """An idempotent POST streaming to /drop under a transient policy is sent exactly once."""
    pulled: list[int] = []
    body = _async_body([b"chunk-1;", b"chunk-2"], pulled)
    with anyio.fail_after(10):
        await observed.submit(
            "POST",
            observed.server.url_for("/drop"),
            content=body(),
            context=RequestContext(max_retries=5, idempotent=True),
            retry_policy=EAGER,
        )
        (result,) = await observed.check()
    assert isinstance(result.error, httpx.RemoteProtocolError)
    assert (RequestStatus.ERROR, 1) == (result.status, result.attempts)
    assert 1 == len([r for r in observed.server.requests if r.path == "/drop"])
    assert [8, 7] == pulled
    assert [] == [e for e in observed.events if e.event_type is EventType.RETRY]


async def test_streaming_body_is_not_resent_even_when_a_predicate_insists(
    observed: Observed,
) -> None:
    """A retry predicate that always says yes cannot resend a consumed streaming body."""
    pulled: list[int] = []
    body = _async_body([b"only-once"], pulled)
    policy = RetryPolicy(retry_on=(Exception,), predicate=lambda decision: True)
    with anyio.fail_after(10), instant_retries():
        await observed.submit(
            "PUT",
            observed.server.url_for("/drop"),
            content=body(),
            context=RequestContext(max_retries=5),
            retry_policy=policy,
        )
        (result,) = await observed.check()
    assert (RequestStatus.ERROR, 1) == (result.status, result.attempts)
    assert 1 == observed.server.hits["/drop"]
    assert [9] == pulled


async def test_streaming_body_is_not_resent_on_a_retryable_status(observed: Observed) -> None:
    """A 503 to an idempotent streaming POST is returned as is rather than resent empty."""
    pulled: list[int] = []
    body = _async_body([b"payload"], pulled)
    with anyio.fail_after(10):
        await observed.submit(
            "POST",
            observed.server.url_for("/sequence/stream?codes=503,200"),
            content=body(),
            headers={"Idempotency-Key": "k-1"},
            context=RequestContext(max_retries=5),
            retry_policy=EAGER,
        )
        (result,) = await observed.check()
    assert (RequestStatus.SUCCESS, 503, 1) == (result.status, result.status_code, result.attempts)
    assert 1 == observed.server.sequence_hits["stream"]
    assert [7] == pulled


async def test_streaming_body_never_sent_is_resent_in_full(observed: Observed) -> None:
    """Refused connections prove the body never left: it is retried, and arrives whole."""
    pulled: list[int] = []
    body = _async_body([b"hello, ", b"world"], pulled)
    server = observed.server
    with anyio.fail_after(15):
        async with observed.client.events(EventType.RETRY) as retries:
            await server.stop_listening()
            handle = await observed.submit(
                "POST",
                server.url_for("/echo"),
                content=body(),
                context=RequestContext(max_retries=100, base_delay=0.01, max_delay=0.02),
                retry_policy=EAGER,
            )
            await retries.receive()  # at least one attempt was refused
            await server.start_listening()
            response = await handle
        (result,) = await observed.check()
    assert result.attempts >= 2
    assert "hello, world" == response.json()["body"]
    assert 1 == server.hits["/echo"]
    assert [7, 5] == pulled


async def test_sync_generator_body_isrefused_at_the_call(observed: Observed) -> None:
    """A sync generator body (unusable by an async client) raises TypeError at the call, unsent."""

    def body() -> Any:
        yield b"sync"

    with anyio.fail_after(10):
        await refused_at_the_call(
            observed, TypeError, "async iterable", observed.server.url_for("/sync"), content=body()
        )
        await observed.check()
    assert 0 == observed.server.hits["/sync"]


# -- invalid policies ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        pytest.param(
            lambda: RequestContext(max_retries=-1), ValueError, "max_retries", id="attempts<0"
        ),
        pytest.param(
            lambda: RequestContext(max_retries=_bad(1.5)),
            TypeError,
            "max_retries",
            id="attempts-float",
        ),
        pytest.param(
            lambda: RequestContext(current_attempt=-1),
            ValueError,
            "current_attempt",
            id="current<0",
        ),
        pytest.param(
            lambda: instant_retries(max_attempts=0).__enter__(),
            ValueError,
            "max_attempts",
            id="max_attempts=0",
        ),
        pytest.param(lambda: Backoff(jitter=_bad(-0.5)), ValueError, "jitter", id="jitter<0"),
        pytest.param(
            lambda: Backoff(jitter="sometimes"), ValueError, "jitter", id="jitter-unknown"
        ),
        pytest.param(
            lambda: Backoff(base=2.0, cap=1.0), ValueError, "base must be <= cap", id="base>cap"
        ),
        pytest.param(lambda: Backoff(factor=0.5), ValueError, "factor", id="factor<1"),
        pytest.param(
            lambda: RequestContext(base_delay=2.0, max_delay=1.0),
            ValueError,
            "base_delay",
            id="ctx-base>max",
        ),
        pytest.param(
            lambda: RequestContext(backoff_factor=0.9),
            ValueError,
            "backoff_factor",
            id="ctx-factor<1",
        ),
        pytest.param(
            lambda: RetryPolicy(retry_on=_bad((httpx.ConnectError, "ReadError"))),
            TypeError,
            "retry_on",
            id="retry_on-str",
        ),
        pytest.param(
            lambda: RetryPolicy(retry_on=_bad((KeyboardInterrupt,))),
            TypeError,
            "retry_on",
            id="retry_on-BaseException",
        ),
        pytest.param(
            lambda: RetryPolicy(retry_on=_bad((ValueError(),))),
            TypeError,
            "retry_on",
            id="retry_on-instance",
        ),
        pytest.param(
            lambda: RetryPolicy(retry_on=_bad((int,))), TypeError, "retry_on", id="retry_on-int"
        ),
        pytest.param(
            lambda: RetryPolicy(retry_statuses=frozenset({700})),
            ValueError,
            "retry_statuses",
            id="status-700",
        ),
        pytest.param(
            lambda: RetryPolicy(predicate=_bad(42)), TypeError, "predicate", id="predicate"
        ),
        pytest.param(
            lambda: RetryPolicy(backoff=_bad(0.5)), TypeError, "backoff", id="backoff-float"
        ),
        pytest.param(lambda: RetryBudget(ratio=-0.1), ValueError, "ratio", id="budget-ratio<0"),
        pytest.param(
            lambda: RetryBudget(max_tokens=0), ValueError, "max_tokens", id="budget-tokens=0"
        ),
        pytest.param(
            lambda: AsyncResilientClient(retry_policy=_bad("transient")),
            TypeError,
            "retry_policy",
            id="client-policy",
        ),
        pytest.param(
            lambda: AsyncResilientClient(max_concurrency=0),
            ValueError,
            "max_concurrency",
            id="concurrency=0",
        ),
        pytest.param(
            lambda: AsyncResilientClient(max_concurrency=-3),
            ValueError,
            "max_concurrency",
            id="concurrency<0",
        ),
    ],
)
def test_invalid_policy_values_are_refused_at_construction(
    build: Callable[[], object], error: type[Exception], match: str
) -> None:
    """Negative attempts or jitter, base > cap, a non-exception in retry_on: refused at once."""
    with pytest.raises(error, match=match):
        build()


# -- event buffers and stores ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "error"),
    [
        pytest.param(math.inf, TypeError, id="inf"),
        pytest.param(-1, ValueError, id="negative"),
        pytest.param(0, ValueError, id="zero"),
        pytest.param(math.nan, TypeError, id="nan"),
        pytest.param(1.5, TypeError, id="float"),
        pytest.param(True, TypeError, id="bool"),
        pytest.param(None, TypeError, id="none"),
    ],
)
def test_bad_client_event_queue_and_result_store_sizes_are_refused(
    value: object, error: type[Exception]
) -> None:
    """event_queue_size and max_results refuse infinite, negative, zero or non-int sizes."""
    with pytest.raises(error, match="event_queue_size"):
        AsyncResilientClient(event_queue_size=_bad(value))
    with pytest.raises(error, match="max_results"):
        AsyncResilientClient(max_results=_bad(value))


@pytest.mark.parametrize(
    ("value", "error"),
    [
        pytest.param(math.inf, TypeError, id="inf"),
        pytest.param(-1, ValueError, id="negative"),
        pytest.param(0, ValueError, id="zero"),
        pytest.param(2.5, TypeError, id="float"),
        pytest.param(False, TypeError, id="bool"),
    ],
)
async def test_bad_subscription_buffer_sizes_are_refused(
    observed: Observed, value: object, error: type[Exception]
) -> None:
    """client.events(buffer=...) refuses infinite, negative, zero or non-int sizes at the call."""
    with anyio.fail_after(10):
        with pytest.raises(error, match="buffer"):
            observed.client.events(buffer=_bad(value))
        with pytest.raises(ValueError, match="overflow"):
            observed.client.events(overflow=_bad("grow"))
        await observed.submit("GET", observed.server.url_for("/after"))
        await observed.check()


# -- lifecycle misuse ------------------------------------------------------------------------


async def test_submitting_before_open_and_after_close_is_refused(server: LocalServer) -> None:
    """Submitting to an unopened or closed client raises its state error; results stay."""
    client = AsyncResilientClient()
    with anyio.fail_after(10):
        with pytest.raises(ClientNotOpenError):
            await client.get(server.url_for("/early"))
        async with client:
            handle = await client.get(server.url_for("/in-time"))
        with pytest.raises(ClientClosedError):
            await client.get(server.url_for("/late"))
        with pytest.raises(ClientClosedError):
            async with client.batch():
                pass
    assert RequestStatus.SUCCESS == handle.result.status  # type: ignore[union-attr]
    assert handle.result is client.get_result(handle.request_id)
    assert 1 == client.stats().started
    assert 0 == server.hits["/early"] + server.hits["/late"]


async def test_a_submitter_waiting_for_a_slot_when_the_client_closes_is_refused(
    server: LocalServer,
) -> None:
    """A submission still waiting for max_concurrency when close() starts gets ClientClosedError."""
    client = AsyncResilientClient(max_concurrency=1)
    refused: list[BaseException] = []

    async def late_submitter() -> None:
        try:
            await client.get(server.url_for("/late"))
        except ClientClosedError as exc:
            refused.append(exc)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await client.open()
            try:
                first = await client.get(server.url_for("/delay/0.2"))
                tg.start_soon(late_submitter)
                for _ in range(100):
                    if client.stats().waiting == 1:
                        break
                    await anyio.sleep(0.01)
                assert 1 == client.stats().waiting
            finally:
                await client.close()
    assert 1 == len(refused)
    assert RequestStatus.SUCCESS == first.result.status  # type: ignore[union-attr]
    assert (1, 0) == (client.stats().started, server.hits["/late"])


async def test_a_second_request_with_an_id_in_flight_is_refused(observed: Observed) -> None:
    """Reusing the id of a request in flight raises DuplicateRequestIdError; the first goes on."""
    context = RequestContext(request_id="twin")
    with anyio.fail_after(10):
        first = await observed.submit("GET", observed.server.url_for("/delay/0.2"), context=context)
        before = observed.client.stats().started
        with pytest.raises(DuplicateRequestIdError, match="twin") as excinfo:
            await observed.submit("GET", observed.server.url_for("/twin"), context=context)
        assert isinstance(excinfo.value, ValueError)
        assert "twin" == excinfo.value.request_id
        assert before == observed.client.stats().started
        (result,) = await observed.check()
    assert result is first.result
    assert RequestStatus.SUCCESS == result.status
    assert 0 == observed.server.hits["/twin"]


async def test_an_id_waiting_for_admission_is_refused_once_its_twin_is_in_flight(
    server: LocalServer,
) -> None:
    """Two waiting submissions share an id: the second is refused once the first is admitted."""
    client = AsyncResilientClient(max_concurrency=2)
    outcomes: list[str] = []

    async def submit(path: str) -> None:
        try:
            await client.get(server.url_for(path), context=RequestContext(request_id="twin"))
            outcomes.append(f"{path} admitted")
        except DuplicateRequestIdError:
            outcomes.append(f"{path} refused")

    with anyio.fail_after(10):
        async with client, anyio.create_task_group() as tg:
            blockers = [
                await client.get(server.url_for("/delay/0.1")),
                await client.get(server.url_for("/delay/0.2")),
            ]
            # Both pass the call's check (no "twin" in flight yet), then wait for a slot.
            for count, path in enumerate(["/delay/0.5", "/second-twin"], start=1):
                tg.start_soon(submit, path)
                for _ in range(100):
                    if client.stats().waiting == count:
                        break
                    await anyio.sleep(0.01)
                assert count == client.stats().waiting
            for blocker in blockers:
                await blocker.wait_result()
    assert ["/delay/0.5 admitted", "/second-twin refused"] == outcomes
    assert 0 == server.hits["/second-twin"]
    assert (3, 3) == (client.stats().started, client.stats().succeeded)
