"""
The server's requested wait: ``parse_retry_after``, ``parse_rate_limit_reset`` and
``requested_delay`` as pure functions (examples and hypothesis properties), then
``Retry-After`` and the rate-limit reset headers honoured and capped over loopback.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
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
    RequestStatus,
    RetryAfterTooLongError,
    RetryPolicy,
    TypedAsyncClientError,
    parse_retry_after,
)
from typed_async_client._retry_after import parse_rate_limit_reset, requested_delay
from typed_async_client.testing import LocalServer

pytestmark = pytest.mark.anyio

#: Deterministic property tests: the same examples on every run and every machine.
PROPERTY = settings(derandomize=True, database=None, deadline=None, max_examples=300)

#: Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110's example date.
NOW = 784111777.0

#: A backoff so long that a test honouring the header instead would hit its fail_after.
SLOW = Backoff(base=30.0, factor=1.0, cap=30.0, jitter="none")
#: A short fixed backoff: a delay equal to it proves the header was ignored.
FIXED = Backoff(base=0.003, factor=1.0, cap=0.003, jitter="none")

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_LONG_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def imf_fixdate(timestamp: float) -> str:
    """``Sun, 06 Nov 1994 08:49:37 GMT`` (locale-independent)."""
    t = time.gmtime(timestamp)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


def rfc850_date(timestamp: float) -> str:
    """``Sunday, 06-Nov-94 08:49:37 GMT`` (two-digit year)."""
    t = time.gmtime(timestamp)
    return (
        f"{_LONG_DAYS[t.tm_wday]}, {t.tm_mday:02d}-{_MONTHS[t.tm_mon - 1]}-{t.tm_year % 100:02d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


def asctime_date(timestamp: float) -> str:
    """``Sun Nov  6 08:49:37 1994`` (ANSI C's asctime, no zone: it means GMT)."""
    t = time.gmtime(timestamp)
    return (
        f"{_DAYS[t.tm_wday]} {_MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {t.tm_year}"
    )


FORMATS = [
    pytest.param(imf_fixdate, id="IMF-fixdate"),
    pytest.param(rfc850_date, id="RFC-850"),
    pytest.param(asctime_date, id="asctime"),
]


@contextmanager
def timezone(name: str) -> Iterator[None]:
    """Run with the process's local time zone set to ``name`` (POSIX TZ), then restore it."""
    if not hasattr(time, "tzset"):  # pragma: no cover - Windows
        pytest.skip("time.tzset is not available")
    saved = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


def _record(client: AsyncResilientClient, *event_types: EventType) -> list[AsyncEvent]:
    """Collect the client's events of ``event_types`` (complete once the client is closed)."""
    seen: list[AsyncEvent] = []
    for event_type in event_types:
        client.add_event_callback(event_type, seen.append)
    return seen


def _sequence(server: LocalServer, key: str, codes: str, **params: str) -> str:
    """The URL of ``/sequence/{key}`` answering ``codes`` in turn, with header parameters."""
    url = httpx.URL(server.url_for(f"/sequence/{key}"), params={"codes": codes, **params})
    return str(url)


def _response(**headers: str) -> httpx.Response:
    return httpx.Response(503, headers=headers)


def _usable(value: float | None) -> bool:
    return value is None or (math.isfinite(value) and value >= 0.0)


# -- parse_retry_after: examples --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("1", 1.0),
        ("120", 120.0),
        ("  7 ", 7.0),
        ("00042", 42.0),
        ("3600", 3600.0),
        ("9" * 30, float(10**30 - 1)),
    ],
)
def test_delta_seconds(value: str, expected: float) -> None:
    """delay-seconds is a non-negative integer of seconds, surrounding whitespace ignored."""
    assert expected == parse_retry_after(value, now=NOW)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("offset", "expected"),
    [(-86400.0, 0.0), (-1.0, 0.0), (0.0, 0.0), (10.0, 10.0), (3600.0, 3600.0)],
)
def test_http_dates_against_a_fixed_now(fmt: object, offset: float, expected: float) -> None:
    """Every RFC 9110 date format: a past date asks for 0, a future one for the difference."""
    assert callable(fmt)
    with timezone("UTC0"):
        delay = parse_retry_after(fmt(NOW + offset), now=NOW)
    assert expected == delay


def test_rfc9110_example_dates() -> None:
    """RFC 9110's three spellings of the same instant are read as the same delay."""
    values = [
        "Sun, 06 Nov 1994 08:49:47 GMT",
        "Sunday, 06-Nov-94 08:49:47 GMT",
        "Sun Nov  6 08:49:47 1994",
    ]
    with timezone("UTC0"):
        delays = [parse_retry_after(v, now=NOW) for v in values]
    assert [10.0, 10.0, 10.0] == delays


def test_date_without_now_uses_the_clock() -> None:
    """Without ``now`` the current time is used: an hour ahead is about an hour."""
    delay = parse_retry_after(imf_fixdate(time.time() + 3600))
    assert delay is not None
    assert 3500.0 < delay <= 3601.0
    assert 0.0 == parse_retry_after(imf_fixdate(time.time() - 3600))


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        "-1",
        "-120",
        "1.0",
        "1.5",
        ".5",
        "nan",
        "NaN",
        "inf",
        "-inf",
        "+5",
        "0x10",
        "1e3",
        "1_000",
        "soon",
        "120 seconds",
        "١٢",  # Arabic-Indic digits: isdigit() but not ASCII
        "²",
        "9" * 65,
        "1" * 10_000,
        "Sun, 06 Nov 1994 08:49:37 GMT" + " " * 40 + "x",
        "Sun, 32 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 25:49:37 GMT",
        "Sun, 06 Foo 1994 08:49:37 GMT",
        "\x00",
        "1\r\n2",
    ],
)
def test_unusable_values_are_none(value: str | None) -> None:
    """Negative, fractional, non-finite, malformed, empty or huge values are ignored."""
    assert None is parse_retry_after(value, now=NOW)


@pytest.mark.parametrize("zone", ["EST5", "JST-9"])
def test_asctime_date_is_gmt_whatever_the_local_zone(zone: str) -> None:
    """An asctime date means GMT even when the process runs in another time zone."""
    with timezone(zone):
        delay = parse_retry_after("Sun Nov  6 08:49:47 1994", now=NOW)
    assert 10.0 == delay


# -- parse_retry_after: properties ------------------------------------------------------------


@PROPERTY
@given(value=st.text(), now=st.floats(min_value=0.0, max_value=4e9))
def test_retry_after_never_raises_on_text(value: str, now: float) -> None:
    """Any text gives None or a finite, non-negative delay; nothing is raised."""
    assert _usable(parse_retry_after(value, now=now))
    assert _usable(parse_retry_after(value))


@PROPERTY
@given(
    value=st.from_regex(
        r"\A[A-Za-z]{3,9},? ?[0-9]{1,3}[ -][A-Za-z]{3}[ -][0-9]{1,5} "
        r"[0-9]{1,3}:[0-9]{1,3}(:[0-9]{1,3})?( [A-Za-z+0-9-]{0,6})?\Z"
    ),
    now=st.floats(min_value=0.0, max_value=4e9),
)
def test_retry_after_never_raises_on_date_like_text(value: str, now: float) -> None:
    """Almost-dates (bad days, hours, years, zones) never raise either."""
    assert _usable(parse_retry_after(value, now=now))


@PROPERTY
@given(
    seconds=st.integers(min_value=0, max_value=10**40),
    pad=st.sampled_from(["", " ", "\t", "  "]),
)
def test_delta_seconds_round_trip(seconds: int, pad: str) -> None:
    """Every non-negative integer is read back as that many seconds."""
    assert float(seconds) == parse_retry_after(f"{pad}{seconds}{pad}", now=NOW)


@PROPERTY
@given(seconds=st.integers(min_value=1, max_value=10**40))
def test_negative_delta_is_ignored(seconds: int) -> None:
    """A negative number of seconds is always ignored."""
    assert None is parse_retry_after(f"-{seconds}", now=NOW)


@PROPERTY
@given(
    target=st.integers(min_value=0, max_value=2**31 - 1),
    now=st.integers(min_value=0, max_value=2**31 - 1),
    fmt=st.sampled_from([imf_fixdate, rfc850_date, asctime_date]),
)
def test_date_round_trip(target: int, now: int, fmt: object) -> None:
    """A date in any format gives max(0, date - now), computed against the given now."""
    assert callable(fmt)
    with timezone("UTC0"):
        delay = parse_retry_after(fmt(target), now=float(now))
    assert max(0.0, float(target - now)) == delay


# -- parse_rate_limit_reset -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("30", 30.0),
        ("1.5", 1.5),
        (" 2 ", 2.0),
        ("999999999", 999999999.0),
        ("1000000000", 0.0),
    ],
)
def test_rate_limit_reset_delays(value: str, expected: float) -> None:
    """Delay-seconds, fractions accepted; from 10^9 up a past Unix timestamp means 0."""
    assert expected == parse_rate_limit_reset(value, now=2_000_000_000.0)


def test_rate_limit_reset_epoch_form() -> None:
    """X-RateLimit-Reset as a Unix timestamp gives the seconds until then."""
    now = 1_700_000_000.0
    assert 42.0 == parse_rate_limit_reset("1700000042", now=now)
    assert 0.0 == parse_rate_limit_reset("1699999000", now=now)
    assert 0.5 == parse_rate_limit_reset("1700000000.5", now=now)


@pytest.mark.parametrize(
    "value",
    [None, "", " ", "-1", "-0.5", "nan", "inf", "-inf", "soon", "1,5", "9" * 65, "0x10"],
)
def test_rate_limit_reset_unusable_values(value: str | None) -> None:
    """Negative, non-finite, malformed, empty or huge reset values are ignored."""
    assert None is parse_rate_limit_reset(value, now=NOW)


@PROPERTY
@given(value=st.text(), now=st.floats(min_value=0.0, max_value=4e9))
def test_rate_limit_reset_never_raises(value: str, now: float) -> None:
    """Any text gives None or a finite, non-negative delay."""
    assert _usable(parse_rate_limit_reset(value, now=now))


@PROPERTY
@given(seconds=st.floats(min_value=0.0, max_value=999_999_999.0))
def test_rate_limit_reset_round_trip(seconds: float) -> None:
    """A delay below 10^9 seconds is read back exactly."""
    assert seconds == parse_rate_limit_reset(repr(seconds), now=NOW)


@PROPERTY
@given(
    reset=st.integers(min_value=1_000_000_000, max_value=4_000_000_000),
    now=st.integers(min_value=1_000_000_000, max_value=4_000_000_000),
)
def test_rate_limit_reset_epoch_round_trip(reset: int, now: int) -> None:
    """A Unix timestamp gives max(0, reset - now)."""
    assert max(0.0, float(reset - now)) == parse_rate_limit_reset(str(reset), now=float(now))


# -- requested_delay --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({}, None, id="none"),
        pytest.param({"Retry-After": "5"}, 5.0, id="retry-after"),
        pytest.param({"Retry-After": "5", "RateLimit-Reset": "9"}, 5.0, id="retry-after-first"),
        pytest.param({"Retry-After": "5", "X-RateLimit-Reset": "9"}, 5.0, id="retry-after-over-x"),
        pytest.param({"Retry-After": "soon", "RateLimit-Reset": "9"}, 9.0, id="bad-retry-after"),
        pytest.param({"RateLimit-Reset": "9", "X-RateLimit-Reset": "4"}, 9.0, id="ratelimit"),
        pytest.param({"RateLimit-Reset": "-1", "X-RateLimit-Reset": "4"}, 4.0, id="bad-ratelimit"),
        pytest.param({"X-RateLimit-Reset": "4"}, 4.0, id="x-ratelimit"),
        pytest.param({"x-ratelimit-reset": "1.25"}, 1.25, id="lower-case"),
        pytest.param({"Retry-After": "-3", "RateLimit-Reset": "nan"}, None, id="all-bad"),
        pytest.param(
            {"Retry-After": "Sun, 06 Nov 1994 08:49:47 GMT", "RateLimit-Reset": "1"},
            10.0,
            id="date",
        ),
    ],
)
def test_requested_delay_precedence(headers: dict[str, str], expected: float | None) -> None:
    """Retry-After first, then RateLimit-Reset, then X-RateLimit-Reset; unusable ones skipped."""
    assert expected == requested_delay(_response(**headers), now=NOW)


# -- over loopback ----------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [0, 1])
async def test_retry_after_is_honoured(server: LocalServer, seconds: int) -> None:
    """Retry-After: N replaces the (long) backoff: the RETRY delay is exactly N."""
    policy = RetryPolicy.transient(backoff=SLOW)
    url = _sequence(server, "k", "503,200", retry_after=str(seconds))
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=policy) as client:
            retries = _record(client, EventType.RETRY)
            handle = await client.get(url)
            result = await handle.wait_result()
    assert (RequestStatus.SUCCESS, 200, 2) == (result.status, result.status_code, result.attempts)
    assert 1 == len(retries)
    data = retries[0].data
    assert (float(seconds), float(seconds), 503, 2) == (
        data["delay"],
        data["retry_after"],
        data["status_code"],
        data["attempt"],
    )
    assert [float(seconds), 0.0] == [a.sleep for a in result.history]


@pytest.mark.parametrize("fmt", FORMATS)
async def test_retry_after_past_http_date_means_now(server: LocalServer, fmt: object) -> None:
    """A Retry-After date in the past, in any format, retries at once (delay 0)."""
    assert callable(fmt)
    policy = RetryPolicy.transient(backoff=SLOW)
    # Two days ago: in the past whatever the local time zone (see the asctime bug above).
    url = _sequence(server, "k", "503,200", retry_after=fmt(time.time() - 2 * 86400))
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=policy) as client:
            retries = _record(client, EventType.RETRY)
            response = await (await client.get(url))
    assert 200 == response.status_code
    assert [(0.0, 0.0)] == [(e.data["delay"], e.data["retry_after"]) for e in retries]


async def test_retry_after_future_http_date_beyond_the_cap(server: LocalServer) -> None:
    """A Retry-After date an hour ahead passes the cap: the request ends at once."""
    policy = RetryPolicy.transient(backoff=SLOW, max_retry_after=5.0)
    url = _sequence(server, "k", "503,200", retry_after=imf_fixdate(time.time() + 3600))
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=policy) as client:
            handle = await client.get(url)
            result = await handle.wait_result()
    error = result.error
    assert isinstance(error, RetryAfterTooLongError)
    assert 3500.0 < error.requested_delay <= 3601.0
    assert 5.0 == error.limit
    assert (1, 1) == (result.attempts, server.sequence_hits["k"])


async def test_retry_after_beyond_the_cap_fails_fast(server: LocalServer) -> None:
    """Retry-After: 3600 with max_retry_after=5 ends the request with the error and response."""
    policy = RetryPolicy.transient(backoff=SLOW, max_retry_after=5.0)
    url = _sequence(server, "k", "503,200", retry_after="3600")
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=policy) as client:
            retries = _record(client, EventType.RETRY)
            handle = await client.get(url)
            result = await handle.wait_result()
            with pytest.raises(RetryAfterTooLongError) as raised:
                await handle
    error = raised.value
    assert result.error is error
    assert isinstance(error, TypedAsyncClientError)
    assert (3600.0, 5.0, 503) == (error.requested_delay, error.limit, error.response.status_code)
    assert (RequestStatus.ERROR, 1, None) == (result.status, result.attempts, result.response)
    assert 1 == server.sequence_hits["k"]
    assert [] == retries
    assert [(503, 0.0)] == [(a.status_code, a.sleep) for a in result.history]
    assert result.request_id in str(error)


async def test_retry_after_beyond_the_deadline_fails_fast(server: LocalServer) -> None:
    """A Retry-After longer than the time left before total_timeout also ends at once."""
    policy = RetryPolicy.transient(backoff=SLOW, max_retry_after=60.0)
    url = _sequence(server, "k", "503,200", retry_after="30")
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=policy) as client:
            handle = await client.get(url, context=RequestContext(total_timeout=5.0))
            result = await handle.wait_result()
    error = result.error
    assert isinstance(error, RetryAfterTooLongError)
    assert 30.0 == error.requested_delay
    assert 0.0 < error.limit <= 5.0
    assert (1, 1) == (result.attempts, server.sequence_hits["k"])


async def test_retry_after_on_a_status_not_retried_is_not_an_error(server: LocalServer) -> None:
    """A 429 on a plain POST is not retried, so its long Retry-After is simply returned."""
    policy = RetryPolicy.transient(backoff=SLOW, max_retry_after=1.0)
    url = _sequence(server, "k", "429,200", retry_after="3600")
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=policy) as client:
            response = await (await client.post(url, content=b"x"))
    assert (429, "3600") == (response.status_code, response.headers["retry-after"])


@pytest.mark.parametrize("value", ["-5", "1.5", "nan", "soon", "", "Sun, 32 Foo 1994"])
async def test_malformed_retry_after_is_ignored(server: LocalServer, value: str) -> None:
    """An unusable Retry-After is ignored: the computed backoff applies."""
    policy = RetryPolicy.transient(backoff=FIXED)
    url = _sequence(server, "k", "503,200", retry_after=value)
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=policy) as client:
            retries = _record(client, EventType.RETRY)
            response = await (await client.get(url))
    assert 200 == response.status_code
    assert [(FIXED.cap, None)] == [(e.data["delay"], e.data["retry_after"]) for e in retries]


async def test_no_retry_after_leaves_the_backoff(server: LocalServer) -> None:
    """Without a header the RETRY event says retry_after None and the delay is the backoff."""
    policy = RetryPolicy.transient(backoff=FIXED)
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=policy) as client:
            retries = _record(client, EventType.RETRY)
            response = await (await client.get(_sequence(server, "k", "502,200")))
    assert 200 == response.status_code
    assert [(FIXED.cap, None, 502)] == [
        (e.data["delay"], e.data["retry_after"], e.data["status_code"]) for e in retries
    ]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({"ratelimit_reset": "0"}, 0.0, id="RateLimit-Reset-0"),
        pytest.param({"ratelimit_reset": "0.05"}, 0.05, id="RateLimit-Reset-fraction"),
        pytest.param({"x_ratelimit_reset": "0"}, 0.0, id="X-RateLimit-Reset-0"),
        pytest.param({"x_ratelimit_reset": "1000000000"}, 0.0, id="X-RateLimit-Reset-epoch"),
        pytest.param({"retry_after": "0", "ratelimit_reset": "20"}, 0.0, id="Retry-After-precedes"),
        pytest.param({"retry_after": "later", "x_ratelimit_reset": "0"}, 0.0, id="bad-Retry-After"),
    ],
)
async def test_rate_limit_reset_is_honoured(
    server: LocalServer, params: dict[str, str], expected: float
) -> None:
    """RateLimit-Reset and X-RateLimit-Reset replace the (long) backoff like Retry-After."""
    policy = RetryPolicy.transient(backoff=SLOW)
    url = _sequence(server, "k", "429,200", **params)
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=policy) as client:
            retries = _record(client, EventType.RETRY)
            response = await (await client.get(url))
    assert 200 == response.status_code
    assert [(expected, expected, 429)] == [
        (e.data["delay"], e.data["retry_after"], e.data["status_code"]) for e in retries
    ]


async def test_rate_limit_reset_beyond_the_cap_fails_fast(server: LocalServer) -> None:
    """An X-RateLimit-Reset an hour ahead (epoch form) passes the cap like Retry-After."""
    policy = RetryPolicy.transient(backoff=SLOW, max_retry_after=5.0)
    url = _sequence(server, "k", "429,200", x_ratelimit_reset=str(int(time.time()) + 3600))
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=policy) as client:
            handle = await client.get(url)
            result = await handle.wait_result()
    error = result.error
    assert isinstance(error, RetryAfterTooLongError)
    assert 3500.0 < error.requested_delay <= 3600.0
    assert 429 == error.response.status_code
    assert 1 == result.attempts


async def test_max_retry_after_zero_still_honours_zero(server: LocalServer) -> None:
    """max_retry_after=0 accepts Retry-After: 0 and refuses Retry-After: 1."""
    policy = RetryPolicy.transient(backoff=SLOW, max_retry_after=0.0)
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_policy=policy) as client:
            zero = await client.get(_sequence(server, "zero", "503,200", retry_after="0"))
            one = await client.get(_sequence(server, "one", "503,200", retry_after="1"))
            results = [await zero.wait_result(), await one.wait_result()]
    assert (200, 2) == (results[0].status_code, results[0].attempts)
    assert isinstance(results[1].error, RetryAfterTooLongError)
    assert (1.0, 0.0) == (results[1].error.requested_delay, results[1].error.limit)
