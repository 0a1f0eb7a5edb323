"""
The routes of the test server: which answer, or which fault, each request gets.

* ``/status/{code}``: answer with that status (``?retry_after=N`` adds a ``Retry-After``);
* ``/delay/{seconds}``: wait, then answer like the default route;
* ``/close``: answer, then close the connection (``Connection: close``);
* ``/sequence/{key}?codes=503,503,200``: each request to ``key`` (the path segment as sent) gets
  the next status of the list, the last one repeating once the list is spent (counted in
  :attr:`Routes.sequence_hits`); ``retry_after``, ``ratelimit_reset`` and ``x_ratelimit_reset``
  set ``Retry-After``, ``RateLimit-Reset`` and ``X-RateLimit-Reset`` to their raw (url-decoded)
  values on the non-2xx answers;
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
* ``/mix`` and ``/mix/{anything}``: with a :class:`FaultMix`, each request gets a fault drawn
  from the mix's seeded random sequence (counted in :attr:`Routes.fault_counts`), else the
  default route's answer;
* anything else: ``200`` with a JSON echo of the request (method, path, query, headers, body).

A malformed parameter of the fault routes gets a ``400`` with a JSON error; an answer with a
``1xx``, ``204`` or ``304`` status carries no body.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Final, TypeAlias
from urllib.parse import parse_qsl, urlsplit

import anyio
from anyio.abc import SocketStream

from ._bodies import BOMB_IN_THREAD, MAX_BOMB, gzip_zeros, is_header_value, parse_float, parse_int
from ._faults import MAX_DELAY, FaultMix
from ._wire import Request, close_gracefully, reset, respond, send_filler

_MAX_DRIP_BYTES: Final[int] = 10_000
_MAX_DRIP_INTERVAL: Final[float] = 5.0
_MAX_BIG: Final[int] = 64 * 1024 * 1024
_MAX_CLAIMED: Final[int] = 1 << 40
_MAX_SEQUENCE: Final[int] = 1_000
_REDIRECT_CODES: Final[frozenset[int]] = frozenset({301, 302, 303, 307, 308})
_OCTETS: Final[str] = "application/octet-stream"
_SEQUENCE_HEADERS: Final[dict[str, str]] = {
    "retry_after": "Retry-After",
    "ratelimit_reset": "RateLimit-Reset",
    "x_ratelimit_reset": "X-RateLimit-Reset",
}

#: An answer that fits in memory: status, extra headers, body.
Answer: TypeAlias = tuple[int, list[tuple[str, str]], bytes]
_BodyRoute: TypeAlias = Callable[[SocketStream, str, int, dict[str, str], bool], Awaitable[bool]]


class Routes:
    """
    The request handlers of a test server, with the state they keep between requests.

    Attributes:
        sequence_hits: the number of valid requests to each ``/sequence/{key}``, per key.
        fault_counts: the number of ``/mix`` requests that got each fault kind (``"ok"`` for
            a normal answer) since the mix was set.
    """

    def __init__(self, fault_mix: FaultMix | None) -> None:
        self.sequence_hits: Counter[str] = Counter()
        self.fault_counts: Counter[str] = Counter()
        self.fault_mix: FaultMix | None = None
        self._fault_rng = random.Random()
        self.set_fault_mix(fault_mix)

    def set_fault_mix(self, fault_mix: FaultMix | None) -> None:
        """Replace the fault mix: its sequence starts over, :attr:`fault_counts` is reset."""
        if fault_mix is not None and not isinstance(fault_mix, FaultMix):
            raise TypeError(f"fault_mix must be a FaultMix, got {type(fault_mix).__name__}")
        self.fault_mix = fault_mix
        self._fault_rng = random.Random(0 if fault_mix is None else fault_mix.seed)
        self.fault_counts = Counter()

    async def serve(self, stream: SocketStream, request: Request) -> bool:
        """Answer ``request`` on ``stream``; return whether the connection goes on."""
        keep_alive = request.keep_alive and request.path != "/close"
        path = request.path
        if self.fault_mix is not None and (path == "/mix" or path.startswith("/mix/")):
            return await self._serve_mix(stream, request, keep_alive)
        handled = await self._serve_fault(stream, request.method, request.target, keep_alive)
        if handled is not None:
            return handled
        status, extra, payload = await _answer(request)
        await respond(stream, request.method, status, extra, payload, keep_alive=keep_alive)
        return keep_alive

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
            await reset(stream)
            return False
        if parts == ["drop"]:
            await close_gracefully(stream)
            return False
        if parts == ["redirect"]:
            status, extra, payload = _redirect(target, query)
        elif len(parts) == 2 and parts[0] == "sequence":
            status, extra, payload = self._sequence(parts[1], query)
        elif len(parts) == 2 and parts[0] in _BODY_ROUTES:
            limit, serve = _BODY_ROUTES[parts[0]]
            size = parse_int(parts[1], limit)
            if size is None:
                message = f"the size must be an integer from 0 to {limit}"
                return await _refuse(stream, method, message, keep_alive)
            return await serve(stream, method, size, query, keep_alive)
        else:
            return None
        await respond(stream, method, status, extra, payload, keep_alive=keep_alive)
        return keep_alive

    async def _serve_mix(self, stream: SocketStream, request: Request, keep_alive: bool) -> bool:
        """Serve a ``/mix`` request with the next fault of the mix; return whether to keep on."""
        assert self.fault_mix is not None
        kind = self.fault_mix.draw(self._fault_rng)
        self.fault_counts[kind] += 1
        method = request.method
        if kind == "reset":
            await reset(stream)
            return False
        if kind == "drop":
            await close_gracefully(stream)
            return False
        if kind.startswith("status_"):
            status = int(kind.removeprefix("status_"))
            payload = json.dumps({"fault": kind, "status": status}).encode()
            await respond(stream, method, status, [], payload, keep_alive=keep_alive)
            return keep_alive
        if kind == "delay":
            await anyio.sleep(self.fault_mix.delay_seconds)
        elif kind == "close":
            keep_alive = False
        status, extra, payload = await _answer(request)
        if kind != "truncate":
            await respond(stream, method, status, extra, payload, keep_alive=keep_alive)
            return keep_alive
        cut = payload[: len(payload) // 2]
        await respond(
            stream, method, status, extra, cut, keep_alive=False, length=len(payload) + 100
        )
        await close_gracefully(stream)
        return False

    def _sequence(self, key: str, query: dict[str, str]) -> Answer:
        try:
            codes = [int(code) for code in query.get("codes", "").split(",")]
        except ValueError:
            return _error("codes must be a comma-separated list of statuses")
        if len(codes) > _MAX_SEQUENCE or not all(200 <= code <= 599 for code in codes):
            return _error(f"codes must hold 1 to {_MAX_SEQUENCE} statuses from 200 to 599")
        extra: list[tuple[str, str]] = []
        for param, header in _SEQUENCE_HEADERS.items():
            if param in query:
                if not is_header_value(query[param]):
                    return _error(f"{param} must be printable latin-1")
                extra.append((header, query[param]))
        self.sequence_hits[key] += 1
        hit = self.sequence_hits[key]
        status = codes[min(hit, len(codes)) - 1]
        if 200 <= status <= 299:
            extra = []
        return status, extra, json.dumps({"key": key, "hit": hit, "status": status}).encode()


async def _answer(request: Request) -> Answer:
    """The answer of ``/status``, ``/delay`` and the default route (an echo of the request)."""
    split = urlsplit(request.target)
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
        await anyio.sleep(min(seconds, MAX_DELAY))
    echo = {
        "method": request.method,
        "path": split.path,
        "query": query,
        "headers": dict(request.headers),
        "body": request.body.decode("utf-8", "replace"),
    }
    return 200, extra, json.dumps(echo).encode()


def _redirect(target: str, query: dict[str, str]) -> Answer:
    code = parse_int(query.get("code", "302"), 999)
    if code not in _REDIRECT_CODES:
        return _error("code must be 301, 302, 303, 307 or 308")
    location = query.get("to", target)
    if not is_header_value(location) or not location:
        return _error("to must be a non-empty printable latin-1 URL")
    return code, [("Location", location)], json.dumps({"location": location}).encode()


def _error(message: str) -> Answer:
    return 400, [], json.dumps({"error": message}).encode()


async def _refuse(stream: SocketStream, method: str, message: str, keep_alive: bool) -> bool:
    """Answer a malformed parameter with a ``400``; the connection goes on as asked."""
    status, extra, payload = _error(message)
    await respond(stream, method, status, extra, payload, keep_alive=keep_alive)
    return keep_alive


async def _serve_gzip_bomb(
    stream: SocketStream, method: str, size: int, query: dict[str, str], keep_alive: bool
) -> bool:
    if size > BOMB_IN_THREAD:
        bomb = await anyio.to_thread.run_sync(gzip_zeros, size)
    else:
        bomb = gzip_zeros(size)
    extra = [("Content-Encoding", "gzip")]
    await respond(stream, method, 200, extra, bomb, keep_alive=keep_alive, content_type=_OCTETS)
    return keep_alive


async def _serve_drip(
    stream: SocketStream, method: str, size: int, query: dict[str, str], keep_alive: bool
) -> bool:
    interval = parse_float(query.get("interval", "0.3"), _MAX_DRIP_INTERVAL)
    if interval is None:
        message = f"interval must be a number from 0 to {_MAX_DRIP_INTERVAL}"
        return await _refuse(stream, method, message, keep_alive)
    await respond(
        stream, method, 200, [], b"", keep_alive=keep_alive, content_type=_OCTETS, length=size
    )
    if method != "HEAD":
        for _ in range(size):
            await anyio.sleep(interval)
            await stream.send(b"x")
    return keep_alive


async def _serve_big(
    stream: SocketStream, method: str, size: int, query: dict[str, str], keep_alive: bool
) -> bool:
    await respond(
        stream, method, 200, [], b"", keep_alive=keep_alive, content_type=_OCTETS, length=size
    )
    if method != "HEAD":
        await send_filler(stream, size)
    return keep_alive


async def _serve_truncate(
    stream: SocketStream, method: str, size: int, query: dict[str, str], keep_alive: bool
) -> bool:
    claimed = parse_int(query.get("claimed", str(size + 1)), _MAX_CLAIMED)
    if claimed is None or claimed <= size:
        message = f"claimed must be an integer from n + 1 to {_MAX_CLAIMED}"
        return await _refuse(stream, method, message, keep_alive)
    await respond(
        stream, method, 200, [], b"", keep_alive=False, content_type=_OCTETS, length=claimed
    )
    if method != "HEAD":
        await send_filler(stream, size)
    await close_gracefully(stream)
    return False


# The routes that stream a body of ``/{route}/{n}`` bytes: the largest ``n``, the handler.
_BODY_ROUTES: Final[dict[str, tuple[int, _BodyRoute]]] = {
    "drip": (_MAX_DRIP_BYTES, _serve_drip),
    "truncate": (_MAX_BIG, _serve_truncate),
    "big": (_MAX_BIG, _serve_big),
    "gzip-bomb": (MAX_BOMB, _serve_gzip_bomb),
}
