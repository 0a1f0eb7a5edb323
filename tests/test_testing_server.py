"""
The fault routes of the loopback test server, checked with a plain httpx client on both backends.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import anyio
import httpx
import pytest

from typed_async_client.testing import FaultMix, LocalServer, instant_retries

pytestmark = pytest.mark.anyio

# A reset surfaces as ReadError on asyncio, and as ReadError or RemoteProtocolError on trio
# (docs/reliability.md, "Network faults").
_RESET_ERRORS: dict[str, tuple[type[httpx.HTTPError], ...]] = {
    "asyncio": (httpx.ReadError,),
    "trio": (httpx.ReadError, httpx.RemoteProtocolError),
}


def _client(*, follow_redirects: bool = False, max_redirects: int = 20) -> httpx.AsyncClient:
    """A plain httpx client that ignores proxy settings from the environment."""
    return httpx.AsyncClient(
        trust_env=False, follow_redirects=follow_redirects, max_redirects=max_redirects
    )


# -- /sequence ----------------------------------------------------------------------------------


async def test_sequence_gives_each_key_its_next_status(server: LocalServer) -> None:
    """Each key walks its own list of statuses and repeats the last one once the list is spent."""
    with anyio.fail_after(10):
        async with _client() as client:
            first = [
                (await client.get(server.url_for("/sequence/a?codes=503,429,200"))).status_code
                for _ in range(4)
            ]
            other = [
                (await client.get(server.url_for("/sequence/b?codes=500"))).status_code
                for _ in range(2)
            ]
            last = await client.get(server.url_for("/sequence/a?codes=503,429,200"))
    assert [503, 429, 200, 200] == first
    assert [500, 500] == other
    assert {"key": "a", "hit": 5, "status": 200} == last.json()
    assert {"a": 5, "b": 2} == dict(server.sequence_hits)
    assert 5 == server.hits["/sequence/a"]


@pytest.mark.parametrize(
    "raw",
    ["0", "-1", "1.5", "nan", "9999999999", "Wed, 21 Oct 2015 07:28:00 GMT", "soon", ""],
)
async def test_sequence_sends_raw_rate_limit_headers_on_failures(
    server: LocalServer, raw: str
) -> None:
    """Retry-After, RateLimit-Reset and X-RateLimit-Reset carry the raw values on non-2xx only."""
    value = quote(raw, safe="")
    query = f"codes=429,200&retry_after={value}&ratelimit_reset={value}&x_ratelimit_reset={value}"
    names = ["retry-after", "ratelimit-reset", "x-ratelimit-reset"]
    with anyio.fail_after(10):
        async with _client() as client:
            failed = await client.get(server.url_for(f"/sequence/k?{query}"))
            passed = await client.get(server.url_for(f"/sequence/k?{query}"))
    assert (429, 200) == (failed.status_code, passed.status_code)
    assert [raw, raw, raw] == [failed.headers.get(name) for name in names]
    assert [None, None, None] == [passed.headers.get(name) for name in names]


@pytest.mark.parametrize(
    "query",
    ["", "codes=", "codes=503,abc", "codes=99", "codes=600", "codes=503&retry_after=1%0d%0aX:1"],
)
async def test_sequence_rejects_bad_parameters_without_counting(
    server: LocalServer, query: str
) -> None:
    """Malformed codes or a header value with CR/LF get a 400 and leave the key's counter alone."""
    with anyio.fail_after(10):
        async with _client() as client:
            response = await client.get(server.url_for(f"/sequence/bad?{query}"))
    assert 400 == response.status_code
    assert 0 == server.sequence_hits["bad"]
    assert 1 == server.hits["/sequence/bad"]


async def test_sequence_no_content_keeps_the_connection_usable(server: LocalServer) -> None:
    """A 204 in a sequence has no body, so the next request on the same connection succeeds."""
    with anyio.fail_after(10):
        async with _client() as client:
            empty = await client.get(server.url_for("/sequence/n?codes=204"))
            after = await client.get(server.url_for("/after"))
    assert (204, b"") == (empty.status_code, empty.content)
    assert 200 == after.status_code
    assert 1 == server.connections


# -- connection faults -------------------------------------------------------------------------


async def test_reset_aborts_the_connection_without_a_response(
    server: LocalServer, anyio_backend: str
) -> None:
    """/reset reads the request, then answers with a RST: an httpx read or protocol error."""
    with anyio.fail_after(10):
        async with _client() as client:
            with pytest.raises(_RESET_ERRORS[anyio_backend]):
                await client.get(server.url_for("/reset"))
            after = await client.get(server.url_for("/after"))
    assert 200 == after.status_code
    assert (1, 2) == (server.hits["/reset"], server.connections)


async def test_drop_closes_the_connection_without_a_response(server: LocalServer) -> None:
    """/drop reads the request, then closes with a FIN: 'Server disconnected' from httpx."""
    with anyio.fail_after(10):
        async with _client() as client:
            with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
                await client.post(server.url_for("/drop"), content=b"payload")
            after = await client.get(server.url_for("/after"))
    assert 200 == after.status_code
    assert (1, 2) == (server.hits["/drop"], server.connections)


async def test_truncate_sends_fewer_bytes_than_announced(server: LocalServer) -> None:
    """/truncate/10?claimed=25 announces 25 bytes, sends 10, then closes: an incomplete body."""
    received = b""
    with anyio.fail_after(10):
        async with _client() as client:
            async with client.stream("GET", server.url_for("/truncate/10?claimed=25")) as response:
                assert "25" == response.headers["content-length"]
                with pytest.raises(httpx.RemoteProtocolError, match="complete message body"):
                    async for chunk in response.aiter_raw():
                        received += chunk
            after = await client.get(server.url_for("/after"))
    assert b"x" * 10 == received
    assert 200 == after.status_code


async def test_truncate_claims_one_more_byte_by_default(server: LocalServer) -> None:
    """Without claimed, /truncate/n announces n + 1 bytes."""
    with anyio.fail_after(10):
        async with (
            _client() as client,
            client.stream("GET", server.url_for("/truncate/0")) as response,
        ):
            assert "1" == response.headers["content-length"]
            with pytest.raises(httpx.RemoteProtocolError):
                await response.aread()


@pytest.mark.parametrize("path", ["/truncate/10?claimed=10", "/truncate/10?claimed=x"])
async def test_truncate_rejects_a_claim_not_above_the_size(server: LocalServer, path: str) -> None:
    """A claimed length that is not larger than what is sent gets a 400."""
    with anyio.fail_after(10):
        async with _client() as client:
            response = await client.get(server.url_for(path))
    assert 400 == response.status_code


# -- slow and large bodies ---------------------------------------------------------------------


async def test_drip_sends_the_whole_body_byte_by_byte(server: LocalServer) -> None:
    """/drip/5 completes with its five announced bytes and keeps the connection alive."""
    with anyio.fail_after(10):
        async with _client() as client:
            response = await client.get(server.url_for("/drip/5?interval=0.01"))
            after = await client.get(server.url_for("/after"))
    assert (200, "5", b"xxxxx") == (
        response.status_code,
        response.headers["content-length"],
        response.content,
    )
    assert 200 == after.status_code
    assert 1 == server.connections


@pytest.mark.parametrize(
    "path",
    [
        "/drip/10001",
        "/drip/-1",
        "/drip/5?interval=5.1",
        "/drip/5?interval=-0.1",
        "/drip/5?interval=nan",
        "/drip/5?interval=inf",
    ],
)
async def test_drip_rejects_out_of_bounds_parameters(server: LocalServer, path: str) -> None:
    """More than 10,000 bytes or an interval outside 0 to 5 seconds gets a 400."""
    with anyio.fail_after(10):
        async with _client() as client:
            response = await client.get(server.url_for(path))
    assert 400 == response.status_code


async def test_big_sends_the_announced_number_of_bytes(server: LocalServer) -> None:
    """/big/n answers n bytes, and HEAD announces them without a body."""
    size = 200_003
    with anyio.fail_after(10):
        async with _client() as client:
            response = await client.get(server.url_for(f"/big/{size}"))
            head = await client.head(server.url_for(f"/big/{size}"))
            empty = await client.get(server.url_for("/big/0"))
    assert (200, str(size), size) == (
        response.status_code,
        response.headers["content-length"],
        len(response.content),
    )
    assert (str(size), b"") == (head.headers["content-length"], head.content)
    assert b"" == empty.content
    assert 1 == server.connections


async def test_big_rejects_more_than_64_mib(server: LocalServer) -> None:
    """A size over 64 MiB gets a 400 instead of a body."""
    with anyio.fail_after(10):
        async with _client() as client:
            response = await client.get(server.url_for(f"/big/{64 * 1024 * 1024 + 1}"))
    assert 400 == response.status_code


async def test_gzip_bomb_decodes_to_zero_bytes(server: LocalServer) -> None:
    """/gzip-bomb/n sends a small gzip body that httpx decodes to n zero bytes."""
    size = 300_000
    with anyio.fail_after(10):
        async with _client() as client:
            decoded = await client.get(server.url_for(f"/gzip-bomb/{size}"))
            async with client.stream("GET", server.url_for(f"/gzip-bomb/{size}")) as raw:
                compressed = b"".join([chunk async for chunk in raw.aiter_raw()])
    assert (200, "gzip") == (decoded.status_code, decoded.headers["content-encoding"])
    assert bytes(size) == decoded.content
    assert str(len(compressed)) == raw.headers["content-length"]
    assert len(compressed) < size // 100
    assert bytes(size) == gzip.decompress(compressed)


async def test_gzip_bomb_rejects_more_than_1_gib(server: LocalServer) -> None:
    """A decoded size over 1 GiB gets a 400."""
    with anyio.fail_after(10):
        async with _client() as client:
            response = await client.get(server.url_for(f"/gzip-bomb/{(1 << 30) + 1}"))
    assert 400 == response.status_code


# -- redirects ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "expected"), [("", 302), ("301", 301), ("307", 307)])
async def test_redirect_points_to_the_given_url(
    server: LocalServer, code: str, expected: int
) -> None:
    """/redirect answers the chosen code (302 by default) with the url-decoded Location."""
    target = "http://127.0.0.1:1/somewhere?a=1&b=2"
    query = f"to={quote(target, safe='')}" + (f"&code={code}" if code else "")
    with anyio.fail_after(10):
        async with _client() as client:
            response = await client.get(server.url_for(f"/redirect?{query}"))
    assert (expected, target) == (response.status_code, response.headers["location"])


async def test_redirect_is_followed_to_the_same_server(server: LocalServer) -> None:
    """A client that follows redirects ends at the Location on the same server."""
    query = f"to={quote(server.url_for('/landing'), safe='')}&code=303"
    with anyio.fail_after(10):
        async with _client(follow_redirects=True) as client:
            response = await client.post(server.url_for(f"/redirect?{query}"), content=b"x")
    assert (200, "/landing", "GET") == (
        response.status_code,
        response.json()["path"],
        response.json()["method"],
    )
    assert (1, 1) == (server.hits["/redirect"], server.hits["/landing"])


async def test_redirect_without_a_target_loops_on_itself(server: LocalServer) -> None:
    """/redirect without to points to itself, so following it ends in TooManyRedirects."""
    with anyio.fail_after(10):
        async with _client(follow_redirects=True, max_redirects=3) as client:
            with pytest.raises(httpx.TooManyRedirects):
                await client.get(server.url_for("/redirect?code=307"))
    assert 4 == server.hits["/redirect"]


@pytest.mark.parametrize("query", ["to=%2Fa&code=200", "to=%2Fa&code=abc", "to=%2Fa%0d%0aX:1"])
async def test_redirect_rejects_bad_parameters(server: LocalServer, query: str) -> None:
    """A code that is not a redirect or a Location with CR/LF gets a 400."""
    with anyio.fail_after(10):
        async with _client() as client:
            response = await client.get(server.url_for(f"/redirect?{query}"))
    assert 400 == response.status_code


# -- refusing connections ----------------------------------------------------------------------


async def test_stop_listening_refuses_then_start_listening_recovers(server: LocalServer) -> None:
    """New connections are refused while stopped, then served again on the same port."""
    port = server.port
    refusing = [server.refusing]
    with anyio.fail_after(10):
        async with _client() as kept, _client() as fresh:
            assert 200 == (await kept.get(server.url_for("/kept"))).status_code
            await server.stop_listening()
            await server.stop_listening()
            refusing.append(server.refusing)
            with pytest.raises(httpx.ConnectError):
                await fresh.get(server.url_for("/fresh"))
            # The connection accepted before is not affected.
            assert 200 == (await kept.get(server.url_for("/kept"))).status_code
            await server.start_listening()
            await server.start_listening()
            refusing.append(server.refusing)
            assert 200 == (await fresh.get(server.url_for("/fresh"))).status_code
    assert [False, True, False] == refusing
    assert port == server.port
    assert (2, 1, 2) == (server.hits["/kept"], server.hits["/fresh"], server.connections)


async def test_leaving_the_block_while_refusing_releases_the_port() -> None:
    """A server left while refusing frees its reserved port, which can be listened on again."""
    with anyio.fail_after(10):
        async with LocalServer() as server:
            await server.stop_listening()
        port = server.port
        async with LocalServer(port=port) as again, _client() as client:
            response = await client.get(again.url_for("/again"))
    assert (port, 200) == (again.port, response.status_code)


async def test_listening_toggles_need_a_running_server() -> None:
    """stop_listening and start_listening outside the block raise RuntimeError."""
    server = LocalServer()
    with anyio.fail_after(10):
        with pytest.raises(RuntimeError, match="not running"):
            await server.stop_listening()
        with pytest.raises(RuntimeError, match="not running"):
            await server.start_listening()
    assert not server.refusing


# -- what reached the server -------------------------------------------------------------------


async def test_requests_records_method_path_and_headers(server: LocalServer) -> None:
    """Each request that reached the server is recorded, even when the answer is a fault."""
    with anyio.fail_after(10):
        async with _client() as client:
            await client.post(server.url_for("/orders?x=1"), content=b"{}", headers={"K": "v1"})
            with pytest.raises(httpx.RemoteProtocolError):
                await client.post(server.url_for("/drop"), content=b"{}")
    assert ["POST", "POST"] == [request.method for request in server.requests]
    method, path, headers = server.requests[0]
    assert ("POST", "/orders") == (method, path)
    assert ("k", "v1") in headers
    assert ("content-length", "2") in headers
    assert ("POST", "/drop") == (server.requests[1].method, server.requests[1].path)
    assert 1 == sum(1 for request in server.requests if request[:2] == ("POST", "/drop"))


async def test_requests_keeps_only_the_latest() -> None:
    """The record keeps the last record_limit requests (1,000 by default)."""
    with anyio.fail_after(10):
        async with LocalServer(record_limit=3) as server, _client() as client:
            for index in range(5):
                await client.get(server.url_for(f"/r{index}"))
    assert ["/r2", "/r3", "/r4"] == [request.path for request in server.requests]
    assert 1000 == LocalServer().requests.maxlen
    assert 5 == sum(server.hits.values())


async def test_records_of_similar_requests_share_their_header_pairs(server: LocalServer) -> None:
    """Identical header pairs are stored once, so a full record of similar requests stays small."""
    with anyio.fail_after(10):
        async with _client() as client:
            for _ in range(3):
                await client.get(server.url_for("/same"))
    first, second, third = server.requests
    assert first.headers == third.headers
    assert all(a is b for a, b in zip(first.headers, second.headers, strict=True))
    assert first.path is third.path


def test_record_limit_must_not_be_negative() -> None:
    """A negative record_limit is a ValueError."""
    with pytest.raises(ValueError, match="record_limit"):
        LocalServer(record_limit=-1)


# Wrong types, typed as Any so that the calls reach the runtime checks.
_NOT_AN_INT: Any = "80"
_A_FLOAT: Any = 1.5


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: LocalServer(record_limit=-1), ValueError, "record_limit must be an int >= 0"),
        (lambda: LocalServer(port=65536), ValueError, "port must be an int >= 0 and <= 65535"),
        (lambda: LocalServer(port=_NOT_AN_INT), TypeError, "port must be an int, got str"),
        (lambda: FaultMix(reset=1.5), ValueError, "reset must be a finite number >= 0 and <= 1"),
        (lambda: FaultMix(drop=True), TypeError, "drop must be a number, got bool"),
        (lambda: FaultMix(seed=_A_FLOAT), TypeError, "seed must be an int, got float"),
        (lambda: FaultMix(delay_seconds=61), ValueError, "delay_seconds must be a finite number"),
        (lambda: FaultMix().draws(-1), ValueError, "count must be an int >= 0, got -1"),
        (
            lambda: instant_retries(max_attempts=0).__enter__(),
            ValueError,
            "max_attempts must be an int >= 1 or None, got 0",
        ),
    ],
)
def test_numeric_arguments_are_refused_in_the_one_message_format(
    build: Callable[[], object], error: type[Exception], message: str
) -> None:
    """The testing helpers check their numbers like the client does: name, rule, value."""
    with pytest.raises(error, match=re.escape(message)):
        build()


async def test_existing_routes_answer_as_before(server: LocalServer) -> None:
    """/status, /close and the echo route behave as before the fault routes were added."""
    with anyio.fail_after(10):
        async with _client() as client:
            status = await client.get(server.url_for("/status/503?retry_after=7"))
            closed = await client.get(server.url_for("/close"))
            echo = await client.get(server.url_for("/sequence?codes=500"))
    assert (503, "7") == (status.status_code, status.headers["retry-after"])
    assert "close" == closed.headers["connection"]
    assert (200, "/sequence") == (echo.status_code, json.loads(echo.content)["path"])


async def test_status_no_content_keeps_the_connection_usable(server: LocalServer) -> None:
    """/status/204 sends no body, so the next request on the same connection succeeds."""
    with anyio.fail_after(10):
        async with _client() as client:
            empty = await client.get(server.url_for("/status/204"))
            after = await client.get(server.url_for("/after"))
    assert (204, b"", 200) == (empty.status_code, empty.content, after.status_code)
    assert 1 == server.connections
