"""
``LocalServer``: a small HTTP/1.1 server on anyio listeners, for tests, examples and demos.

It runs inside the caller's event loop (asyncio or trio) as an async context manager, or as a
process (``python -m typed_async_client.testing``). This module holds its lifecycle: the
listener, the accept loop, the connections, and what it counts; what each request gets is in
``_routes`` (its docstring lists the routes) and how bytes go on the wire in ``_wire``.

Every request that reaches the server is counted per path in :attr:`LocalServer.hits` and
recorded in :attr:`LocalServer.requests`. :meth:`LocalServer.stop_listening` and
:meth:`LocalServer.start_listening` make the port refuse connections, then accept them again.
"""

from __future__ import annotations

import socket
import sys
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Final, NamedTuple

import anyio
from anyio.abc import SocketAttribute, SocketStream, TaskGroup, TaskStatus
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.stapled import MultiListener

from .._checks import check_number
from ._faults import FaultMix
from ._routes import Routes
from ._wire import BadRequest, read_request

_RECORD_LIMIT: Final[int] = 1_000
_KNOWN_PAIRS: Final[int] = 4_096


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
        requests: the latest requests that reached the server, oldest first.
        connections: the number of connections accepted.
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
        self.host = host
        self.port = int(check_number("port", port, integer=True, minimum=0, maximum=65535))
        limit = int(check_number("record_limit", record_limit, integer=True, minimum=0))
        self.hits: Counter[str] = Counter()
        self.requests: deque[RecordedRequest] = deque(maxlen=limit)
        self.connections = 0
        self._routes = Routes(fault_mix)
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
    def sequence_hits(self) -> Counter[str]:
        """The number of valid requests to each ``/sequence/{key}``, per key."""
        return self._routes.sequence_hits

    @property
    def fault_counts(self) -> Counter[str]:
        """
        The number of ``/mix`` requests that got each fault kind (``"ok"`` for a normal answer)
        since the mix was set.
        """
        return self._routes.fault_counts

    @property
    def fault_mix(self) -> FaultMix | None:
        """The fault mix of the ``/mix`` routes, if any."""
        return self._routes.fault_mix

    def set_fault_mix(self, fault_mix: FaultMix | None) -> None:
        """
        Replace the fault mix (``None``: no faults): its sequence starts over from its seed and
        :attr:`fault_counts` is reset.
        """
        self._routes.set_fault_mix(fault_mix)

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
            except (BadRequest, anyio.EndOfStream, anyio.IncompleteRead):
                return
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                return

    async def _serve_one(self, stream: SocketStream, buffered: BufferedByteReceiveStream) -> bool:
        request = await read_request(buffered)
        self.hits[request.path] = self.hits[request.path] + 1
        self._record(request.method, request.path, request.headers)
        return await self._routes.serve(stream, request)

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
