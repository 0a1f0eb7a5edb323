"""
The benchmark's HTTP/1.1 server: one process, an asyncio Protocol (on uvloop when importable),
a fixed tiny response, cheap enough that the client under test is always the bottleneck.

    python benchmarks/server.py [--port 0] [--cpu 0] [--close] [--fail-503 0.12 --seed 6]
                                [--toggle-refuse 0.12 --toggle-period 0.1]

It prints one JSON line once it listens (``{"port": ..., "loop": "uvloop", ...}``), then serves
until SIGTERM/SIGINT or ``--max-seconds``.

Modes:

* default: keep-alive, ``200`` with a 2-byte body to every request;
* ``--close``: every response carries ``Connection: close`` and the connection is closed after
  it (the fresh-connection scenario);
* ``--fail-503 F``: a seeded fraction ``F`` of requests get ``503`` with ``Retry-After: 0``;
* ``--toggle-refuse F``: the fallback of the refused-connections scenario when nftables cannot
  be used: the listening socket is closed for a fraction ``F`` of every ``--toggle-period``, so
  connection attempts in that window get a reset (``ECONNREFUSED``). Caveat: connections that
  the kernel had already completed but the server had not yet accepted are reset when the
  listener closes; their clients see a reset *after* connecting, not a refusal.

Control paths (answered in every mode, never failed or closed by the modes above):

* ``/__stats``: JSON counters since the last reset (requests, 503s, connections, held);
* ``/__reset?seed=N``: zero the counters and reseed the 503 generator;
* ``/hold/N``: hold the response until ``N`` requests are held at once (or 30 s passed since
  the first), then, after ``--hold-pause`` seconds, answer them all: the "10,000 in flight"
  memory scenario.

Only loopback addresses are accepted for ``--host``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import sys
import time
from typing import Any

RESPONSE_OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
RESPONSE_OK_CLOSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
    b"Connection: close\r\n\r\nok"
)
RESPONSE_503 = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n"
    b"Retry-After: 0\r\n\r\n"
)
RESPONSE_503_CLOSE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n"
    b"Retry-After: 0\r\nConnection: close\r\n\r\n"
)
MAX_HEAD = 64 * 1024
HOLD_TIMEOUT = 30.0
LOOPBACK = ("127.0.0.1", "::1", "localhost")


class State:
    """The server's counters and its held requests, shared by every connection."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.close = args.close
        self.fail = args.fail_503
        self.rng = random.Random(args.seed)
        self.requests = 0
        self.failed = 0
        self.connections = 0
        self.held: list[asyncio.Transport] = []
        self.hold_target = 0
        self.hold_timer: asyncio.TimerHandle | None = None
        self.hold_peak = 0
        self.refused_windows = 0

    def reset(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.requests = self.failed = self.connections = self.hold_peak = 0

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "failed_503": self.failed,
            "connections": self.connections,
            "held": len(self.held),
            "hold_peak": self.hold_peak,
            "refused_windows": self.refused_windows,
        }

    # -- held requests (memory scenario) ----------------------------------------------------

    def hold(self, transport: asyncio.Transport, target: int) -> None:
        loop = asyncio.get_running_loop()
        self.held.append(transport)
        self.hold_target = target
        self.hold_peak = max(self.hold_peak, len(self.held))
        if self.hold_timer is None:
            self.hold_timer = loop.call_later(HOLD_TIMEOUT, self.release_soon)
        if len(self.held) >= target:
            self.release_soon()

    def release_soon(self) -> None:
        if self.hold_timer is not None:
            self.hold_timer.cancel()
            self.hold_timer = None
        asyncio.get_running_loop().call_later(self.args.hold_pause, self.release)

    def release(self) -> None:
        held, self.held = self.held, []
        for transport in held:
            if not transport.is_closing():
                transport.write(RESPONSE_OK)


class HttpProtocol(asyncio.Protocol):
    """Parses request heads (and a Content-Length body, if any) and answers each at once."""

    __slots__ = ("buffer", "state", "transport")

    def __init__(self, state: State) -> None:
        self.state = state
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        self.state.connections += 1

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        transport = self.transport
        assert transport is not None
        state = self.state
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    transport.close()
                    return
                break
            head = buffer[:end]
            consumed = end + 4
            if b"ength:" in head or b"ENGTH:" in head:
                length = _content_length(head)
                if length < 0:
                    transport.close()
                    return
                if len(buffer) < consumed + length:
                    break  # wait for the rest of the body
                consumed += length
            buffer = buffer[consumed:]
            space = head.find(b" ")
            marker = head[space + 1 : space + 3]
            if (marker == b"/_" or marker == b"/h") and self._control(head, space):
                continue
            state.requests += 1
            if state.fail and state.rng.random() < state.fail:
                state.failed += 1
                if state.close:
                    transport.write(RESPONSE_503_CLOSE)
                    transport.close()
                    return
                transport.write(RESPONSE_503)
            elif state.close:
                transport.write(RESPONSE_OK_CLOSE)
                transport.close()
                return
            else:
                transport.write(RESPONSE_OK)
        self.buffer = buffer

    def _control(self, head: bytes, space: int) -> bool:
        """Serve a control path; return False if ``head`` is an ordinary request."""
        transport = self.transport
        assert transport is not None
        target = head[space + 1 : head.find(b" ", space + 1)].decode("latin-1")
        path, _, query = target.partition("?")
        state = self.state
        if path == "/__stats":
            body = json.dumps(state.stats()).encode()
        elif path == "/__reset":
            params = dict(part.partition("=")[::2] for part in query.split("&") if part)
            state.reset(int(params.get("seed", state.args.seed)))
            body = json.dumps(state.stats()).encode()
        elif path.startswith("/hold/"):
            state.requests += 1
            state.hold(transport, max(1, int(path[6:] or "1")))
            return True
        else:
            return False
        transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            try:
                return int(value.strip())
            except ValueError:
                return -1
    return 0


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(16384)  # capped by net.core.somaxconn
    sock.setblocking(False)
    return sock


async def _toggle_listener(
    loop: asyncio.AbstractEventLoop,
    state: State,
    server: asyncio.Server,
    host: str,
    port: int,
    stop: asyncio.Event,
) -> None:
    """Close the listener for ``fraction`` of each period, then listen again on the same port."""
    args = state.args
    closed_for = args.toggle_period * args.toggle_refuse
    open_for = args.toggle_period - closed_for
    while not stop.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), open_for)
        if stop.is_set():
            break
        server.close()
        state.refused_windows += 1
        await asyncio.sleep(closed_for)
        server = await loop.create_server(
            lambda: HttpProtocol(state), sock=_listening_socket(host, port)
        )
    server.close()


def _pin(cpu: int | None) -> str:
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return "not pinned"
    try:
        available = os.sched_getaffinity(0)
        if cpu in available and len(available) > 1:
            os.sched_setaffinity(0, {cpu})
            return f"cpu {cpu}"
    except OSError as exc:
        return f"not pinned ({exc})"
    return "not pinned (one cpu)"


def _new_loop() -> tuple[asyncio.AbstractEventLoop, str]:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop(), "asyncio"
    return uvloop.new_event_loop(), f"uvloop {uvloop.__version__}"


async def _serve(args: argparse.Namespace, loop_name: str, pinned: str) -> None:
    loop = asyncio.get_running_loop()
    state = State(args)
    sock = _listening_socket(args.host, args.port)
    port = sock.getsockname()[1]
    server = await loop.create_server(lambda: HttpProtocol(state), sock=sock)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    info = {
        "port": port,
        "pid": os.getpid(),
        "loop": loop_name,
        "pinned": pinned,
        "close": args.close,
        "fail_503": args.fail_503,
        "toggle_refuse": args.toggle_refuse,
    }
    print(json.dumps(info), flush=True)
    toggler = None
    if args.toggle_refuse:
        toggler = asyncio.ensure_future(
            _toggle_listener(loop, state, server, args.host, port, stop)
        )
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), args.max_seconds)
    stop.set()
    if toggler is not None:
        await toggler
    server.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--host", default="127.0.0.1", choices=LOOPBACK)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cpu", type=int, default=None, help="pin the server to this cpu")
    parser.add_argument("--close", action="store_true", help="close every connection")
    parser.add_argument("--fail-503", type=float, default=0.0, help="fraction answered 503")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--toggle-refuse", type=float, default=0.0)
    parser.add_argument("--toggle-period", type=float, default=0.1)
    parser.add_argument("--hold-pause", type=float, default=0.5)
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="stop by itself")
    args = parser.parse_args(argv)
    if not 0.0 <= args.fail_503 < 1.0 or not 0.0 <= args.toggle_refuse < 1.0:
        parser.error("fractions must be in [0, 1)")
    pinned = _pin(args.cpu)
    loop, loop_name = _new_loop()
    try:
        loop.run_until_complete(_serve(args, loop_name, pinned))
    finally:
        loop.close()
    print(json.dumps({"stopped": True, "at": time.time()}), file=sys.stderr)


if __name__ == "__main__":
    main()
