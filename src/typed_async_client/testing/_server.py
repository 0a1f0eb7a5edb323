"""
A small HTTP/1.1 server on anyio listeners, for tests, examples and demos.

It runs inside the caller's event loop (asyncio or trio) as an async context manager, or as a
process (``python -m typed_async_client.testing``). Routes:

* ``/status/{code}``: answer with that status (``?retry_after=N`` adds a ``Retry-After``);
* ``/delay/{seconds}``: wait, then answer like the default route;
* ``/close``: answer, then close the connection (``Connection: close``);
* ``/sequence/{key}?codes=503,503,200``: each request to ``key`` (the path segment as sent) gets
  the next status of the list, the last one repeating once the list is spent (counted in
  :attr:`LocalServer.sequence_hits`); ``retry_after``, ``ratelimit_reset`` and
  ``x_ratelimit_reset`` set ``Retry-After``, ``RateLimit-Reset`` and ``X-RateLimit-Reset`` to
  their raw (url-decoded) values on the non-2xx answers;
* ``/reset``: read the request, then abort the connection with a RST and no response byte;
* ``/drop``: read the request, then close the connection cleanly (FIN) with no response byte;
* ``/drip/{n}?interval=0.3``: announce ``n`` bytes (at most 10,000), then send them one at a
  time, each after a pause of ``interval`` seconds (at most 5);
* ``/truncate/{n}?claimed=m``: announce ``m`` bytes (default ``n + 1``), send ``n``, then close;
* ``/redirect?to=URL&code=302``: a redirect (301, 302, 303, 307 or 308) to ``to``; without
  ``to`` it redirects to itself, a redirect loop;
* ``/big/{n}``: a body of ``n`` bytes (at most 64 MiB), streamed in small chunks;
* ``/gzip-bomb/{n}``: a gzip body (``Content-Encoding: gzip``) that decodes to ``n`` zero bytes
  (at most 1 GiB), built once per size;
* ``/mix`` and ``/mix/{anything}``: with a :class:`FaultMix` (``LocalServer(fault_mix=...)``),
  each request gets a fault drawn from the mix's seeded random sequence (counted in
  :attr:`LocalServer.fault_counts`), else the default route's answer;
* anything else: ``200`` with a JSON echo of the request (method, path, query, headers, body).

A malformed parameter of the fault routes gets a ``400`` with a JSON error; an answer with a
``1xx``, ``204`` or ``304`` status carries no body. Every request that reaches the server is
counted per path in :attr:`LocalServer.hits` and recorded in :attr:`LocalServer.requests`.
:meth:`LocalServer.stop_listening` and :meth:`LocalServer.start_listening` make the port refuse
connections, then accept them again.
"""

from __future__ import annotations

import functools
import json
import math
import random
import re
import socket
import struct
import sys
import zlib
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import ClassVar, Final, NamedTuple
from urllib.parse import parse_qsl, urlsplit

import anyio
from anyio.abc import SocketAttribute, SocketStream, TaskGroup, TaskStatus
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.stapled import MultiListener

_MAX_HEAD: Final[int] = 64 * 1024
_MAX_BODY: Final[int] = 16 * 1024 * 1024
_MAX_DELAY: Final[float] = 60.0
_MAX_DRIP_BYTES: Final[int] = 10_000
_MAX_DRIP_INTERVAL: Final[float] = 5.0
_MAX_BIG: Final[int] = 64 * 1024 * 1024
_MAX_CLAIMED: Final[int] = 1 << 40
_MAX_BOMB: Final[int] = 1 << 30
_BOMB_IN_THREAD: Final[int] = 16 << 20
_BOMB_BLOCK: Final[int] = 1 << 20
_MAX_SEQUENCE: Final[int] = 1_000
_RECORD_LIMIT: Final[int] = 1_000
_KNOWN_PAIRS: Final[int] = 4_096
# How long a connection closed with a FIN waits for the client's own close, so that the bytes
# already sent are not lost to a RST.
_LINGER: Final[float] = 2.0
_CHUNK: Final[bytes] = b"x" * (64 * 1024)
_LINGER_ZERO: Final[bytes] = struct.pack("HH" if sys.platform == "win32" else "ii", 1, 0)
_DIGITS: Final[re.Pattern[str]] = re.compile(r"[0-9]{1,15}")
_REDIRECT_CODES: Final[frozenset[int]] = frozenset({301, 302, 303, 307, 308})
_REASONS: Final[dict[int, str]] = {
    200: "OK",
    201: "Created",
    204: "No Content",
    301: "Moved Permanently",
    302: "Found",
    303: "See Other",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    400: "Bad Request",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class _BadRequest(Exception):
    pass


@dataclass(frozen=True)
class FaultMix:
    """
    A seeded random mix of faults for the ``/mix`` routes of a :class:`LocalServer`.

    Each field but ``seed`` and ``delay_seconds`` is the probability that a request gets that
    fault; the rest of the time (``1 - total``) it gets a normal answer, counted as ``"ok"``.
    The server draws one fault per request from ``random.Random(seed)``, in the order the
    requests reach it: for a given seed, the ``n``-th request to a ``/mix`` route always gets
    the ``n``-th fault of :meth:`draws`, whatever its path, method or connection. Only the
    order in which concurrent requests arrive can vary, not the sequence.

    Attributes:
        seed: the seed of the server's random generator.
        reset: abort the connection with a RST, no response byte (``/reset``).
        drop: close the connection with a FIN, no response byte (``/drop``).
        truncate: announce the echo's length plus 100 bytes, send half of the echo, then close
            (an incomplete body).
        status_500: answer ``500 Internal Server Error``.
        status_503: answer ``503 Service Unavailable``.
        status_429: answer ``429 Too Many Requests`` (no ``Retry-After``).
        delay: wait ``delay_seconds``, then answer normally.
        close: answer normally, then close the connection (``Connection: close``).
        delay_seconds: the wait of the ``delay`` fault, in seconds (at most 60).

    Raises:
        ValueError: a probability outside ``[0, 1]`` or NaN, probabilities adding up to more
            than 1, or a negative, NaN or too long ``delay_seconds``.
        TypeError: a field of the wrong type.
    """

    #: The fault kinds, in the order the draw walks them; ``"ok"`` is a normal answer.
    KINDS: ClassVar[tuple[str, ...]] = (
        "reset",
        "drop",
        "truncate",
        "status_500",
        "status_503",
        "status_429",
        "delay",
        "close",
    )

    seed: int = 0
    reset: float = 0.0
    drop: float = 0.0
    truncate: float = 0.0
    status_500: float = 0.0
    status_503: float = 0.0
    status_429: float = 0.0
    delay: float = 0.0
    close: float = 0.0
    delay_seconds: float = 0.05

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"seed must be an int, got {type(self.seed).__name__}")
        for kind in self.KINDS:
            value = getattr(self, kind)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{kind} must be a probability, got {type(value).__name__}")
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{kind} must be a probability from 0 to 1, got {value!r}")
        if self.total > 1.0 + 1e-9:
            raise ValueError(f"the probabilities add up to {self.total!r}, more than 1")
        seconds = self.delay_seconds
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise TypeError(f"delay_seconds must be a number, got {type(seconds).__name__}")
        if not 0.0 <= seconds <= _MAX_DELAY:
            raise ValueError(f"delay_seconds must be from 0 to {_MAX_DELAY}, got {seconds!r}")

    @property
    def total(self) -> float:
        """The probability that a request gets some fault (``"close"`` and ``"delay"`` count)."""
        return math.fsum(getattr(self, kind) for kind in self.KINDS)

    def draw(self, rng: random.Random) -> str:
        """The next fault kind (one of :attr:`KINDS`, or ``"ok"``), using one ``rng.random()``."""
        point = rng.random()
        threshold = 0.0
        for kind in self.KINDS:
            probability: float = getattr(self, kind)
            threshold += probability
            if probability and point < threshold:
                return kind
        return "ok"

    def draws(self, count: int) -> list[str]:
        """The faults the first ``count`` requests to a ``/mix`` route get, in order."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"count must be an int >= 0, got {count!r}")
        rng = random.Random(self.seed)
        return [self.draw(rng) for _ in range(count)]


class RecordedRequest(NamedTuple):
    """A request that reached a :class:`LocalServer`: method, path (no query), header pairs."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]


class LocalServer:
    """
    A loopback HTTP/1.1 server running in the current event loop.

    Use it as ``async with LocalServer() as server:`` and send requests to ``server.url``.
    Leaving the block stops the server and closes its connections.

    ``await server.stop_listening()`` closes the listening socket, so new connections are refused
    (``ECONNREFUSED``) while the connections already accepted go on; ``await
    server.start_listening()`` listens again on the same port. They are coroutines rather than a
    ``refusing`` setter so that the state holds as soon as they return; :attr:`refusing` tells
    the current state. While refusing, the port stays bound to a socket that does not listen, so
    no other program takes it meanwhile.

    Args:
        host: the loopback address to listen on (``127.0.0.1`` or ``::1``).
        port: the port; ``0`` picks a free one.
        record_limit: how many of the latest requests :attr:`requests` keeps.
        fault_mix: the faults of the ``/mix`` routes (see :class:`FaultMix`); without one they
            answer like the default route.

    Attributes:
        hits: the number of requests that reached each path (without the query).
        sequence_hits: the number of valid requests to each ``/sequence/{key}``, per key.
        requests: the latest requests that reached the server, oldest first.
        connections: the number of connections accepted.
        fault_counts: the number of ``/mix`` requests that got each fault kind (``"ok"`` for
            a normal answer) since the mix was set.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        record_limit: int = _RECORD_LIMIT,
        fault_mix: FaultMix | None = None,
    ) -> None:
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError(f"host must be a loopback address, got {host!r}")
        if record_limit < 0:
            raise ValueError(f"record_limit must be >= 0, got {record_limit!r}")
        self.host = host
        self.port = port
        self.hits: Counter[str] = Counter()
        self.sequence_hits: Counter[str] = Counter()
        self.requests: deque[RecordedRequest] = deque(maxlen=record_limit)
        self.connections = 0
        self.fault_counts: Counter[str] = Counter()
        self._fault_mix: FaultMix | None = None
        self._fault_rng = random.Random()
        self.set_fault_mix(fault_mix)
        self._tg: TaskGroup | None = None
        self._accept_scope: anyio.CancelScope | None = None
        self._accept_done: anyio.Event | None = None
        self._addresses: list[tuple[socket.AddressFamily, tuple[str, int]]] = []
        self._reserved: list[socket.socket] = []
        self._known_pairs: dict[tuple[str, str], tuple[str, str]] = {}

    @property
    def url(self) -> str:
        """The server's base URL, such as ``http://127.0.0.1:54321``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def refusing(self) -> bool:
        """Whether the server refuses new connections (after :meth:`stop_listening`)."""
        return self._tg is not None and self._accept_scope is None

    @property
    def fault_mix(self) -> FaultMix | None:
        """The fault mix of the ``/mix`` routes, if any."""
        return self._fault_mix

    def set_fault_mix(self, fault_mix: FaultMix | None) -> None:
        """
        Replace the fault mix (``None``: no faults): its sequence starts over from its seed and
        :attr:`fault_counts` is reset.
        """
        if fault_mix is not None and not isinstance(fault_mix, FaultMix):
            raise TypeError(f"fault_mix must be a FaultMix, got {type(fault_mix).__name__}")
        self._fault_mix = fault_mix
        self._fault_rng = random.Random(0 if fault_mix is None else fault_mix.seed)
        self.fault_counts = Counter()

    def url_for(self, path: str) -> str:
        """The absolute URL of ``path`` on this server."""
        return self.url + (path if path.startswith("/") else "/" + path)

    async def __aenter__(self) -> LocalServer:
        listener = await self._open_listener()
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        await self._start_accepting(listener)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None
        try:
            self._tg.cancel_scope.cancel()
            return await self._tg.__aexit__(exc_type, exc, tb)
        finally:
            self._tg = None
            self._accept_scope = None
            self._release_port()

    async def stop_listening(self) -> None:
        """
        Close the listening socket: new connections are refused until :meth:`start_listening`.

        Connections already accepted are served as before. Does nothing if already refusing.
        """
        if self._tg is None:
            raise RuntimeError("the server is not running")
        if self._accept_scope is None:
            return
        assert self._accept_done is not None
        self._accept_scope.cancel()
        self._accept_scope = None
        await self._accept_done.wait()
        self._reserve_port()

    async def start_listening(self) -> None:
        """
        Listen again on the same port after :meth:`stop_listening`.

        Does nothing if already listening. Raises ``OSError`` if the port cannot be bound again.
        """
        if self._tg is None:
            raise RuntimeError("the server is not running")
        if self._accept_scope is not None:
            return
        self._release_port()
        await self._start_accepting(await self._open_listener())

    async def _open_listener(self) -> MultiListener[SocketStream]:
        listener = await anyio.create_tcp_listener(local_host=self.host, local_port=self.port)
        self.port = listener.extra(SocketAttribute.local_port)
        self._addresses = []
        for each in listener.listeners:
            address = each.extra(SocketAttribute.local_address)
            if isinstance(address, tuple):
                self._addresses.append((each.extra(SocketAttribute.family), address[:2]))
        return listener

    async def _start_accepting(self, listener: MultiListener[SocketStream]) -> None:
        assert self._tg is not None
        self._accept_done = anyio.Event()
        self._accept_scope = await self._tg.start(self._accept, listener, self._accept_done)

    async def _accept(
        self,
        listener: MultiListener[SocketStream],
        done: anyio.Event,
        *,
        task_status: TaskStatus[anyio.CancelScope] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        assert self._tg is not None
        try:
            with anyio.CancelScope() as scope:
                async with listener:
                    task_status.started(scope)
                    # Connections run in the server's task group, so that closing the listener
                    # leaves them alone.
                    await listener.serve(self._serve_connection, task_group=self._tg)
        finally:
            done.set()

    def _reserve_port(self) -> None:
        # A bound socket that does not listen: connections get ECONNREFUSED, and the port is not
        # handed to anyone else meanwhile. Best effort: a failure only loses the reservation.
        for family, address in self._addresses:
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                if sys.platform != "win32":
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
            except OSError:
                sock.close()
            else:
                self._reserved.append(sock)

    def _release_port(self) -> None:
        while self._reserved:
            self._reserved.pop().close()

    async def _serve_connection(self, stream: SocketStream) -> None:
        self.connections += 1
        buffered = BufferedByteReceiveStream(stream)
        async with stream:
            try:
                while await self._serve_one(stream, buffered):
                    pass
            except (_BadRequest, anyio.EndOfStream, anyio.IncompleteRead):
                return
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                return

    async def _serve_one(self, stream: SocketStream, buffered: BufferedByteReceiveStream) -> bool:
        head = await buffered.receive_until(b"\r\n\r\n", _MAX_HEAD)
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ")
        except ValueError:
            raise _BadRequest(lines[0]) from None
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
        fields = dict(headers)
        body = await self._read_body(buffered, fields)
        path = urlsplit(target).path
        self.hits[path] = self.hits[path] + 1
        self._record(method, path, headers)
        keep_alive = version == "HTTP/1.1" and fields.get("connection", "").lower() != "close"
        if path == "/close":
            keep_alive = False
        if self._fault_mix is not None and (path == "/mix" or path.startswith("/mix/")):
            return await self._serve_mix(stream, method, target, headers, body, keep_alive)
        handled = await self._serve_fault(stream, method, target, keep_alive)
        if handled is not None:
            return handled
        status, extra, payload = await self._route(method, target, headers, body)
        await self._respond(stream, method, status, extra, payload, keep_alive=keep_alive)
        return keep_alive

    def _record(self, method: str, path: str, headers: list[tuple[str, str]]) -> None:
        # Records share their strings and header pairs with the previous ones (as long as the
        # table of known pairs has room), so that a full record of similar requests stays small
        # next to what the code under test keeps.
        pairs = self._known_pairs
        shared: list[tuple[str, str]] = []
        for pair in headers:
            known = pairs.get(pair)
            if known is None and len(pairs) < _KNOWN_PAIRS:
                known = pairs[pair] = pair
            shared.append(pair if known is None else known)
        self.requests.append(RecordedRequest(sys.intern(method), sys.intern(path), tuple(shared)))

    async def _respond(
        self,
        stream: SocketStream,
        method: str,
        status: int,
        extra: list[tuple[str, str]],
        payload: bytes,
        *,
        keep_alive: bool,
        content_type: str = "application/json",
        length: int | None = None,
    ) -> None:
        """Send the head, then ``payload`` unless the method is HEAD or the status has no body."""
        if status < 200 or status in (204, 304):
            # These answers end at their head (RFC 9110): bytes sent after it would be read as
            # the start of the next response on a kept-alive connection.
            payload = b""
        response_headers = [
            ("Content-Type", content_type),
            ("Content-Length", str(len(payload) if length is None else length)),
            ("Connection", "keep-alive" if keep_alive else "close"),
            *extra,
        ]
        reason = _REASONS.get(status, "Unknown")
        out = f"HTTP/1.1 {status} {reason}\r\n".encode("latin-1")
        out += "".join(f"{k}: {v}\r\n" for k, v in response_headers).encode("latin-1")
        out += b"\r\n" + (b"" if method == "HEAD" else payload)
        await stream.send(out)

    async def _read_body(
        self, buffered: BufferedByteReceiveStream, fields: dict[str, str]
    ) -> bytes:
        if fields.get("transfer-encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            total = 0
            while True:
                size_line = await buffered.receive_until(b"\r\n", 1024)
                try:
                    size = int(size_line.split(b";")[0], 16)
                except ValueError:
                    raise _BadRequest("bad chunk size") from None
                if size == 0:
                    await buffered.receive_until(b"\r\n", _MAX_HEAD)
                    return b"".join(chunks)
                total += size
                if total > _MAX_BODY:
                    raise _BadRequest("body too large")
                chunks.append(await buffered.receive_exactly(size))
                await buffered.receive_exactly(2)
        length = int(fields.get("content-length", "0") or "0")
        if not 0 <= length <= _MAX_BODY:
            raise _BadRequest("bad content-length")
        return await buffered.receive_exactly(length) if length else b""

    async def _route(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        split = urlsplit(target)
        parts = [part for part in split.path.split("/") if part]
        query = dict(parse_qsl(split.query))
        extra: list[tuple[str, str]] = []
        if len(parts) == 2 and parts[0] == "status" and parts[1].isdigit():
            status = int(parts[1])
            if "retry_after" in query:
                extra.append(("Retry-After", query["retry_after"]))
            return status, extra, json.dumps({"status": status}).encode()
        if len(parts) == 2 and parts[0] == "delay":
            try:
                seconds = float(parts[1])
            except ValueError:
                return 400, extra, b'{"error": "bad delay"}'
            if not math.isfinite(seconds) or seconds < 0:
                return 400, extra, b'{"error": "bad delay"}'
            await anyio.sleep(min(seconds, _MAX_DELAY))
        echo = {
            "method": method,
            "path": split.path,
            "query": query,
            "headers": dict(headers),
            "body": body.decode("utf-8", "replace"),
        }
        return 200, extra, json.dumps(echo).encode()

    # -- fault routes ------------------------------------------------------------------------

    async def _serve_fault(
        self, stream: SocketStream, method: str, target: str, keep_alive: bool
    ) -> bool | None:
        """
        Serve the fault routes; return whether to keep the connection, or ``None`` if ``target``
        is not one of them.
        """
        split = urlsplit(target)
        parts = [part for part in split.path.split("/") if part]
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        if parts == ["reset"]:
            await _reset(stream)
            return False
        if parts == ["drop"]:
            await self._close_gracefully(stream)
            return False
        if parts == ["redirect"]:
            status, extra, payload = self._redirect(target, query)
        elif len(parts) == 2 and parts[0] == "sequence":
            status, extra, payload = self._sequence(parts[1], query)
        elif len(parts) == 2 and parts[0] in ("drip", "truncate", "big", "gzip-bomb"):
            return await self._serve_body(stream, method, parts[0], parts[1], query, keep_alive)
        else:
            return None
        await self._respond(stream, method, status, extra, payload, keep_alive=keep_alive)
        return keep_alive

    async def _serve_mix(
        self,
        stream: SocketStream,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        keep_alive: bool,
    ) -> bool:
        """Serve a ``/mix`` request with the next fault of the mix; return whether to keep on."""
        assert self._fault_mix is not None
        kind = self._fault_mix.draw(self._fault_rng)
        self.fault_counts[kind] += 1
        if kind == "reset":
            await _reset(stream)
            return False
        if kind == "drop":
            await self._close_gracefully(stream)
            return False
        if kind.startswith("status_"):
            status = int(kind.removeprefix("status_"))
            payload = json.dumps({"fault": kind, "status": status}).encode()
            await self._respond(stream, method, status, [], payload, keep_alive=keep_alive)
            return keep_alive
        if kind == "delay":
            await anyio.sleep(self._fault_mix.delay_seconds)
        elif kind == "close":
            keep_alive = False
        status, extra, payload = await self._route(method, target, headers, body)
        if kind != "truncate":
            await self._respond(stream, method, status, extra, payload, keep_alive=keep_alive)
            return keep_alive
        cut = payload[: len(payload) // 2]
        await self._respond(
            stream, method, status, extra, cut, keep_alive=False, length=len(payload) + 100
        )
        await self._close_gracefully(stream)
        return False

    def _sequence(
        self, key: str, query: dict[str, str]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        try:
            codes = [int(code) for code in query.get("codes", "").split(",")]
        except ValueError:
            return _error("codes must be a comma-separated list of statuses")
        if len(codes) > _MAX_SEQUENCE or not all(200 <= code <= 599 for code in codes):
            return _error(f"codes must hold 1 to {_MAX_SEQUENCE} statuses from 200 to 599")
        names = {
            "retry_after": "Retry-After",
            "ratelimit_reset": "RateLimit-Reset",
            "x_ratelimit_reset": "X-RateLimit-Reset",
        }
        extra: list[tuple[str, str]] = []
        for param, header in names.items():
            if param in query:
                if not _is_header_value(query[param]):
                    return _error(f"{param} must be printable latin-1")
                extra.append((header, query[param]))
        self.sequence_hits[key] += 1
        hit = self.sequence_hits[key]
        status = codes[min(hit, len(codes)) - 1]
        if 200 <= status <= 299:
            extra = []
        return status, extra, json.dumps({"key": key, "hit": hit, "status": status}).encode()

    def _redirect(
        self, target: str, query: dict[str, str]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        code = _parse_int(query.get("code", "302"), 999)
        if code not in _REDIRECT_CODES:
            return _error("code must be 301, 302, 303, 307 or 308")
        location = query.get("to", target)
        if not _is_header_value(location) or not location:
            return _error("to must be a non-empty printable latin-1 URL")
        return code, [("Location", location)], json.dumps({"location": location}).encode()

    async def _serve_body(
        self,
        stream: SocketStream,
        method: str,
        route: str,
        size_text: str,
        query: dict[str, str],
        keep_alive: bool,
    ) -> bool:
        limit = {"drip": _MAX_DRIP_BYTES, "big": _MAX_BIG, "gzip-bomb": _MAX_BOMB}.get(
            route, _MAX_BIG
        )
        size = _parse_int(size_text, limit)
        if size is None:
            status, extra, payload = _error(f"the size must be an integer from 0 to {limit}")
            await self._respond(stream, method, status, extra, payload, keep_alive=keep_alive)
            return keep_alive
        octets = "application/octet-stream"
        if route == "gzip-bomb":
            if size > _BOMB_IN_THREAD:
                bomb = await anyio.to_thread.run_sync(_gzip_zeros, size)
            else:
                bomb = _gzip_zeros(size)
            extra = [("Content-Encoding", "gzip")]
            await self._respond(
                stream, method, 200, extra, bomb, keep_alive=keep_alive, content_type=octets
            )
            return keep_alive
        if route == "drip":
            interval = _parse_float(query.get("interval", "0.3"), _MAX_DRIP_INTERVAL)
            if interval is None:
                status, extra, payload = _error(
                    f"interval must be a number from 0 to {_MAX_DRIP_INTERVAL}"
                )
                await self._respond(stream, method, status, extra, payload, keep_alive=keep_alive)
                return keep_alive
            await self._respond(
                stream,
                method,
                200,
                [],
                b"",
                keep_alive=keep_alive,
                content_type=octets,
                length=size,
            )
            if method != "HEAD":
                for _ in range(size):
                    await anyio.sleep(interval)
                    await stream.send(b"x")
            return keep_alive
        if route == "big":
            await self._respond(
                stream,
                method,
                200,
                [],
                b"",
                keep_alive=keep_alive,
                content_type=octets,
                length=size,
            )
            if method != "HEAD":
                await _send_filler(stream, size)
            return keep_alive
        # truncate
        claimed = _parse_int(query.get("claimed", str(size + 1)), _MAX_CLAIMED)
        if claimed is None or claimed <= size:
            status, extra, payload = _error(
                f"claimed must be an integer from n + 1 to {_MAX_CLAIMED}"
            )
            await self._respond(stream, method, status, extra, payload, keep_alive=keep_alive)
            return keep_alive
        await self._respond(
            stream, method, 200, [], b"", keep_alive=False, content_type=octets, length=claimed
        )
        if method != "HEAD":
            await _send_filler(stream, size)
        await self._close_gracefully(stream)
        return False

    async def _close_gracefully(self, stream: SocketStream) -> None:
        """Send a FIN, then wait a little for the client to close (a RST could lose our bytes)."""
        await stream.send_eof()
        with anyio.move_on_after(_LINGER):
            try:
                while await stream.receive():
                    pass
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass
        await stream.aclose()


async def _reset(stream: SocketStream) -> None:
    """Abort the connection: SO_LINGER on with a zero timeout makes close() send a RST."""
    stream.extra(SocketAttribute.raw_socket).setsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO
    )
    await stream.aclose()


def _error(message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    return 400, [], json.dumps({"error": message}).encode()


def _parse_int(text: str, high: int) -> int | None:
    """The integer ``text`` (ASCII digits only) if it is at most ``high``, else ``None``."""
    if not _DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if value <= high else None


def _parse_float(text: str, high: float) -> float | None:
    """The number ``text`` if it is finite and from 0 to ``high``, else ``None``."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and 0 <= value <= high else None


def _is_header_value(value: str) -> bool:
    """Whether ``value`` can go in a header as is: latin-1, no control character (no CR/LF)."""
    return all(char == "\t" or (" " <= char <= "\xff" and char != "\x7f") for char in value)


async def _send_filler(stream: SocketStream, size: int) -> None:
    """Send ``size`` filler bytes in chunks of at most 64 KiB."""
    remaining = size
    while remaining > 0:
        chunk = _CHUNK if remaining >= len(_CHUNK) else _CHUNK[:remaining]
        await stream.send(chunk)
        remaining -= len(chunk)


@functools.lru_cache(maxsize=8)
def _gzip_zeros(size: int) -> bytes:
    """
    A gzip member that decodes to ``size`` zero bytes, built in about 1 MiB of memory.

    Each whole MiB of zeros is compressed by a fresh deflate stream ended with a full flush, so
    it compresses to the same self-contained bytes wherever it stands: those bytes are repeated,
    then the rest goes in a final block. Only the CRC needs a pass over the decoded size.
    """
    block = bytes(_BOMB_BLOCK)
    count, rest = divmod(size, _BOMB_BLOCK)
    whole = zlib.compressobj(9, zlib.DEFLATED, -15)
    repeated = whole.compress(block) + whole.flush(zlib.Z_FULL_FLUSH)
    last = zlib.compressobj(9, zlib.DEFLATED, -15)
    final = last.compress(block[:rest]) + last.flush()
    crc = 0
    for _ in range(count):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(block[:rest], crc)
    # ID1 ID2, CM deflate, no flags, MTIME 0, XFL 2 (best compression), OS unknown.
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = struct.pack("<II", crc, size & 0xFFFFFFFF)
    return header + repeated * count + final + trailer


@contextmanager
def refusing_url(host: str = "127.0.0.1") -> Iterator[str]:
    """
    Yield the URL of a loopback port where every connection is refused.

    The port is bound but never listened on, so no other process can take it meanwhile and a
    connection attempt gets a real ``ECONNREFUSED``.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        yield f"http://{shown}:{port}"
