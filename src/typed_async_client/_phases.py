"""
Where an attempt failed: connect, send, response headers or body.

With a non-default retry policy the client follows each attempt through httpcore's ``trace``
request extension, which names every step (``connection.connect_tcp.started``,
``http11.send_request_headers.started``, ``http11.receive_response_headers.started``...).
With the default policy, which only ever retries connection errors, the phase is inferred from
the exception type and no trace callback runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Any, Final

import httpcore
import httpx

from ._retry import is_never_sent

_SEND_ERRORS: Final = (
    httpx.WriteError,
    httpx.WriteTimeout,
    httpcore.WriteError,
    httpcore.WriteTimeout,
)

TraceCallback = Callable[[str, Mapping[str, Any]], Awaitable[None]]


def phase_of_error(exc: BaseException) -> str:
    """The phase an error belongs to, from its type alone."""
    if is_never_sent(exc):
        return "connect"
    if isinstance(exc, _SEND_ERRORS):
        return "send"
    return "response"


def _phase_of_step(name: str) -> str | None:
    if name.startswith("connection."):
        return "connect"
    if ".send_request" in name:
        return "send"
    if ".receive_response_headers" in name:
        return "response_headers"
    if ".receive_response_body" in name or ".response_closed" in name:
        return "body"
    return None


class AttemptTrace:
    """
    Follows one attempt's steps through httpcore's ``trace`` extension.

    Attributes:
        phase: the phase of the last step started (``"connect"`` before any step).
        new_connection: whether this attempt opened a connection (``False``: a reused one).
    """

    __slots__ = ("_failed", "_inner", "new_connection", "phase")

    def __init__(self, inner: TraceCallback | None) -> None:
        self._inner = inner
        self.phase = "connect"
        self.new_connection = False
        self._failed = False

    async def __call__(self, name: str, info: Mapping[str, Any]) -> None:
        if name.startswith("connection.connect_tcp"):
            self.new_connection = True
        if not self._failed:
            # After a step fails, httpcore still runs cleanup steps (response_closed...):
            # the phase stays the one that failed.
            phase = _phase_of_step(name)
            if phase is not None:
                self.phase = phase
            self._failed = name.endswith(".failed")
        if self._inner is not None:
            await self._inner(name, info)

    def is_reused_disconnect(self, exc: BaseException) -> bool:
        """A keep-alive connection the server closed before sending any response byte."""
        return (
            isinstance(exc, (httpx.RemoteProtocolError, httpcore.RemoteProtocolError))
            and not self.new_connection
            and self.phase in ("send", "response_headers")
        )


class RequestCounter:
    """
    The requests an attempt has handed to httpx's transport so far, counted by an httpx request
    hook (:func:`count_request`).

    httpx calls the request hooks once per request it sends: the first, each redirect hop, and
    the second leg of an auth challenge (digest auth resends the same ``Request`` object, so
    identity cannot tell). A count above one at the time of an error means the attempt's first
    request already reached the server and got an answer: even a connection error then does not
    prove that nothing was sent.
    """

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    @property
    def sent_before(self) -> bool:
        """Whether a request of this attempt was answered before the latest one started."""
        return self.count > 1


#: The counter of the attempt in progress, set by the engine in the request's own task, where
#: httpx runs the request hooks.
_COUNTER: Final[ContextVar[RequestCounter | None]] = ContextVar(
    "typed_async_client_request_counter", default=None
)


def start_counting() -> RequestCounter:
    """A new counter for the attempt about to start in the current task."""
    counter = RequestCounter()
    _COUNTER.set(counter)
    return counter


async def count_request(request: httpx.Request) -> None:
    """The httpx request hook behind :class:`RequestCounter`."""
    counter = _COUNTER.get()
    if counter is not None:
        counter.count += 1
