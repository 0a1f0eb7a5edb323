"""
Hardening: secrets in bad input and in httpcore's logs, and bad input refused at the call.

Secrets: a header value the client cannot encode (a pasted token ending in a non-breaking
space) is refused at the call by a message that names the header and never shows the value;
the library's own URL errors show the URL redacted; httpcore's DEBUG trace (response heads: a
redirect's ``Location``) and hpack's header pairs are redacted like httpx's INFO line; the
common secret query keys of OAuth and presigned URLs are redacted by default, with ``&`` or
``;`` between the pairs.

Bad input: everything httpx or h11 would refuse while sending (a header name that is not a
token, a header value of the wrong type or not ASCII, a body, query, cookie or auth of the wrong
type, a URL with a control character, a broken IPv6 literal or a host no resolver can find)
raises at the call: ``TypeError`` for a wrong type, ``ValueError`` for a bad value, the message
naming the argument. Nothing is scheduled (``stats().started`` does not move), nothing is
retried, and the client stays usable.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import anyio
import httpx
import pytest

from typed_async_client import (
    AsyncResilientClient,
    EventType,
    RequestStatus,
)
from typed_async_client.testing import LocalServer

from .conftest import CANARY, Observed, refused_at_the_call

pytestmark = pytest.mark.anyio

#: Retries nearly everything for idempotent requests, without sleeping.

#: A bearer token pasted with the non-breaking space that often follows it in a web page.
PASTED_TOKEN = f"Bearer {CANARY}\u00a0"


@asynccontextmanager
async def _observing(client: AsyncResilientClient, server: LocalServer) -> AsyncIterator[Observed]:
    async with client:
        observed = Observed(client=client, server=server)
        for event_type in EventType:
            client.add_event_callback(event_type, observed.events.append)
        yield observed


@pytest.fixture
def trace_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Capture the library's, httpx's, httpcore's and hpack's logs at DEBUG."""
    for name in ("typed_async_client", "httpx", "httpcore", "hpack"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


# -- item 6: secrets ----------------------------------------------------------------------------


async def test_a_non_ascii_header_value_is_refused_without_showing_it(observed: Observed) -> None:
    """A token ending in U+00A0 raises ValueError naming the header, never showing the value."""
    url = observed.server.url_for("/h")
    with anyio.fail_after(10):
        for headers in (
            {"Authorization": PASTED_TOKEN},
            [("Authorization", PASTED_TOKEN)],
            {"X-Api-Key": f"{CANARY}\u2013"},
        ):
            message = await refused_at_the_call(
                observed, ValueError, "headers: .*must be ASCII", url, headers=headers
            )
            assert next(iter(dict(headers))) in message
        await observed.check()
    assert 0 == observed.server.hits["/h"]


def test_a_non_ascii_client_wide_header_is_refused_at_construction() -> None:
    """The same check applies to the client's default headers, when the client is built."""
    with pytest.raises(ValueError, match=r"headers: .*'Authorization' must be ASCII") as excinfo:
        AsyncResilientClient(headers={"Authorization": PASTED_TOKEN})
    assert CANARY not in str(excinfo.value)


SECRET_URLS = [
    pytest.param(f"ftp://user:{CANARY}@127.0.0.1/f?api_key={CANARY}", "scheme", id="scheme"),
    pytest.param(f"http://user:{CANARY}@127.0.0.1:99999/?api_key={CANARY}", "port", id="port"),
    pytest.param(f"http://user:{CANARY}@127.0.0.1/\r\n?api_key={CANARY}", "CR, LF", id="crlf"),
    pytest.param(f"http://user:{CANARY}@127.0.0.1/a\tb?token={CANARY}", "control", id="tab"),
    pytest.param(f"http://user:{CANARY}@/path?api_key={CANARY}", "host", id="no-host"),
    pytest.param(f"http://user:{CANARY}@[::1/?api_key={CANARY}", "IPv6", id="ipv6-open"),
    pytest.param(f"http://user:{CANARY}@exa mple.com/?sig={CANARY}", "host", id="host-space"),
    pytest.param(f"//127.0.0.1/?api_key={CANARY}", "absolute", id="relative"),
    pytest.param(f"http://127.0.0.1:99999/?a=1;api_key={CANARY}", "port", id="semicolon"),
    pytest.param(f"http://127.0.0.1:99999/#access_token={CANARY}", "port", id="fragment"),
    pytest.param(
        f"http://127.0.0.1:99999/?Refresh_Token={CANARY}&client_secret={CANARY}", "port", id="oauth"
    ),
]


@pytest.mark.parametrize(("url", "match"), SECRET_URLS)
async def test_url_errors_show_the_url_redacted(observed: Observed, url: str, match: str) -> None:
    """The library's own URL errors show the URL without its password or secret query values."""
    with anyio.fail_after(10):
        message = await refused_at_the_call(observed, ValueError, match, url)
        await observed.check()
    assert "[REDACTED]" in message


async def test_httpcore_debug_trace_does_not_show_a_redirect_location_secret(
    server: LocalServer, trace_logs: pytest.LogCaptureFixture
) -> None:
    """A redirect to ``?api_key=...`` shows in httpcore's DEBUG trace of its head, redacted."""
    landing = server.url_for(f"/landing?api_key={CANARY}&page=2")
    url = server.url_for(f"/redirect?code=302&to={quote(landing, safe='')}")
    # The redirect's own URL carries the target in ``to``: declared secret, so it is redacted.
    client = AsyncResilientClient(follow_redirects=True, sensitive_query_keys=["to"])
    with anyio.fail_after(15):
        async with _observing(client, server) as observed:
            handle = await observed.submit("GET", url)
            response = await handle
            (result, *_) = await observed.check(trace_logs)
    assert (RequestStatus.SUCCESS, 200) == (result.status, result.status_code)
    assert {"api_key": CANARY, "page": "2"} == response.json()["query"]  # the secret was sent
    heads = [
        r.getMessage()
        for r in trace_logs.records
        if r.name == "httpcore.http11" and "Location" in r.getMessage()
    ]
    assert heads, "httpcore logged no response head with a Location"
    assert all("api_key=[REDACTED]&page=2" in head for head in heads)


async def test_httpcore_debug_trace_does_not_show_client_wide_params(
    server: LocalServer, trace_logs: pytest.LogCaptureFixture
) -> None:
    """Client-wide secret params echoed in a redirect's Location are redacted in httpcore's logs."""
    client = AsyncResilientClient(params={"api_key": CANARY})
    with anyio.fail_after(15):
        async with _observing(client, server) as observed:
            await observed.submit("GET", server.url_for("/redirect"))  # to itself, not followed
            (result, *_) = await observed.check(trace_logs)
    assert 302 == result.status_code
    assert any(
        r.name == "httpcore.http11" and "api_key=[REDACTED]" in r.getMessage()
        for r in trace_logs.records
    )


async def test_hpack_header_pairs_are_redacted(
    observed: Observed, trace_logs: pytest.LogCaptureFixture
) -> None:
    """hpack's DEBUG records (HTTP/2 header pairs, as it logs them) lose sensitive values."""
    hpack = logging.getLogger("hpack.hpack")
    hpack.debug("Adding %s to the header table", (b"authorization", f"Bearer {CANARY}".encode()))
    hpack.debug("Decoded %s, consumed %d", ("location", f"/x?token={CANARY}"), 3)
    hpack.debug("Decoded %s, consumed %d", (b"content-type", b"text/plain"), 3)
    messages = [r.getMessage() for r in trace_logs.records if r.name == "hpack.hpack"]
    assert [
        "Adding (b'authorization', b'[REDACTED]') to the header table",
        "Decoded ('location', '/x?token=[REDACTED]'), consumed 3",
        "Decoded (b'content-type', b'text/plain'), consumed 3",
    ] == messages


async def test_common_secret_query_keys_are_redacted_by_default(
    observed: Observed, trace_logs: pytest.LogCaptureFixture
) -> None:
    """OAuth and presigned-URL keys, in any case, and pairs after ';' are redacted everywhere."""
    secrets = (
        f"refresh_token={CANARY}&Client_Secret={CANARY}&X-Amz-Signature={CANARY}"
        f"&X-Amz-Security-Token={CANARY}&x-goog-signature={CANARY}&SIG={CANARY}"
        f"&Signature={CANARY}&page=2"
    )
    with anyio.fail_after(10):
        await observed.submit("GET", observed.server.url_for(f"/keys?{secrets}"))
        await observed.submit("GET", observed.server.url_for(f"/semicolon?a=1;api_key={CANARY}"))
        first, second = await observed.check(trace_logs)
    assert first.url.endswith(
        "refresh_token=[REDACTED]&Client_Secret=[REDACTED]&X-Amz-Signature=[REDACTED]"
        "&X-Amz-Security-Token=[REDACTED]&x-goog-signature=[REDACTED]&SIG=[REDACTED]"
        "&Signature=[REDACTED]&page=2"
    )
    assert second.url.endswith("/semicolon?a=1;api_key=[REDACTED]")
    assert [200, 200] == [first.status_code, second.status_code]


# -- item 7: bad input refused at the call ------------------------------------------------------


async def _async_body() -> AsyncIterator[bytes]:
    yield b"never"


BAD_OPTIONS = [
    pytest.param({"headers": {"X Bad": "v"}}, ValueError, "headers: .*HTTP token", id="name-space"),
    pytest.param({"headers": {"X-Bad:": "v"}}, ValueError, "HTTP token", id="name-colon"),
    pytest.param({"headers": {"": "v"}}, ValueError, "headers: .*empty", id="name-empty"),
    pytest.param(
        {"headers": {f"Authorization: Bearer {CANARY}": ""}},
        ValueError,
        "headers: header name 'Authorization'",
        id="name-with-a-secret",
    ),
    pytest.param({"headers": {"X-Caf\u00e9": "v"}}, ValueError, "ASCII", id="name-ascii"),
    pytest.param({"headers": {5: "v"}}, TypeError, "headers: .*name", id="name-int"),
    pytest.param({"headers": {"X-Note": None}}, TypeError, "headers: .*'X-Note'", id="value-none"),
    pytest.param({"headers": {"X-Note": 5}}, TypeError, "headers: .*'X-Note'", id="value-int"),
    pytest.param(
        {"headers": {"X-Note": f"caf\u00e9 {CANARY}"}}, ValueError, "headers: .*ASCII", id="value"
    ),
    pytest.param(
        {"headers": {"X-Api-Key": f"{CANARY} "}}, ValueError, "headers: .*end", id="value-space"
    ),
    pytest.param(
        {"headers": httpx.Headers({"X-Api-Key": f"\t{CANARY}"})},
        ValueError,
        "headers: .*start",
        id="httpx-headers",
    ),
    pytest.param({"headers": 5}, TypeError, "headers must be", id="headers-int"),
    pytest.param({"headers": iter([("a", "b")])}, TypeError, "headers must be", id="iterator"),
    pytest.param({"headers": [("a", "b", "c")]}, TypeError, "headers: .*pair", id="triple"),
    pytest.param({"content": 123}, TypeError, "content must be", id="content-int"),
    pytest.param({"content": {"a": "b"}}, TypeError, "content must be", id="content-dict"),
    pytest.param({"content": [b"a", b"b"]}, TypeError, "async iterable", id="content-list"),
    pytest.param({"content": bytearray(b"ab")}, TypeError, "bytes", id="content-bytearray"),
    pytest.param({"json": object()}, TypeError, "json must be", id="json-object"),
    pytest.param({"json": {"a": [object()]}}, TypeError, "json must be", id="json-nested"),
    pytest.param({"json": float("nan")}, ValueError, "json must", id="json-nan"),
    pytest.param({"json": {"a": float("inf")}}, ValueError, "json must be", id="json-inf"),
    pytest.param({"json": {(1, 2): "v"}}, TypeError, "json must be", id="json-key"),
    pytest.param({"auth": CANARY}, TypeError, "auth must be", id="auth-str"),
    pytest.param({"auth": (CANARY,)}, TypeError, "auth must be", id="auth-1-tuple"),
    pytest.param({"auth": ("user", 5)}, TypeError, "auth: ", id="auth-int"),
    pytest.param({"cookies": CANARY}, TypeError, "cookies must be", id="cookies-str"),
    pytest.param({"cookies": {"sid": 5}}, TypeError, "cookies: .*'sid'", id="cookie-int"),
    pytest.param(
        {"cookies": {"sid": f"{CANARY}\u00a0"}}, ValueError, "cookies: .*ASCII", id="cookie-ascii"
    ),
    pytest.param({"cookies": {"a b": "v"}}, ValueError, "cookies: .*token", id="cookie-name"),
    pytest.param({"params": 5}, TypeError, "params must be", id="params-int"),
    pytest.param({"params": [("a",)]}, TypeError, "params: .*pair", id="params-1-tuple"),
    pytest.param({"data": 5}, TypeError, "data must be", id="data-int"),
    pytest.param({"files": 5}, TypeError, "files must be", id="files-int"),
    pytest.param({"follow_redirects": "yes"}, TypeError, "follow_redirects", id="redirects"),
    pytest.param({"extensions": 5}, TypeError, "extensions must be", id="extensions"),
]


@pytest.mark.parametrize(("options", "error", "match"), BAD_OPTIONS)
async def test_bad_options_arerefused_at_the_call(
    observed: Observed, options: dict[str, Any], error: type[Exception], match: str
) -> None:
    """Each bad option raises at submit time, schedules nothing; the client stays usable."""
    with anyio.fail_after(10):
        message = await refused_at_the_call(
            observed, error, match, observed.server.url_for("/bad-option"), **options
        )
        results = await observed.check()
    (argument,) = options
    assert message.startswith(argument)
    assert [200] == [r.status_code for r in results]
    assert 0 == observed.server.hits["/bad-option"]


async def test_good_options_still_pass(observed: Observed) -> None:
    """The shapes httpx accepts still go through: bytes headers, tabs inside, latin-1 bytes."""
    server = observed.server
    with anyio.fail_after(10):
        await observed.submit(
            "POST",
            server.url_for("/good"),
            headers=[("X-Tab", "a\tb"), ("X-Latin", b"caf\xe9")],
            json={"a": [1, 2.5, None, True]},
            params=[("q", 1)],
            auth=("user", "pass"),
            follow_redirects=False,
            extensions={},
        )
        await observed.submit("POST", server.url_for("/good"), content=_async_body())
        await observed.submit(
            "POST", server.url_for("/good"), data={"a": "b"}, headers=httpx.Headers({"X-A": "b"})
        )
        results = await observed.check()
    assert [200, 200, 200] == [r.status_code for r in results]


BAD_URLS = [
    pytest.param("/a\tb", "control", id="tab-in-path"),
    pytest.param("/a\x7fb", "control", id="del-in-path"),
    pytest.param("http://[::1/", "IPv6", id="ipv6-unclosed"),
    pytest.param("http://[zz]/", "IPv6", id="ipv6-invalid"),
    pytest.param("http://[::1]x/", "IPv6", id="ipv6-trailing"),
    pytest.param("http://exa mple.com/", "host", id="host-space"),
    pytest.param("http://exa%20mple.com/", "host", id="host-percent"),
    pytest.param("http://a!b.invalid/", "host", id="host-bang"),
    pytest.param("http://b\u00fc cher.invalid/", "internationalized", id="host-idna"),
    pytest.param("http://1.2.3.999/", "IPv4", id="ipv4-octet"),
    pytest.param("http://127.0.0.1:8²/", "port", id="port-superscript"),
    pytest.param(httpx.URL("http://exa mple.com/"), "host", id="httpx-url-host-space"),
]


@pytest.mark.parametrize(("url", "match"), BAD_URLS)
async def test_bad_urls_arerefused_at_the_call(
    observed: Observed, url: str | httpx.URL, match: str
) -> None:
    """A URL httpx refuses, or whose host no resolver finds, raises ValueError at the call."""
    if isinstance(url, str) and url.startswith("/"):
        url = observed.server.url + url
    with anyio.fail_after(10):
        message = await refused_at_the_call(observed, ValueError, match, url)
        await observed.check()
    assert message.startswith("url ")


@pytest.mark.parametrize(
    ("url", "match"),
    [
        pytest.param("/a\tb", "control", id="tab"),
        pytest.param("mailto:someone@example.invalid", "absolute", id="mailto"),
        pytest.param("localhost:8000/path", "absolute", id="host-as-scheme"),
        pytest.param(":path", "absolute", id="colon"),
        pytest.param("//exa mple.com/path", "host", id="scheme-relative-host"),
    ],
)
async def test_bad_relative_urls_arerefused_at_the_call(
    server: LocalServer, url: str, match: str
) -> None:
    """With a base_url, a relative URL httpx would misread or refuse raises at the call."""
    client = AsyncResilientClient(base_url=server.url)
    with anyio.fail_after(10):
        async with _observing(client, server) as observed:
            await refused_at_the_call(observed, ValueError, match, url)
            await observed.submit("GET", "/relative-ok")
            results = await observed.check()
    assert [200, 200] == [r.status_code for r in results]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"X Bad": "v"}, id="name-space"),
        pytest.param({"X-Note": None}, id="value-none"),
        pytest.param(5, id="int"),
    ],
)
def test_bad_client_wide_headers_are_refused_at_construction(headers: Any) -> None:
    """Client-wide headers get the same checks, when the client is built."""
    with pytest.raises((TypeError, ValueError), match="headers"):
        AsyncResilientClient(headers=headers)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        pytest.param({"cookies": {"session": PASTED_TOKEN}}, "cookies", id="cookie-nbsp"),
        pytest.param({"cookies": "x"}, "cookies", id="cookies-str"),
        pytest.param({"params": 5}, "params", id="params-int"),
        pytest.param({"auth": "x"}, "auth", id="auth-str"),
    ],
)
def test_bad_client_wide_cookies_params_and_auth_are_refused_at_construction(
    options: dict[str, Any], match: str
) -> None:
    """A bad client-wide value would fail every request: it is refused when the client is built."""
    with pytest.raises((TypeError, ValueError), match=match) as excinfo:
        AsyncResilientClient(**options)
    assert CANARY not in str(excinfo.value)


async def test_url_errors_redact_the_client_s_own_sensitive_keys(observed: Observed) -> None:
    """A key declared in ``sensitive_query_keys`` is redacted in the call-site URL errors too."""
    async with AsyncResilientClient(sensitive_query_keys=["session_ref"]) as client:
        with pytest.raises(ValueError, match="url") as excinfo:
            await client.get(f"ftp://127.0.0.1/x?session_ref={CANARY}")
    assert CANARY not in str(excinfo.value)
    assert "session_ref=[REDACTED]" in str(excinfo.value)


def test_httpcore_debug_trace_redacts_the_client_s_own_sensitive_headers(
    trace_logs: pytest.LogCaptureFixture,
) -> None:
    """A header declared in ``sensitive_headers`` is redacted in httpcore's response-head trace."""
    AsyncResilientClient(sensitive_headers=["X-Session-Ref"])
    head = (b"HTTP/1.1", 200, b"OK", [(b"X-Session-Ref", CANARY.encode()), (b"X-Other", b"v")])
    # httpcore's _trace.py logs preformatted messages, this shape.
    logging.getLogger("httpcore.http11").debug(
        f"receive_response_headers.complete return_value={head!r}"
    )
    (message,) = [r.getMessage() for r in trace_logs.records if r.name == "httpcore.http11"]
    assert CANARY not in message
    assert "(b'X-Session-Ref', b'[REDACTED]')" in message
    assert "(b'X-Other', b'v')" in message
