"""
Events and their fan-out to callbacks.

Request coroutines never call user code. They put events on a bounded anyio memory object
stream with ``send_nowait``; one dispatcher task, in the client's task group, reads the stream
and calls the callbacks registered for each event type, one at a time, in order.

Overflow is a decision, not an accident: when the stream is full (callbacks slower than the
requests), the new event is dropped and counted in ``dropped``. A request is never slowed down
by its observers. An event is only built when some callback or subscriber wants its type, so
unobserved requests pay nothing for events.

Subscribers (``client.events()``) get every matching event through a bounded stream of their
own: a broadcast, not a work queue. A subscriber that falls behind loses its *oldest* events
(the newest are the most useful to a monitor), counted on its stream; one that opted in with
``overflow="block"`` makes the requests wait for it instead, until the client starts closing.

Closing must never wait for an observer. ``release_backpressure()``, where the client's close
starts, lets every request waiting for a blocking subscriber go on at once: from then on an
event that finds no room is dropped and counted on that subscriber's stream.
``wait_finished(cancel_after=...)`` bounds the wait for the callbacks: past it the dispatcher is
cancelled and what it had not delivered is dropped and counted.
"""

from __future__ import annotations

import enum
import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal

import anyio
import anyio.lowlevel
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._constants import DEFAULT_EVENT_DRAIN_TIMEOUT, LOGGER_NAME
from ._context import RequestContext

logger = logging.getLogger(LOGGER_NAME)

_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})


class EventType(str, enum.Enum):
    """
    What an event reports.

    Per request: one ``STARTED``, one ``RETRY`` before each retry, then exactly one of
    ``SUCCESS``, ``ERROR`` or ``CANCELLED``. ``BUDGET_EXHAUSTED`` and the ``CIRCUIT_*`` events
    report the retry budget and the circuit breaker, with the context of the request that
    triggered them (``data["origin"]`` for circuits).
    """

    STARTED = "started"
    RETRY = "retry"
    SUCCESS = "success"
    ERROR = "error"
    CANCELLED = "cancelled"
    BUDGET_EXHAUSTED = "budget_exhausted"
    """A retry was refused by the client's retry budget; the request ends."""
    CIRCUIT_OPENED = "circuit_opened"
    CIRCUIT_HALF_OPEN = "circuit_half_open"
    CIRCUIT_CLOSED = "circuit_closed"

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

Overflow = Literal["drop_oldest", "block"]


def _next_queued(receive: MemoryObjectReceiveStream[AsyncEvent]) -> AsyncEvent | None:
    """The next event already in the buffer, or ``None`` (empty, ended or closed)."""
    try:
        return receive.receive_nowait()
    except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
        return None


#: How many times a request waiting for room in a blocking subscriber's buffer tries again
#: after being woken (each wake-up follows an event taken by the subscriber): past it, its event
#: is dropped and counted rather than retried forever.
_MAX_ROOM_WAITS: Final = 10_000


class EventStream:
    """
    The receiving end of one subscription: ``async for event in stream``.

    Iteration ends when the client closes (after the events already queued) or when the
    subscription's ``async with`` block is left.

    Attributes:
        event_types: the types this stream receives (every type when empty).
        overflow: ``"drop_oldest"`` or ``"block"``.
        dropped: events this subscriber lost because its buffer was full.
    """

    def __init__(
        self,
        event_types: frozenset[EventType],
        buffer: int,
        overflow: Overflow,
        on_drop: Callable[[], None],
    ) -> None:
        self.event_types = event_types
        self.overflow = overflow
        self.dropped = 0
        self._taken = 0
        self._on_drop = on_drop
        self._send, self._receive = anyio.create_memory_object_stream[AsyncEvent](buffer)
        # Backpressure state: the requests waiting in put() wait for this event, set when an
        # event is taken, on release() and at the end; once released, put() never waits again.
        self._released = False
        self._room: anyio.Event | None = None

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> AsyncEvent:
        queued = _next_queued(self._receive)
        if queued is not None:
            self._made_room()
            # No scheduler pass per event while the subscriber is behind; it still yields to
            # the scheduler at least once per 64 events, so a reader never starves the loop.
            self._taken += 1
            if self._taken % 64:
                return queued
            await anyio.lowlevel.checkpoint()
            return queued
        try:
            event = await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None
        self._made_room()
        return event

    async def receive(self) -> AsyncEvent:
        """
        Wait for the next event.

        Raises:
            anyio.EndOfStream: the client closed and every queued event was received.
        """
        event = await self._receive.receive()
        self._made_room()
        return event

    @property
    def pending(self) -> int:
        """Events queued for this subscriber."""
        return self._send.statistics().current_buffer_used

    def accepts(self, event_type: EventType) -> bool:
        return not self.event_types or event_type in self.event_types

    def offer(self, event: AsyncEvent) -> None:
        """Queue without waiting, dropping the oldest queued event when full."""
        try:
            self._send.send_nowait(event)
        except anyio.WouldBlock:
            # The buffer is full (its size is >= 1): make room by dropping the oldest event.
            self._receive.receive_nowait()
            self._drop()
            self._send.send_nowait(event)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._drop()

    def offer_or_drop(self, event: AsyncEvent) -> None:
        """Queue without waiting; drop (and count) this event if the buffer is full."""
        try:
            self._send.send_nowait(event)
        except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._drop()

    async def put(self, event: AsyncEvent) -> None:
        """
        Queue, waiting for room (``overflow="block"``), until ``release()``.

        Released (before or while waiting), the event is queued if there is room, else dropped
        and counted. The event only ever enters the buffer through ``send_nowait``, and a
        waiter waits for *room*, not inside the memory stream's ``send()``: a cancelled
        ``send()`` cannot tell whether the receiver took its item just before, so counting its
        drop could count an event that was delivered.
        """
        for _ in range(_MAX_ROOM_WAITS):
            if self._released:
                break
            try:
                self._send.send_nowait(event)
                return
            except anyio.WouldBlock:
                pass
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                self._drop()
                return
            room = self._room
            if room is None:
                room = self._room = anyio.Event()
            try:
                await room.wait()
            except BaseException:
                # The request was cancelled while it waited: its event never entered the
                # buffer, so it is lost, and counted.
                self._drop()
                raise
        self.offer_or_drop(event)

    def _made_room(self) -> None:
        """Wake the requests waiting for room (each then tries again)."""
        room = self._room
        if room is not None:
            self._room = None
            room.set()

    def release(self) -> None:
        """Stop making requests wait: those waiting in ``put()`` go on, and later ones too."""
        self._released = True
        self._made_room()

    def _drop(self) -> None:
        self.dropped += 1
        self._on_drop()

    def end(self) -> None:
        """No more events: iteration ends once the queue is drained."""
        self._send.close()
        self._made_room()

    def close(self) -> None:
        self._send.close()
        self._receive.close()
        self._made_room()


class EventBus:
    """
    The bounded stream of events and the callbacks it feeds.

    Lifecycle: ``await task_group.start(bus.run)`` starts the dispatcher;
    ``release_backpressure()`` stops blocking subscribers from holding requests back (the first
    step of closing: requests still in flight must be able to finish); ``close()`` stops
    accepting events (and releases backpressure, if not done yet); the dispatcher ends once it
    has delivered what was already queued, within ``close()``'s ``drain_timeout`` and
    ``wait_finished()``'s ``cancel_after``. Past either, what is left is dropped and counted.
    """

    def __init__(self, queue_size: int) -> None:
        if isinstance(queue_size, bool) or not isinstance(queue_size, int):
            raise TypeError(f"event_queue_size must be an int, got {type(queue_size).__name__}")
        if queue_size < 1:
            raise ValueError(f"event_queue_size must be >= 1, got {queue_size}")
        self.queue_size = queue_size
        self._callbacks: dict[EventType, list[EventCallback]] = {}
        self._streams: list[EventStream] = []
        self._blocking: tuple[EventStream, ...] = ()
        self._wanted: frozenset[EventType] = frozenset()
        self._released = False
        self._closed = False
        self._send: MemoryObjectSendStream[AsyncEvent] | None = None
        self._receive: MemoryObjectReceiveStream[AsyncEvent] | None = None
        self.emitted = 0
        self.dropped = 0
        self.delivered = 0
        self.callback_errors = 0
        self.subscriber_dropped = 0
        self._drain_scope: anyio.CancelScope | None = None
        self._dispatching = False
        self._finished: anyio.Event | None = None
        self._dispatcher: int | None = None

    def add_callback(self, event_type: EventType, callback: EventCallback) -> None:
        if not isinstance(event_type, EventType):
            raise TypeError(f"event_type must be an EventType, got {event_type!r}")
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        self._callbacks.setdefault(event_type, []).append(callback)
        self._refresh()

    def remove_callback(self, event_type: EventType, callback: EventCallback) -> None:
        callbacks = self._callbacks.get(event_type, [])
        try:
            callbacks.remove(callback)
        except ValueError:
            raise ValueError(f"{callback!r} is not registered for {event_type}") from None
        if not callbacks:
            del self._callbacks[event_type]
        self._refresh()

    @staticmethod
    def check_subscription(event_types: frozenset[EventType], buffer: int, overflow: str) -> None:
        """Reject bad subscription arguments with a clear error."""
        for event_type in event_types:
            if not isinstance(event_type, EventType):
                raise TypeError(f"event types must be EventType members, got {event_type!r}")
        if isinstance(buffer, bool) or not isinstance(buffer, int):
            raise TypeError(f"buffer must be an int, got {type(buffer).__name__}")
        if buffer < 1:
            raise ValueError(f"buffer must be >= 1, got {buffer}")
        if overflow not in ("drop_oldest", "block"):
            raise ValueError(f"overflow must be 'drop_oldest' or 'block', got {overflow!r}")

    def subscribe(
        self, event_types: frozenset[EventType], buffer: int, overflow: Overflow
    ) -> EventStream:
        """Open a subscriber stream; it has already ended if the bus is closed."""
        self.check_subscription(event_types, buffer, overflow)
        stream = EventStream(event_types, buffer, overflow, self._count_subscriber_drop)
        if self._released:
            stream.release()
        if self._closed:
            stream.end()
        else:
            self._streams.append(stream)
            self._refresh()
        return stream

    def _count_subscriber_drop(self) -> None:
        self.subscriber_dropped += 1

    def unsubscribe(self, stream: EventStream) -> None:
        if stream in self._streams:
            self._streams.remove(stream)
            self._refresh()
        stream.close()

    def _refresh(self) -> None:
        wanted = set(self._callbacks)
        for stream in self._streams:
            wanted.update(stream.event_types or EventType)
        self._wanted = frozenset(wanted)
        if not self._released:
            self._blocking = tuple(s for s in self._streams if s.overflow == "block")

    def wants(self, event_type: EventType) -> bool:
        """Whether an event of this type would reach anyone (if not, do not build it)."""
        return event_type in self._wanted

    @property
    def blocking(self) -> bool:
        """Whether some subscriber asked for backpressure (then use ``publish``)."""
        return bool(self._blocking)

    @property
    def pending(self) -> int:
        """Events queued for the callbacks and not yet dispatched."""
        if self._send is None:
            return 0
        return self._send.statistics().current_buffer_used

    async def publish(self, event: AsyncEvent) -> None:
        """
        Like ``emit``, but wait until every blocking subscriber has room for the event.

        After ``release_backpressure()`` this waits for no one (and is the same as ``emit``).
        """
        blocking = self._blocking
        if not blocking:
            self._fan_out(event, wait_for_blocking=False)
            return
        self._fan_out(event, wait_for_blocking=True)
        for stream in blocking:
            if stream.accepts(event.event_type):
                await stream.put(event)

    def release_backpressure(self) -> None:
        """
        Stop blocking subscribers from holding requests back, for good.

        Requests waiting for room in a ``overflow="block"`` subscriber go on at once, and no
        request waits again: an event that finds a blocking subscriber's buffer full is dropped
        and counted (on its stream and in ``subscriber_dropped``). Subscribers still receive
        what fits. Call it when closing starts, before waiting for the requests in flight: a
        subscriber that stopped reading (or that waits for ``close()`` to return) would
        otherwise hold them, and the close, forever. ``close()`` calls it too.
        """
        self._released = True
        self._blocking = ()
        for stream in self._streams:
            if stream.overflow == "block":
                stream.release()

    def emit(self, event: AsyncEvent) -> None:
        """
        Queue an event without waiting.

        Counted as dropped when the callback stream is full or closed; a lagging subscriber
        loses its oldest event, a full blocking subscriber loses this one (counted on it).
        """
        self._fan_out(event, wait_for_blocking=False)

    def _fan_out(self, event: AsyncEvent, *, wait_for_blocking: bool) -> None:
        self.emitted += 1
        event_type = event.event_type
        for stream in self._streams:
            if not stream.accepts(event_type):
                continue
            if stream.overflow == "drop_oldest":
                stream.offer(event)
            elif not wait_for_blocking:
                stream.offer_or_drop(event)
        if event_type not in self._callbacks:
            return
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
        self._finished = anyio.Event()
        self._dispatcher = anyio.get_current_task().id
        try:
            await self._dispatch_all(receive, task_status)
        finally:
            # Cleared at the end: a finished task's id may be given to a new task.
            self._dispatcher = None
            self._finished.set()

    def in_dispatcher(self) -> bool:
        """
        Whether the current task is the running dispatcher (so: inside an event callback).

        Code that may run in a callback must not wait for the dispatcher to finish, since the
        dispatcher is waiting for that callback to return.
        """
        return self._dispatcher is not None and anyio.get_current_task().id == self._dispatcher

    async def wait_finished(self, *, cancel_after: float = math.inf) -> None:
        """
        Wait until the dispatcher has ended.

        After ``close()`` it ends once the callbacks have taken the queued events, or at
        ``close()``'s ``drain_timeout``. ``cancel_after`` brings that end forward: past it the
        dispatcher is cancelled, and the event whose callbacks it was running plus those still
        queued are counted in ``dropped``; this then waits for the (prompt) end. It is not a
        timeout of the wait (wrap the call in a cancel scope for that): the dispatcher, not the
        caller, is cancelled. A callback that cannot be cancelled (a blocking plain function, a
        shielded scope) still delays the end until it returns.

        Returns at once when the dispatcher never started, has ended, or is the calling task
        (a callback cannot wait for its own dispatcher; see ``in_dispatcher()``).

        Args:
            cancel_after: seconds to wait before cancelling the dispatcher (``0``: at once).

        Raises:
            TypeError: ``cancel_after`` is not a number.
            ValueError: ``cancel_after`` is negative or NaN.
        """
        if isinstance(cancel_after, bool) or not isinstance(cancel_after, (int, float)):
            raise TypeError(
                f"cancel_after must be a number of seconds, got {type(cancel_after).__name__}"
            )
        if not cancel_after >= 0:
            raise ValueError(f"cancel_after must be >= 0, got {cancel_after}")
        finished = self._finished
        if finished is None or finished.is_set() or self.in_dispatcher():
            return
        with anyio.move_on_after(cancel_after):
            await finished.wait()
        if not finished.is_set():
            if self._drain_scope is not None:
                self._drain_scope.cancel()
            await finished.wait()

    async def _dispatch_all(
        self, receive: MemoryObjectReceiveStream[AsyncEvent], task_status: TaskStatus[None]
    ) -> None:
        with receive:
            try:
                with anyio.CancelScope() as self._drain_scope:
                    task_status.started()
                    async for first in receive:
                        event: AsyncEvent | None = first
                        # Take every event already queued before waiting again: receive()
                        # yields to the scheduler once per event, which let a busy client
                        # outrun its dispatcher.
                        while event is not None:
                            self._dispatching = True
                            await self._dispatch(event)
                            self._dispatching = False
                            event = _next_queued(receive)
            finally:
                if self._dispatching:  # interrupted half-way through its callbacks
                    self.dropped += 1
                    self._dispatching = False
                # Cancelled (close()'s drain timeout passed, or the client's owner was
                # cancelled): what was left is lost, and counted, not silently dropped.
                self._discard(receive)

    def _discard(self, receive: MemoryObjectReceiveStream[AsyncEvent]) -> None:
        for _ in range(receive.statistics().current_buffer_used):
            try:
                receive.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream):
                break
            self.dropped += 1

    def close(self, drain_timeout: float = DEFAULT_EVENT_DRAIN_TIMEOUT) -> None:
        """
        Accept no more events; queued ones are still delivered, then subscriber streams end.

        The callbacks get ``drain_timeout`` seconds to take what is queued: past it the
        dispatcher is cancelled and the undelivered events are counted as dropped, so a hung
        callback cannot hang the client's close. Backpressure is released first (see
        ``release_backpressure()``): no request waits for a blocking subscriber any more.
        """
        self.release_backpressure()
        self._closed = True
        if self._drain_scope is not None:
            self._drain_scope.deadline = anyio.current_time() + drain_timeout
        if self._send is not None:
            self._send.close()
        for stream in self._streams:
            stream.end()

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
