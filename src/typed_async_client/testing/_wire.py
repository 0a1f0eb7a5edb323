"""
HTTP/1.1 on one connection of the test server: read a request, send an answer, end the
connection the way a fault asks (RST, or FIN then linger).
"""

from __future__ import annotations

import socket
import struct
import sys
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import anyio
from anyio.abc import SocketAttribute, SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

MAX_HEAD: Final[int] = 64 * 1024
MAX_BODY: Final[int] = 16 * 1024 * 1024
# How long a connection closed with a FIN waits for the client's own close, so that the bytes
# already sent are not lost to a RST.
_LINGER: Final[float] = 2.0
_CHUNK: Final[bytes] = b"x" * (64 * 1024)
_LINGER_ZERO: Final[bytes] = struct.pack("HH" if sys.platform == "win32" else "ii", 1, 0)
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


class BadRequest(Exception):
    """A request the server cannot parse: the connection is closed without an answer."""


@dataclass(frozen=True, slots=True)
class Request:
    """
    One parsed request.

    Attributes:
        method: the method, as sent.
        target: the request target, with its query.
        path: the target's path, without the query.
        headers: the header pairs, names lowercased, in order.
        body: the body (chunked bodies joined).
        keep_alive: whether the client asked to keep the connection (HTTP/1.1 without
            ``Connection: close``).
    """

    method: str
    target: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    keep_alive: bool


async def read_request(buffered: BufferedByteReceiveStream) -> Request:
    """
    Read the next request of the connection.

    Raises:
        BadRequest: a malformed request line, chunk size or length, or a body too large.
    """
    head = await buffered.receive_until(b"\r\n\r\n", MAX_HEAD)
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, version = lines[0].split(" ")
    except ValueError:
        raise BadRequest(lines[0]) from None
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip().lower(), value.strip()))
    fields = dict(headers)
    body = await _read_body(buffered, fields)
    keep_alive = version == "HTTP/1.1" and fields.get("connection", "").lower() != "close"
    return Request(method, target, urlsplit(target).path, headers, body, keep_alive)


async def _read_body(buffered: BufferedByteReceiveStream, fields: dict[str, str]) -> bytes:
    if fields.get("transfer-encoding", "").lower() == "chunked":
        chunks: list[bytes] = []
        total = 0
        while True:
            size_line = await buffered.receive_until(b"\r\n", 1024)
            try:
                size = int(size_line.split(b";")[0], 16)
            except ValueError:
                raise BadRequest("bad chunk size") from None
            if size == 0:
                await buffered.receive_until(b"\r\n", MAX_HEAD)
                return b"".join(chunks)
            total += size
            if total > MAX_BODY:
                raise BadRequest("body too large")
            chunks.append(await buffered.receive_exactly(size))
            await buffered.receive_exactly(2)
    length = int(fields.get("content-length", "0") or "0")
    if not 0 <= length <= MAX_BODY:
        raise BadRequest("bad content-length")
    return await buffered.receive_exactly(length) if length else b""


async def respond(
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


async def send_filler(stream: SocketStream, size: int) -> None:
    """Send ``size`` filler bytes in chunks of at most 64 KiB."""
    remaining = size
    while remaining > 0:
        chunk = _CHUNK if remaining >= len(_CHUNK) else _CHUNK[:remaining]
        await stream.send(chunk)
        remaining -= len(chunk)


async def reset(stream: SocketStream) -> None:
    """Abort the connection: SO_LINGER on with a zero timeout makes close() send a RST."""
    stream.extra(SocketAttribute.raw_socket).setsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO
    )
    await stream.aclose()


async def close_gracefully(stream: SocketStream) -> None:
    """Send a FIN, then wait a little for the client to close (a RST could lose our bytes)."""
    await stream.send_eof()
    with anyio.move_on_after(_LINGER):
        try:
            while await stream.receive():
                pass
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
    await stream.aclose()
