"""
Server misbehaviour (RELIABILITY.md, "Server misbehaviour"): malformed responses, decompression
bombs and endless bodies, hostile ``Retry-After`` values, a 503/429 storm under a retry budget,
and a redirect loop.

Each case runs through an observed client and ends with ``await observed.check(...)``. The
malformed responses that ``LocalServer`` has no route for come from the raw server of
``test_network_faults``. httpx raised the same error types on asyncio and trio in every case
here; the one backend difference is trio's ``ResourceWarning`` for the async generators a
capped read used to abandon (httpx issue #3686; the client now drains them).
"""

from __future__ import annotations

import datetime
import email.utils
import functools
import gc
import gzip
import warnings
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

import anyio
import anyio.lowlevel
import httpx
import pytest
from anyio.abc import SocketStream

from typed_async_client import (
    EventType,
    RequestStatus,
    ResponseTooLargeError,
    RetryAfterTooLongError,
    RetryBudget,
    RetryPolicy,
    TooManyEncodingsError,
)
from typed_async_client.testing import LocalServer

from .conftest import Observed
from .test_network_faults import (
    SECRET_HEADERS,
    SeededContext,
    close_gracefully,
    events_of,
    fast,
    observed_client,
    raw_server,
    seeded_delays,
    send_then_close,
    traced_peak,
    with_secret,
)

pytestmark = pytest.mark.anyio

MiB: Final[int] = 1 << 20
#: The decoded-size cap of the capped clients.
CAP: Final[int] = 1 * MiB
#: How far above the cap the peak of traced memory may go (the server shares the process).
SLACK: Final[int] = 8 * MiB
#: Peak of traced memory allowed while a malformed response is refused.
MALFORMED_PEAK: Final[int] = 8 * MiB
_FILLER: Final[bytes] = b"x" * (64 * 1024)


@asynccontextmanager
async def recorded_warnings() -> AsyncIterator[list[warnings.WarningMessage]]:
    """
    Record every warning raised in the block, those of async-generator finalizers included.

    On trio, an async generator garbage-collected before it was exhausted warns a
    ``ResourceWarning`` from the garbage collector, and the generators it was iterating are
    only finalized, one level per event-loop turn, after it: the block ends with a few turns of
    collection so that the whole chain warns here, in the case that caused it, and not in
    whichever later test happens to collect it.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught
        # Each round may finalize one more level; stop once two rounds found nothing new.
        seen, quiet = -1, 0
        for _ in range(20):
            for _ in range(3):
                await anyio.lowlevel.checkpoint()
            gc.collect()
            quiet = quiet + 1 if len(caught) == seen else 0
            if quiet == 2:
                break
            seen = len(caught)


def sequence_url(server: LocalServer, key: str, codes: str, **params: str) -> str:
    """The URL of ``/sequence/{key}`` answering ``codes`` in turn, with extra query values."""
    return str(httpx.URL(server.url_for(f"/sequence/{key}"), params={"codes": codes, **params}))


# -- malformed responses ----------------------------------------------------------------------

MALFORMED: Final[dict[str, tuple[bytes, str]]] = {
    "garbage-status-line": (b"HELLO WORLD\r\n\r\n", "illegal status line"),
    "200KB-header-block": (
        b"HTTP/1.1 200 OK\r\nX-Filler: " + b"a" * 200_000 + b"\r\nContent-Length: 0\r\n\r\n",
        "Receive buffer too long",
    ),
    "malformed-chunk": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nabc\r\n0\r\n\r\n",
        "illegal chunk header",
    ),
    "negative-content-length": (
        b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nhello",
        "bad Content-Length",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_malformed_response_is_a_protocol_error_not_retried(
    observed: Observed, case: str, debug_logs: pytest.LogCaptureFixture
) -> None:
    """A malformed response is a RemoteProtocolError naming the fault, tried once, small peak."""
    payload, message = MALFORMED[case]
    with anyio.fail_after(20):
        async with raw_server(send_then_close(payload)) as raw:
            with traced_peak() as peak:
                handle = await observed.submit(
                    "GET", with_secret(raw.url), headers=SECRET_HEADERS, context=fast(max_retries=3)
                )
                await handle.wait_result()
            [result] = await observed.check(debug_logs)
    assert isinstance(result.error, httpx.RemoteProtocolError)
    assert message in str(result.error)
    assert (1, 1) == (result.attempts, len(raw.heads))
    assert peak.bytes < MALFORMED_PEAK


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_malformed_response_is_not_retried_under_the_transient_preset(
    observed: Observed, case: str
) -> None:
    """Even the transient preset does not resend a GET whose response was malformed."""
    payload, _message = MALFORMED[case]
    with anyio.fail_after(20):
        async with raw_server(send_then_close(payload)) as raw:
            await observed.submit(
                "GET", raw.url, retry_policy=RetryPolicy.transient(), context=fast(max_retries=2)
            )
            [result] = await observed.check()
    assert isinstance(result.error, httpx.RemoteProtocolError)
    assert (1, 1) == (result.attempts, len(raw.heads))


# -- decompression bombs, encoding chains, endless bodies -------------------------------------


async def test_gzip_bomb_is_refused_at_the_cap_in_bounded_memory(server: LocalServer) -> None:
    """A 64 MiB gzip bomb is a ResponseTooLargeError at a 1 MiB cap, peak about the cap."""
    bomb = server.url_for(f"/gzip-bomb/{64 * MiB}")
    with anyio.fail_after(20):
        async with observed_client(
            server, max_response_bytes=CAP, retry_policy=RetryPolicy.transient()
        ) as observed:
            # The server builds each bomb once: build this one before tracing.
            await (await observed.submit("HEAD", bomb, context=fast()))
            async with recorded_warnings() as caught:
                with traced_peak() as peak:
                    handle = await observed.submit("GET", bomb, context=fast(max_retries=3))
                    await handle.wait_result()
            [_head, result] = await observed.check()
    error = result.error
    assert isinstance(error, ResponseTooLargeError)
    assert (CAP, 200, True) == (error.limit, error.response.status_code, error.response.is_closed)
    assert (1, 2) == (result.attempts, server.hits[f"/gzip-bomb/{64 * MiB}"])
    assert peak.bytes < CAP + SLACK
    assert [] == [str(w.message) for w in caught]


@functools.cache
def _double_gzip_bomb(size: int) -> bytes:
    """A response whose body is gzip(gzip(``size`` zero bytes)), a few hundred bytes long."""
    inner = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = bytes(MiB)
    parts = [inner.compress(block) for _ in range(size // MiB)]
    body = gzip.compress(b"".join(parts) + inner.flush(), 9)
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip, gzip\r\nContent-Length: %d\r\n\r\n"
    return head % len(body) + body


async def test_stacked_gzip_bomb_is_refused_in_bounded_memory(server: LocalServer) -> None:
    """A gzip-over-gzip bomb past the cap is refused with peak memory about the cap."""
    payload = _double_gzip_bomb(32 * MiB)
    with anyio.fail_after(20):
        async with (
            raw_server(send_then_close(payload)) as raw,
            observed_client(server, max_response_bytes=CAP) as observed,
        ):
            async with recorded_warnings() as caught:
                with traced_peak() as peak:
                    handle = await observed.submit("GET", raw.url, context=fast())
                    await handle.wait_result()
            [result] = await observed.check()
    assert isinstance(result.error, ResponseTooLargeError)
    assert peak.bytes < CAP + SLACK
    assert [] == [str(w.message) for w in caught]


async def test_long_encoding_chain_is_refused_before_reading(server: LocalServer) -> None:
    """A response stacking 1,000 gzip codings is a TooManyEncodingsError, tried once."""
    payload = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Encoding: "
        + b", ".join([b"gzip"] * 1_000)
        + b"\r\n\r\n"
    )
    with anyio.fail_after(20):
        async with (
            raw_server(send_then_close(payload)) as raw,
            observed_client(
                server,
                max_response_bytes=CAP,
                max_content_encodings=4,
                retry_policy=RetryPolicy.transient(),
            ) as observed,
        ):
            with traced_peak() as peak:
                handle = await observed.submit("GET", raw.url, context=fast(max_retries=3))
                await handle.wait_result()
            [result] = await observed.check()
    error = result.error
    assert isinstance(error, TooManyEncodingsError)
    assert (1_000, 4, {"gzip"}) == (len(error.codings), error.limit, set(error.codings))
    assert error.response.is_closed
    assert (1, 1) == (result.attempts, len(raw.heads))
    assert peak.bytes < CAP + SLACK


async def _endless_chunked(stream: SocketStream, index: int) -> bool:
    """Send a chunked body that never ends (up to 256 MiB), until the client goes away."""
    await stream.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n" % len(_FILLER) + _FILLER + b"\r\n"
    for _ in range(4_096):
        await stream.send(chunk)
    await close_gracefully(stream)
    return False


@pytest.mark.parametrize("kind", ["content-length", "chunked"])
async def test_endless_body_is_refused_at_the_cap_in_bounded_memory(
    server: LocalServer, kind: str
) -> None:
    """A 64 MiB or endless body is a ResponseTooLargeError at a 1 MiB cap, peak about the cap."""
    with anyio.fail_after(20):
        async with (
            raw_server(_endless_chunked) as raw,
            observed_client(
                server, max_response_bytes=CAP, retry_policy=RetryPolicy.transient()
            ) as observed,
        ):
            url = server.url_for(f"/big/{64 * MiB}") if kind == "content-length" else raw.url
            async with recorded_warnings() as caught:
                with traced_peak() as peak:
                    handle = await observed.submit("GET", url, context=fast(max_retries=3))
                    await handle.wait_result()
            [result] = await observed.check()
    assert isinstance(result.error, ResponseTooLargeError)
    assert 1 == result.attempts
    assert peak.bytes < CAP + SLACK
    assert [] == [str(w.message) for w in caught]


@pytest.mark.parametrize("route", ["big", "gzip-bomb"])
async def test_body_within_the_cap_is_read_whole(server: LocalServer, route: str) -> None:
    """A body that decodes to less than the cap is read whole, so the cap is not over-strict."""
    with anyio.fail_after(20):
        async with observed_client(server, max_response_bytes=CAP) as observed:
            await observed.submit("GET", server.url_for(f"/{route}/{CAP}"), context=fast())
            [result] = await observed.check()
    assert result.response is not None
    assert (200, CAP) == (result.status_code, len(result.response.content))


# -- Retry-After ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["-1", "1.0", "nan", "garbage", "", "1e3", "0x10"])
async def test_unusable_retry_after_is_ignored(observed: Observed, value: str) -> None:
    """A negative, fractional, NaN or garbage Retry-After is ignored: the seeded backoff applies."""
    context = SeededContext(max_retries=1, base_delay=0.01, max_delay=0.02)
    [expected_delay] = seeded_delays(context, 1)
    url = sequence_url(observed.server, f"ignored-{value}", "503,200", retry_after=value)
    with anyio.fail_after(20):
        await observed.submit("GET", url, retry_policy=RetryPolicy.transient(), context=context)
        [result] = await observed.check()
    assert ([503, 200], 2) == ([a.status_code for a in result.history], result.attempts)
    [retry] = events_of(observed, EventType.RETRY, result)
    assert (expected_delay, None, 503) == (
        retry.data["delay"],
        retry.data["retry_after"],
        retry.data["status_code"],
    )
    assert retry.data["delay"] <= context.max_delay


def _a_year_ahead() -> str:
    """An IMF-fixdate one year from now."""
    when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=365)
    return email.utils.format_datetime(when, usegmt=True)


@pytest.mark.parametrize(
    ("value", "low", "high"),
    [
        pytest.param("9999999999", 9_999_999_999.0, 9_999_999_999.0, id="huge-seconds"),
        pytest.param(None, 364 * 86_400.0, 366 * 86_400.0, id="date-a-year-ahead"),
    ],
)
async def test_huge_retry_after_fails_fast_with_the_requested_delay(
    observed: Observed, value: str | None, low: float, high: float
) -> None:
    """A Retry-After past the cap fails fast with a RetryAfterTooLongError carrying the delay."""
    header = _a_year_ahead() if value is None else value
    url = sequence_url(observed.server, f"huge-{low}", "503,200", retry_after=header)
    with anyio.fail_after(20):
        await observed.submit(
            "GET", url, retry_policy=RetryPolicy.transient(), context=fast(max_retries=3)
        )
        [result] = await observed.check()
    error = result.error
    assert isinstance(error, RetryAfterTooLongError)
    assert low <= error.requested_delay <= high
    assert error.limit <= 60.0
    assert (503, True) == (error.response.status_code, error.response.is_closed)
    assert (1, 1) == (result.attempts, observed.server.sequence_hits[f"huge-{low}"])
    assert [] == events_of(observed, EventType.RETRY, result)


async def test_retry_after_past_the_deadline_fails_fast(observed: Observed) -> None:
    """A Retry-After within the cap but past the request's deadline fails fast all the same."""
    url = sequence_url(observed.server, "deadline", "503,200", retry_after="30")
    with anyio.fail_after(20):
        await observed.submit(
            "GET",
            url,
            retry_policy=RetryPolicy.transient(),
            context=fast(max_retries=3, total_timeout=2.0),
        )
        [result] = await observed.check()
    error = result.error
    assert isinstance(error, RetryAfterTooLongError)
    assert 30.0 == error.requested_delay
    assert 0.0 <= error.limit <= 2.0
    assert (1, 1) == (result.attempts, observed.server.sequence_hits["deadline"])


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("Sun, 06 Nov 1994 08:49:37 GMT", id="IMF-fixdate"),
        pytest.param("Sunday, 06-Nov-94 08:49:37 GMT", id="RFC-850"),
        pytest.param("Sun Nov  6 08:49:37 1994", id="asctime"),
    ],
)
async def test_retry_after_in_the_past_is_clamped_to_zero(observed: Observed, value: str) -> None:
    """A Retry-After date in the past, in each RFC 9110 format, means retry at once."""
    key = f"past-{value.split()[0].rstrip(',')}"
    url = sequence_url(observed.server, key, "503,200", retry_after=value)
    context = fast(max_retries=1, base_delay=1.0, max_delay=1.0)
    with anyio.fail_after(20):
        await observed.submit("GET", url, retry_policy=RetryPolicy.transient(), context=context)
        [result] = await observed.check()
    assert ([503, 200], [0.0, 0.0]) == (
        [a.status_code for a in result.history],
        [a.sleep for a in result.history],
    )
    [retry] = events_of(observed, EventType.RETRY, result)
    assert (0.0, 0.0) == (retry.data["delay"], retry.data["retry_after"])


# -- a 503/429 storm under a retry budget -----------------------------------------------------


async def test_status_storm_retries_are_held_to_the_budget_ratio(server: LocalServer) -> None:
    """During a storm of 503 and 429 answers, retries stay within the budget's share of requests."""
    budget = RetryBudget(ratio=0.25, min_per_second=0.0, max_tokens=100.0)
    paths = ["/status/503", "/status/429"] * 20
    with anyio.fail_after(20):
        async with observed_client(
            server, retry_policy=RetryPolicy.transient(), retry_budget=budget
        ) as observed:
            for path in paths:
                await observed.submit("GET", server.url_for(path), context=fast(max_retries=3))
            storm = [await h.wait_result() for h in observed.handles]
            stats = observed.client.stats()
            await observed.check()
    retries = stats.retries
    assert 1 <= retries <= budget.ratio * len(paths)
    assert (retries, stats.retries_refused) == (budget.retries_allowed, budget.retries_refused)
    assert len(paths) + retries == server.hits["/status/503"] + server.hits["/status/429"]
    assert {(RequestStatus.SUCCESS, True)} == {
        (r.status, r.status_code in (503, 429)) for r in storm
    }
    refused = [e for e in observed.events if e.event_type is EventType.BUDGET_EXHAUSTED]
    assert stats.retries_refused == len(refused)
    # Each request ended either refused by the budget or with its retries spent.
    assert len(paths) == len(refused) + sum(r.attempts == 4 for r in storm)


# -- redirect loop ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "caps",
    [pytest.param({}, id="buffered"), pytest.param({"max_response_bytes": CAP}, id="capped")],
)
async def test_redirect_loop_raises_too_many_redirects(
    server: LocalServer, caps: dict[str, Any], debug_logs: pytest.LogCaptureFixture
) -> None:
    """A redirect loop is TooManyRedirects after max_redirects hops, tried once, each hop closed."""
    responses: list[httpx.Response] = []

    async def keep(response: httpx.Response) -> None:
        responses.append(response)

    with anyio.fail_after(20):
        async with observed_client(
            server,
            follow_redirects=True,
            max_redirects=5,
            event_hooks={"response": [keep]},
            retry_policy=RetryPolicy.transient(),
            **caps,
        ) as observed:
            await observed.submit(
                "GET",
                with_secret(server.url_for("/redirect")),
                headers=SECRET_HEADERS,
                context=fast(max_retries=3),
            )
            [result] = await observed.check(debug_logs)
    assert isinstance(result.error, httpx.TooManyRedirects)
    assert (1, 6) == (result.attempts, server.hits["/redirect"])
    hops = [r for r in responses if r.request.url.path == "/redirect"]
    assert [302] * 6 == [r.status_code for r in hops]
    assert all(r.is_closed for r in hops)
