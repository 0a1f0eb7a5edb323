"""
Reliability: security (RELIABILITY.md, "Security").

Redirects that change origin or leave https strip ``Authorization``, ``Proxy-Authorization``,
``Cookie``, ``X-Api-Key`` and user-declared sensitive headers (checked at the second server, over
real loopback sockets, and as a property of ``RedirectGuard`` over random header sets and origin
pairs); same-origin redirects keep them. 301/302/303 after a POST become a GET without a body.
URL credentials, sensitive query values and sensitive headers never show in results, events,
reprs, stats or the library's logs. TLS verification is on unless ``verify=False`` is passed;
environment proxies are honoured by default, as httpx does (see the report).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import anyio
import httpx
import pytest
from anyio.abc import SocketAttribute, SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.tls import TLSStream
from hypothesis import given, settings
from hypothesis import strategies as st

from typed_async_client import (
    AsyncResilientClient,
    Backoff,
    EventType,
    RequestContext,
    RequestStatus,
    RetryPolicy,
)
from typed_async_client._redact import SENSITIVE_HEADERS, RedirectGuard, start_attempt
from typed_async_client.testing import LocalServer

from .conftest import CANARY, FINAL_EVENTS, POOL, Observed

pytestmark = pytest.mark.anyio

PROPERTY = settings(derandomize=True, database=None, deadline=None, max_examples=150)

#: Every header the client must treat as secret here, with a planted canary in its value.
SECRETS = {
    "Authorization": f"Bearer {CANARY}",
    "Proxy-Authorization": f"Basic {CANARY}",
    "Cookie": f"session={CANARY}",
    "X-Api-Key": CANARY,
    "X-Secret": CANARY,  # declared through sensitive_headers
}
SECRET_NAMES = frozenset(name.lower() for name in SECRETS)
PUBLIC = {"X-Public": "visible"}


def _limits() -> httpx.Limits:
    return httpx.Limits(max_connections=POOL, max_keepalive_connections=POOL)


def _redirecting_client(**options: Any) -> AsyncResilientClient:
    return AsyncResilientClient(
        limits=_limits(),
        timeout=5.0,
        follow_redirects=True,
        sensitive_headers=["X-Secret"],
        event_queue_size=10_000,
        **options,
    )


@asynccontextmanager
async def _observing(client: AsyncResilientClient, server: LocalServer) -> AsyncIterator[Observed]:
    async with client:
        observed = Observed(client=client, server=server)
        for event_type in EventType:
            client.add_event_callback(event_type, observed.events.append)
        yield observed


def _headers_at(server: LocalServer, path: str) -> list[dict[str, str]]:
    return [dict(r.headers) for r in server.requests if r.path == path]


def _redirect(origin: LocalServer, to: str, code: int) -> str:
    return origin.url_for(f"/redirect?code={code}&to={quote(to, safe='')}")


# -- redirects across origins -----------------------------------------------------------------


async def test_cross_origin_redirect_strips_every_sensitive_header(
    server: LocalServer, debug_logs: pytest.LogCaptureFixture
) -> None:
    """A redirect to another port strips every sensitive header, the jar's cookie included."""
    client = _redirecting_client(cookies={"jar": CANARY})
    with anyio.fail_after(15):
        async with LocalServer() as other, _observing(client, server) as observed:
            for code, method in ((301, "GET"), (302, "GET"), (307, "PUT"), (308, "DELETE")):
                target = other.url_for(f"/landed/{code}")
                await observed.submit(
                    method, _redirect(server, target, code), headers={**SECRETS, **PUBLIC}
                )
            results = await observed.check(debug_logs)
            landed = {code: _headers_at(other, f"/landed/{code}") for code in (301, 302, 307, 308)}
    assert [200] * 4 == [r.status_code for r in results]
    for code, requests in landed.items():
        assert 1 == len(requests), code
        assert set() == SECRET_NAMES & set(requests[0]), code
        assert "visible" == requests[0]["x-public"]
    # They did reach the first server: they were sent, then withheld from the second.
    for sent in _headers_at(server, "/redirect"):
        assert SECRET_NAMES <= set(sent)


async def test_same_origin_redirect_keeps_sensitive_headers(server: LocalServer) -> None:
    """A redirect within the origin keeps the secrets; httpx rebuilds Cookie from the jar."""
    client = _redirecting_client(cookies={"jar": "from-the-jar"})
    with anyio.fail_after(15):
        async with _observing(client, server) as observed:
            for code in (302, 307):
                await observed.submit(
                    "GET", _redirect(server, f"/same/{code}", code), headers={**SECRETS, **PUBLIC}
                )
            results = await observed.check()
    assert [200, 200] == [r.status_code for r in results]
    for code in (302, 307):
        (landed,) = _headers_at(server, f"/same/{code}")
        kept = {name: landed[name.lower()] for name in SECRETS if name != "Cookie"}
        assert {name: value for name, value in SECRETS.items() if name != "Cookie"} == kept
        # httpx drops a per-request Cookie header on every redirect and sends the jar's instead.
        assert "jar=from-the-jar" == landed["cookie"]


@dataclass
class TlsOrigin:
    """A one-route https server answering every request with a redirect to ``location``."""

    url: str = ""
    heads: list[bytes] = field(default_factory=list)


@asynccontextmanager
async def _tls_origin(server_context: ssl.SSLContext, location: str) -> AsyncIterator[TlsOrigin]:
    origin = TlsOrigin()
    reply = (
        f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n"
        "Connection: close\r\n\r\n"
    ).encode("latin-1")

    async def serve(stream: SocketStream) -> None:
        async with stream:
            try:
                tls = await TLSStream.wrap(
                    stream, server_side=True, ssl_context=server_context, standard_compatible=False
                )
                async with tls:
                    head = await BufferedByteReceiveStream(tls).receive_until(b"\r\n\r\n", 65536)
                    origin.heads.append(head)
                    await tls.send(reply)
            except (OSError, anyio.BrokenResourceError, anyio.EndOfStream, anyio.IncompleteRead):
                return  # a client that refused the certificate, or hung up

    async with (
        await anyio.create_tcp_listener(local_host="127.0.0.1") as listener,
        anyio.create_task_group() as tg,
    ):
        origin.url = f"https://127.0.0.1:{listener.extra(SocketAttribute.local_port)}"
        tg.start_soon(listener.serve, serve)
        try:
            yield origin
        finally:
            tg.cancel_scope.cancel()


@dataclass
class Certificates:
    """A local CA (trustme), a server context with its certificate, a client trusting it."""

    server: ssl.SSLContext
    trusting: ssl.SSLContext


@pytest.fixture
def certificates() -> Certificates:
    """Certificates for 127.0.0.1 from a throwaway CA."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    return Certificates(server=server, trusting=trusting)


async def test_https_to_http_redirect_strips_every_sensitive_header(
    server: LocalServer, certificates: Certificates
) -> None:
    """A redirect from a TLS origin to plain http strips the secrets before they leave."""
    client = _redirecting_client(verify=certificates.trusting)
    with anyio.fail_after(15):
        async with (
            _tls_origin(certificates.server, server.url_for("/downgraded")) as tls,
            _observing(client, server) as observed,
        ):
            await observed.submit("GET", tls.url + "/secure", headers={**SECRETS, **PUBLIC})
            (result,) = await observed.check()
    assert 200 == result.status_code
    assert 1 == len(tls.heads)
    for name in SECRET_NAMES:
        assert f"\r\n{name}:".encode() in tls.heads[0].lower()
    (landed,) = _headers_at(server, "/downgraded")
    assert set() == SECRET_NAMES & set(landed)
    assert "visible" == landed["x-public"]


@pytest.mark.parametrize(
    ("first", "second", "stripped"),
    [
        pytest.param("https://api.example/a", "http://api.example/b", True, id="https->http"),
        pytest.param("https://api.example:8443/a", "http://api.example:8443/b", True, id="port"),
        pytest.param("https://api.example/a", "https://api.example/b", False, id="same"),
        pytest.param("https://api.example/a", "https://API.example:443/b", False, id="case"),
        pytest.param("http://api.example/a", "https://api.example/b", True, id="upgrade"),
        pytest.param("https://api.example/a", "https://cdn.example/b", True, id="host"),
    ],
)
async def test_redirect_guard_on_scheme_and_origin_changes(
    first: str, second: str, stripped: bool
) -> None:
    """The guard strips on https->http and origin changes (an http->https upgrade included)."""
    guard = RedirectGuard(SENSITIVE_HEADERS | {"x-secret"})
    start_attempt()
    hop1 = httpx.Request("GET", first, headers={**SECRETS, **PUBLIC})
    hop2 = httpx.Request("GET", second, headers={**SECRETS, **PUBLIC})
    await guard(hop1)
    await guard(hop2)
    assert SECRET_NAMES <= set(hop1.headers)
    expected = {"x-public"} if stripped else SECRET_NAMES | {"x-public"}
    assert expected == set(hop2.headers) - {"host"}


NAME_POOL = [*sorted(SENSITIVE_HEADERS), "x-secret", "x-public", "accept", "user-agent", "x-trace"]


@st.composite
def header_sets(draw: st.DrawFn) -> list[tuple[str, str]]:
    """Header pairs drawn from a pool of names, secrets included, in random letter case."""
    names = draw(st.lists(st.sampled_from(NAME_POOL), min_size=0, max_size=8))
    pairs = []
    for index, name in enumerate(names):
        flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
        cased = "".join(c.upper() if flip else c for c, flip in zip(name, flips, strict=True))
        pairs.append((cased, f"value-{index}"))
    return pairs


origins = st.tuples(
    st.sampled_from(["http", "https"]),
    st.sampled_from(["a.example", "b.example", "127.0.0.1", "A.Example"]),
    st.sampled_from([None, 80, 443, 8080]),
)


def _url(origin: tuple[str, str, int | None]) -> str:
    scheme, host, port = origin
    return f"{scheme}://{host}{'' if port is None else f':{port}'}/path"


def _normalized(origin: tuple[str, str, int | None]) -> tuple[str, str, int]:
    scheme, host, port = origin
    return scheme, host.lower(), port or (443 if scheme == "https" else 80)


@given(headers=header_sets(), first=origins, second=origins)
@PROPERTY
async def test_redirect_guard_property(
    headers: list[tuple[str, str]],
    first: tuple[str, str, int | None],
    second: tuple[str, str, int | None],
) -> None:
    """Over random headers and origins, a second hop keeps secrets only within the origin."""
    guard = RedirectGuard(SENSITIVE_HEADERS | {"x-secret"})
    start_attempt()
    hop1 = httpx.Request("GET", _url(first), headers=headers)
    hop2 = httpx.Request("GET", _url(second), headers=headers)
    await guard(hop1)
    await guard(hop2)
    sensitive = SENSITIVE_HEADERS | {"x-secret"}
    leaves = _normalized(first) != _normalized(second) or (
        first[0] == "https" and second[0] != "https"
    )
    given_pairs = [(k.lower(), v) for k, v in headers]
    assert given_pairs == [(k.lower(), v) for k, v in hop1.headers.multi_items() if k != "host"]
    expected = [(k, v) for k, v in given_pairs if not (leaves and k in sensitive)]
    assert expected == [(k.lower(), v) for k, v in hop2.headers.multi_items() if k != "host"]


# -- POST redirects ---------------------------------------------------------------------------


async def test_post_redirects_301_302_303_become_get_without_body(observed: Observed) -> None:
    """After a POST, 301/302/303 redirect as a bodiless GET; 307/308 resend the POST as is."""
    server = observed.server
    with anyio.fail_after(15):
        for code in (301, 302, 303, 307, 308):
            await observed.submit(
                "POST",
                _redirect(server, f"/after/{code}", code),
                content=b"the-body",
                follow_redirects=True,
            )
        results = await observed.check()
    assert [200] * 5 == [r.status_code for r in results]
    for code, result in zip((301, 302, 303, 307, 308), results, strict=True):
        (landed,) = [r for r in server.requests if r.path == f"/after/{code}"]
        echoed = result.response.json()  # type: ignore[union-attr]
        headers = dict(landed.headers)
        if code in (301, 302, 303):
            assert ("GET", "") == (landed.method, echoed["body"])
            assert set() == {"content-length", "transfer-encoding"} & set(headers)
        else:
            assert ("POST", "the-body") == (landed.method, echoed["body"])
            assert "8" == headers["content-length"]


# -- redaction --------------------------------------------------------------------------------


async def test_url_credentials_and_query_secrets_are_redacted_everywhere(
    server: LocalServer, refused_url: str, debug_logs: pytest.LogCaptureFixture
) -> None:
    """Credentials and sensitive query values never show in results, events, reprs or logs."""
    client = _redirecting_client(sensitive_query_keys=["Session"])
    query = f"token={CANARY}&session={CANARY}&api_key={CANARY}&page=2"

    def with_secrets(url: str) -> str:
        return (
            url.replace("http://", f"http://user:{CANARY}@") + ("&" if "?" in url else "?") + query
        )

    policy = RetryPolicy.transient(backoff=Backoff(base=0.0, cap=0.0))
    with anyio.fail_after(15):
        async with _observing(client, server) as observed:
            await observed.submit("GET", with_secrets(server.url_for("/ok")))
            await observed.submit(
                "GET", with_secrets(refused_url), context=RequestContext(max_retries=2)
            )
            await observed.submit(
                "GET",
                with_secrets(server.url_for("/sequence/r?codes=503,200")),
                retry_policy=policy,
            )
            await observed.submit("GET", with_secrets(server.url_for("/drop")), retry_policy=policy)
            results = await observed.check(debug_logs)
    statuses = [(r.status, r.status_code) for r in results]
    assert [
        (RequestStatus.SUCCESS, 200),
        (RequestStatus.ERROR, None),
        (RequestStatus.SUCCESS, 200),
        (RequestStatus.ERROR, None),
    ] == statuses
    for result in results:
        assert result.url.startswith("http://[REDACTED]@127.0.0.1:")
        assert result.url.endswith("token=[REDACTED]&session=[REDACTED]&api_key=[REDACTED]&page=2")
    ids = {r.request_id for r in results}
    finals = [
        e for e in observed.events if e.event_type in FINAL_EVENTS and e.context.request_id in ids
    ]
    assert {r.url for r in results} == {e.data["url"] for e in finals}
    assert any("retrying in" in r.getMessage() for r in debug_logs.records)
    # The credentials were used: the server saw them as Basic auth.
    assert all("authorization" in dict(r.headers) for r in server.requests if r.path == "/ok")


async def test_sensitive_headers_are_sent_but_never_shown(
    server: LocalServer, debug_logs: pytest.LogCaptureFixture
) -> None:
    """Secret headers, per request or client-wide, reach the server and show nowhere else."""
    client = _redirecting_client(headers={"X-Api-Key": CANARY})
    with anyio.fail_after(15):
        async with _observing(client, server) as observed:
            await observed.submit("GET", server.url_for("/h"), headers=SECRETS)
            await observed.submit("GET", server.url_for("/drop"), headers=SECRETS)
            results = await observed.check(debug_logs)
    assert [RequestStatus.SUCCESS, RequestStatus.ERROR] == [r.status for r in results]
    (sent,) = _headers_at(server, "/h")
    assert {name.lower(): value for name, value in SECRETS.items()} == {
        name: sent[name] for name in SECRET_NAMES
    }


async def test_httpx_log_lines_do_not_show_url_secrets(
    observed: Observed, caplog: pytest.LogCaptureFixture
) -> None:
    """With httpx's INFO logging on, no log record shows the URL's secrets."""
    caplog.set_level(logging.INFO, logger="httpx")
    url = observed.server.url_for(f"/log?token={CANARY}").replace("http://", f"http://u:{CANARY}@")
    with anyio.fail_after(10):
        await observed.submit("GET", url)
        await observed.check(caplog)


async def test_requests_through_http_client_keep_their_headers(server: LocalServer) -> None:
    """Two plain requests to two origins through client.http_client both carry their headers."""
    with anyio.fail_after(15):
        async with LocalServer() as other, _redirecting_client() as client:
            await client.http_client.get(server.url_for("/first"), headers=SECRETS)
            await client.http_client.get(other.url_for("/second"), headers=SECRETS)
    (first,) = _headers_at(server, "/first")
    (second,) = _headers_at(other, "/second")
    assert SECRET_NAMES <= set(first)
    assert SECRET_NAMES <= set(second)


# -- TLS verification and environment proxies -------------------------------------------------


async def test_tls_verification_is_on_unless_verify_false(
    server: LocalServer, certificates: Certificates
) -> None:
    """An untrusted certificate fails once, unretried; only verify=False lets it through."""
    policy = RetryPolicy.transient(backoff=Backoff(base=0.0, cap=0.0))
    with anyio.fail_after(15):
        async with _tls_origin(certificates.server, server.url_for("/landed")) as tls:
            async with _observing(_redirecting_client(), server) as strict:
                await strict.submit(
                    "GET",
                    tls.url + "/untrusted",
                    retry_policy=policy,
                    context=RequestContext(max_retries=5),
                )
                (refused,) = await strict.check()
            assert [] == tls.heads
            async with _observing(_redirecting_client(verify=False), server) as lax:
                await lax.submit("GET", tls.url + "/opted-out")
                (accepted,) = await lax.check()
    assert isinstance(refused.error, httpx.ConnectError)
    chain: list[BaseException] = []
    cause: BaseException | None = refused.error
    while cause is not None and len(chain) < 32:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    assert any(isinstance(c, ssl.SSLCertVerificationError) for c in chain)
    assert (RequestStatus.ERROR, 1) == (refused.status, refused.attempts)
    assert (RequestStatus.SUCCESS, 200) == (accepted.status, accepted.status_code)
    assert 1 == len(tls.heads)


async def test_environment_proxies_apply_only_with_trust_env(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY is ignored by default (unlike httpx) and followed with trust_env=True."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    with anyio.fail_after(15):
        async with LocalServer() as proxy:
            monkeypatch.setenv("HTTP_PROXY", proxy.url)
            async with _observing(_redirecting_client(), server) as default:
                await default.submit("GET", server.url_for("/direct"))
                await default.check()
            async with _observing(_redirecting_client(trust_env=True), proxy) as opted_in:
                await opted_in.submit("GET", server.url_for("/via-env"))
                await opted_in.check()
    assert (0, 1) == (proxy.hits["/direct"], server.hits["/direct"])
    assert (1, 0) == (proxy.hits["/via-env"], server.hits["/via-env"])
