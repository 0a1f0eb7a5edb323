"""
A small HTTP/1.1 server on anyio listeners, for tests, examples and demos.

It runs inside the caller's event loop (asyncio or trio) as an async context manager, or as a
process (``python -m typed_async_client.testing``). Routes:

* ``/status/{code}``: answer with that status (``?retry_after=N`` adds a ``Retry-After``);
* ``/delay/{seconds}``: wait, then answer like the default route;
* ``/close``: answer, then close the connection (``Connection: close``);
* anything else: ``200`` with a JSON echo of the request (method, path, query, headers, body).

Every request that reaches the server is counted per path in :attr:`LocalServer.hits`.
"""

from __future__ import annotations

import json
import math
import socket
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Final
from urllib.parse import parse_qsl, urlsplit

import anyio
from anyio.abc import SocketStream, TaskGroup
from anyio.streams.buffered import BufferedByteReceiveStream

_MAX_HEAD: Final[int] = 64 * 1024
_MAX_BODY: Final[int] = 16 * 1024 * 1024
_MAX_DELAY: Final[float] = 60.0
_REASONS: Final[dict[int, str]] = {
    200: "OK",
    201: "Created",
    204: "No Content",
    301: "Moved Permanently",
    302: "Found",
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


class LocalServer:
    """
    A loopback HTTP/1.1 server running in the current event loop.

    Use it as ``async with LocalServer() as server:`` and send requests to ``server.url``.
    Leaving the block stops the server and closes its connections.

    Args:
        host: the loopback address to listen on (``127.0.0.1`` or ``::1``).
        port: the port; ``0`` picks a free one.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError(f"host must be a loopback address, got {host!r}")
        self.host = host
        self.port = port
        self.hits: Counter[str] = Counter()
        self.connections = 0
        self._tg: TaskGroup | None = None

    @property
    def url(self) -> str:
        """The server's base URL, such as ``http://127.0.0.1:54321``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def url_for(self, path: str) -> str:
        """The absolute URL of ``path`` on this server."""
        return self.url + (path if path.startswith("/") else "/" + path)

    async def __aenter__(self) -> LocalServer:
        listener = await anyio.create_tcp_listener(local_host=self.host, local_port=self.port)
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        tg.start_soon(self._serve, listener)
        return self

    async def _serve(self, listener: anyio.abc.Listener[SocketStream]) -> None:
        async with listener:
            await listener.serve(self._serve_connection)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        return await self._tg.__aexit__(exc_type, exc, tb)

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
        keep_alive = version == "HTTP/1.1" and fields.get("connection", "").lower() != "close"
        status, extra, payload = await self._route(method, target, headers, body)
        if path == "/close":
            keep_alive = False
        response_headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(payload))),
            ("Connection", "keep-alive" if keep_alive else "close"),
            *extra,
        ]
        reason = _REASONS.get(status, "Unknown")
        out = f"HTTP/1.1 {status} {reason}\r\n".encode("latin-1")
        out += "".join(f"{k}: {v}\r\n" for k, v in response_headers).encode("latin-1")
        out += b"\r\n" + (b"" if method == "HEAD" else payload)
        await stream.send(out)
        return keep_alive

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
