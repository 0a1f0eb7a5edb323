"""
Events and their fan-out to callbacks.

Request coroutines never call user code. They put events on a bounded anyio memory object
stream with ``send_nowait``; one dispatcher task, in the client's task group, reads the stream
and calls the callbacks registered for each event type, one at a time, in order.

Overflow is a decision, not an accident: when the stream is full (callbacks slower than the
requests), the new event is dropped and counted in ``dropped``. A request is never slowed down
by its observers. An event is only built when some callback wants its type, so unobserved
requests pay nothing for events.
"""

from __future__ import annotations

import enum
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

import anyio
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._constants import LOGGER_NAME
from ._context import RequestContext

logger = logging.getLogger(LOGGER_NAME)

_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})


class EventType(str, enum.Enum):
    """
    What an event reports.

    Per request: one ``STARTED``, one ``RETRY`` before each retry, then exactly one of
    ``SUCCESS``, ``ERROR`` or ``CANCELLED``.
    """

    STARTED = "started"
    RETRY = "retry"
    SUCCESS = "success"
    ERROR = "error"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class AsyncEvent:
    """
    One thing that happened to one request.

    Attributes:
        event_type: what happened.
        context: the snapshot of the request's context at that moment (for ``RETRY``, the
            context of the attempt about to start).
        timestamp: ``time.time()`` when the event was emitted.
        data: details: ``status_code`` on ``SUCCESS``; ``delay`` (the backoff sleep, in seconds)
            and ``attempt`` on ``RETRY``; ``attempts`` on the final events.
        error: the exception of the failed attempt (``RETRY``) or of the request (``ERROR``).
        metadata: the request's metadata.
    """

    event_type: EventType
    context: RequestContext
    timestamp: float = field(default_factory=time.time)
    data: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    error: BaseException | None = None
    metadata: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)


EventCallback = Callable[[AsyncEvent], Awaitable[object] | object]
"""A callback: a plain or an async callable taking the event; what it returns is ignored."""


class EventBus:
    """
    The bounded stream of events and the callbacks it feeds.

    Lifecycle: ``await task_group.start(bus.run)`` starts the dispatcher; ``close()`` stops
    accepting events, and the dispatcher ends once it has delivered what was already queued.
    """

    def __init__(self, queue_size: int) -> None:
        if isinstance(queue_size, bool) or not isinstance(queue_size, int):
            raise TypeError(f"event_queue_size must be an int, got {type(queue_size).__name__}")
        if queue_size < 1:
            raise ValueError(f"event_queue_size must be >= 1, got {queue_size}")
        self.queue_size = queue_size
        self._callbacks: dict[EventType, list[EventCallback]] = {}
        self._send: MemoryObjectSendStream[AsyncEvent] | None = None
        self._receive: MemoryObjectReceiveStream[AsyncEvent] | None = None
        self.emitted = 0
        self.dropped = 0
        self.delivered = 0
        self.callback_errors = 0

    def add_callback(self, event_type: EventType, callback: EventCallback) -> None:
        if not isinstance(event_type, EventType):
            raise TypeError(f"event_type must be an EventType, got {event_type!r}")
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        self._callbacks.setdefault(event_type, []).append(callback)

    def remove_callback(self, event_type: EventType, callback: EventCallback) -> None:
        callbacks = self._callbacks.get(event_type, [])
        try:
            callbacks.remove(callback)
        except ValueError:
            raise ValueError(f"{callback!r} is not registered for {event_type}") from None
        if not callbacks:
            del self._callbacks[event_type]

    def wants(self, event_type: EventType) -> bool:
        """Whether an event of this type would reach anyone (if not, do not build it)."""
        return event_type in self._callbacks

    @property
    def pending(self) -> int:
        """Events queued and not yet dispatched."""
        if self._send is None:
            return 0
        return self._send.statistics().current_buffer_used

    def emit(self, event: AsyncEvent) -> None:
        """Queue an event without waiting; count it as dropped if the stream is full or closed."""
        self.emitted += 1
        if self._send is None:
            self.dropped += 1
            return
        try:
            self._send.send_nowait(event)
        except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self.dropped += 1

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Dispatch events to callbacks until ``close()`` is called and the stream is drained."""
        send, receive = anyio.create_memory_object_stream[AsyncEvent](self.queue_size)
        self._send, self._receive = send, receive
        task_status.started()
        with receive:
            async for event in receive:
                await self._dispatch(event)

    def close(self) -> None:
        """Accept no more events; queued ones are still delivered."""
        if self._send is not None:
            self._send.close()

    async def _dispatch(self, event: AsyncEvent) -> None:
        for callback in tuple(self._callbacks.get(event.event_type, ())):
            try:
                outcome = callback(event)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                # A failing observer must not stop the others, the requests or the client.
                self.callback_errors += 1
                logger.exception(
                    "event callback %r raised on %s event of request %r",
                    callback,
                    event.event_type.value,
                    event.context.request_id,
                )
        self.delivered += 1
