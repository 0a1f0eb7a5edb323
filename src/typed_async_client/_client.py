"""
``AsyncResilientClient``: an ``httpx.AsyncClient`` whose requests run in a task group the client
owns, retried on connection errors, observed through events, and remembered as results.

Lifecycle (a client is used once)::

    UNOPENED --open()/__aenter__--> OPEN --close()/__aexit__--> CLOSING --> CLOSED

``open()`` enters the client's task group and starts the event dispatcher in it. ``close()``
refuses new requests, waits for the requests in flight (or cancels them with ``cancel=True``),
lets the dispatcher deliver the events already emitted, then exits the task group and closes the
httpx client it created. ``open()`` and ``close()`` must run in the same task, as the two halves
of ``async with`` do.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, cast

import anyio
import httpx
from anyio.abc import TaskGroup

from ._constants import (
    DEFAULT_EVENT_QUEUE_SIZE,
    DEFAULT_LIMITS,
    DEFAULT_MAX_REDIRECTS,
    DEFAULT_MAX_RESULTS,
    DEFAULT_TIMEOUT,
    LOGGER_NAME,
)
from ._context import RequestContext, _current, _new_request_id
from ._events import AsyncEvent, EventBus, EventCallback, EventType
from ._exceptions import (
    ClientClosedError,
    ClientNotOpenError,
    ClientStateError,
    DuplicateRequestIdError,
    RequestCancelledError,
)
from ._handle import RequestHandle
from ._request import RequestOptions, check_method, check_options, check_url
from ._results import RequestResult, RequestStatus, ResultStore
from ._retry import is_retryable
from ._stats import ClientStats

if TYPE_CHECKING:
    import ssl

    from typing_extensions import Self, Unpack

logger = logging.getLogger(LOGGER_NAME)


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


_FINAL_EVENT: Final[dict[RequestStatus, EventType]] = {
    RequestStatus.SUCCESS: EventType.SUCCESS,
    RequestStatus.ERROR: EventType.ERROR,
    RequestStatus.CANCELLED: EventType.CANCELLED,
}


class AsyncResilientClient:
    """
    A resilient asynchronous HTTP client for asyncio and trio.

    Use it as ``async with AsyncResilientClient() as client:``. Submitting a request
    (``await client.get(url)``) schedules it in the client's task group and returns a
    :class:`RequestHandle`; awaiting the handle gives the response. Requests that fail to
    connect are retried with exponential backoff and full jitter, as their
    :class:`RequestContext` says.

    Args:
        timeout: httpx timeout of each attempt.
        limits: httpx connection pool limits. ``limits.max_connections`` also sizes the limiter
            that gates attempts, so that cancelled requests cannot wedge the pool.
        headers: default headers of every request.
        cookies: default cookies.
        params: default query parameters.
        auth: default authentication.
        base_url: prefix of relative URLs.
        http2: enable HTTP/2 (needs the ``http2`` extra).
        transport: an httpx transport to send requests through.
        verify: TLS verification: ``True``, ``False``, a CA bundle path or an ``ssl.SSLContext``.
        proxy: a proxy URL.
        follow_redirects: follow redirects by default.
        max_redirects: the most redirects followed.
        trust_env: read proxies and certificates from the environment, as httpx does.
        event_hooks: httpx event hooks (``{"request": [...], "response": [...]}``).
        http_client: an ``httpx.AsyncClient`` of your own to use instead of creating one. The
            httpx options above must then be left out; you close it yourself. No attempt
            limiter is applied, since its pool size is unknown.
        event_queue_size: capacity of the event stream to the callbacks; events emitted while it
            is full are dropped and counted.
        max_results: results kept; the oldest finished are evicted first.
        default_context: template of the context of requests submitted without one (each gets
            a fresh ``request_id``).

    Raises:
        ValueError: an argument is out of range (the message names it).
        TypeError: an argument has the wrong type, or httpx options were given together with
            ``http_client``.
    """

    def __init__(
        self,
        *,
        timeout: httpx.Timeout | float | None = DEFAULT_TIMEOUT,
        limits: httpx.Limits = DEFAULT_LIMITS,
        headers: httpx.Headers | Mapping[str, str] | None = None,
        cookies: httpx.Cookies | dict[str, str] | None = None,
        params: httpx.QueryParams | Mapping[str, Any] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        base_url: httpx.URL | str = "",
        http2: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: ssl.SSLContext | str | bool = True,
        proxy: httpx.Proxy | str | None = None,
        follow_redirects: bool = False,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
        trust_env: bool = True,
        event_hooks: Mapping[str, Sequence[Callable[..., Any]]] | None = None,
        http_client: httpx.AsyncClient | None = None,
        event_queue_size: int = DEFAULT_EVENT_QUEUE_SIZE,
        max_results: int = DEFAULT_MAX_RESULTS,
        default_context: RequestContext | None = None,
    ) -> None:
        if not isinstance(limits, httpx.Limits):
            raise TypeError(f"limits must be an httpx.Limits, got {type(limits).__name__}")
        if default_context is not None and not isinstance(default_context, RequestContext):
            raise TypeError(
                f"default_context must be a RequestContext, got {type(default_context).__name__}"
            )
        self._bus = EventBus(event_queue_size)
        self._results = ResultStore(max_results)
        self._default_context = default_context
        self._limiter: anyio.CapacityLimiter | None = None
        self._limiter_size: int | None = None
        if http_client is not None:
            httpx_options_given = (
                timeout is not DEFAULT_TIMEOUT,
                limits is not DEFAULT_LIMITS,
                headers is not None,
                cookies is not None,
                params is not None,
                auth is not None,
                bool(base_url),
                http2,
                transport is not None,
                verify is not True,
                proxy is not None,
                follow_redirects,
                max_redirects != DEFAULT_MAX_REDIRECTS,
                trust_env is not True,
                event_hooks is not None,
            )
            if any(httpx_options_given):
                raise TypeError(
                    "httpx options cannot be combined with http_client: configure the "
                    "httpx.AsyncClient you pass instead"
                )
            if not isinstance(http_client, httpx.AsyncClient):
                raise TypeError(
                    f"http_client must be an httpx.AsyncClient, got {type(http_client).__name__}"
                )
            self._client = http_client
            self._owns_client = False
        else:
            self._client = httpx.AsyncClient(
                timeout=timeout,
                limits=limits,
                headers=headers,
                cookies=cookies,
                params=params,
                auth=auth,
                base_url=base_url,
                http2=http2,
                transport=transport,
                verify=verify,
                proxy=proxy,
                follow_redirects=follow_redirects,
                max_redirects=max_redirects,
                trust_env=trust_env,
                event_hooks={key: list(hooks) for key, hooks in (event_hooks or {}).items()},
            )
            self._owns_client = True
            self._limiter_size = limits.max_connections
        self._has_base_url = bool(str(self._client.base_url))
        self._state = _State.UNOPENED
        self._stack: AsyncExitStack | None = None
        self._tg: TaskGroup | None = None
        self._owner_task: int | None = None
        self._active: dict[str, RequestHandle] = {}
        self._started = 0
        self._succeeded = 0
        self._failed = 0
        self._cancelled = 0
        self._attempts = 0
        self._retries = 0

    def __repr__(self) -> str:
        return (
            f"<AsyncResilientClient {self._state.value} in_flight={len(self._active)} "
            f"results={len(self._results)}>"
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> Self:
        """
        Open the client by hand: enter its task group and start its event dispatcher.

        Prefer ``async with``. A client opened this way must be closed with ``await close()``
        by the same task.

        Raises:
            ClientStateError: the client was already opened.
        """
        if self._state is not _State.UNOPENED:
            raise ClientStateError(f"the client can be opened once; it is {self._state.value}")
        stack = AsyncExitStack()
        try:
            if self._owns_client:
                stack.push_async_callback(self._close_http_client)
            self._limiter = (
                None if self._limiter_size is None else anyio.CapacityLimiter(self._limiter_size)
            )
            tg = await stack.enter_async_context(anyio.create_task_group())
            await tg.start(self._bus.run)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await stack.aclose()
            self._state = _State.CLOSED
            raise
        self._stack = stack
        self._tg = tg
        self._owner_task = anyio.get_current_task().id
        self._state = _State.OPEN
        return self

    async def _initialize_client(self) -> Self:
        """Alias of :meth:`open`, the name the original specification uses."""
        return await self.open()

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # A failing block (or a cancelled one) should not wait for requests it no longer wants.
        await self.close(cancel=exc_type is not None)

    async def close(self, *, cancel: bool = False) -> None:
        """
        Close the client: no new requests, wait for those in flight, deliver pending events.

        Args:
            cancel: cancel the requests in flight instead of waiting for them; each ends with
                status ``CANCELLED``.

        Closing twice does nothing. If the task calling ``close()`` is cancelled while it
        waits, the remaining requests are cancelled too, and the client still ends closed.
        """
        if self._state is _State.UNOPENED:
            self._state = _State.CLOSED
            if self._owns_client:
                await self._close_http_client()
            return
        if self._state is not _State.OPEN:
            return
        if anyio.get_current_task().id != self._owner_task:
            raise ClientStateError(
                "close() must run in the task that opened the client (as 'async with' does)"
            )
        self._state = _State.CLOSING
        try:
            if cancel:
                self._cancel_all()
            await self._wait_idle()
        except BaseException:
            # The closing task was cancelled (or worse) while waiting: stop the requests too.
            self._cancel_all()
            raise
        finally:
            # Queued events are still delivered: the dispatcher ends once the stream is drained.
            self._bus.close()
            assert self._stack is not None
            try:
                # Exits the task group (waiting for its tasks), then closes the httpx client.
                await self._stack.aclose()
            finally:
                self._state = _State.CLOSED

    async def _close_http_client(self) -> None:
        with anyio.CancelScope(shield=True):
            await self._client.aclose()

    def _cancel_all(self) -> None:
        for handle in tuple(self._active.values()):
            handle.cancel()

    async def _wait_idle(self) -> None:
        while self._active:
            await next(iter(self._active.values())).wait_result()

    # -- submitting --------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        url: httpx.URL | str,
        *,
        context: RequestContext | None = None,
        **options: Unpack[RequestOptions],
    ) -> RequestHandle:
        """
        Schedule a request in the client's task group and return its handle.

        Args:
            method: the HTTP method.
            url: an absolute http(s) URL, or a relative one if the client has a ``base_url``.
            context: the request's context; a default one (with a fresh id) when not given.
            **options: httpx request arguments (see :class:`RequestOptions`).

        Returns:
            The request's handle: ``await handle`` for the response.

        Raises:
            ValueError: bad method, URL or header (CR/LF, unsupported scheme...).
            TypeError: an argument of the wrong type or an unknown option.
            DuplicateRequestIdError: a request with the same id is in flight.
            ClientNotOpenError: the client is not open yet.
            ClientClosedError: the client is closing or closed.
        """
        if self._state is not _State.OPEN:
            if self._state is _State.UNOPENED:
                raise ClientNotOpenError()
            raise ClientClosedError()
        method = check_method(method)
        check_url(url, has_base_url=self._has_base_url)
        if options:
            check_options(options)
        now = time.monotonic()
        if context is None:
            template = self._default_context
            context = (
                RequestContext(started_at=now)
                if template is None
                else template.clone(request_id=_new_request_id(), started_at=now)
            )
        elif isinstance(context, RequestContext):
            context = context.clone(started_at=now)
        else:
            raise TypeError(f"context must be a RequestContext, got {type(context).__name__}")
        request_id = context.request_id
        if request_id in self._active:
            raise DuplicateRequestIdError(request_id)
        handle = RequestHandle(context, anyio.CancelScope())
        self._active[request_id] = handle
        self._started += 1
        assert self._tg is not None
        self._tg.start_soon(self._run, handle, method, url, options, name=f"request {request_id}")
        return handle

    async def get(
        self,
        url: httpx.URL | str,
        *,
        context: RequestContext | None = None,
        **options: Unpack[RequestOptions],
    ) -> RequestHandle:
        """Schedule a GET request; see :meth:`request`."""
        return await self.request("GET", url, context=context, **options)

    async def post(
        self,
        url: httpx.URL | str,
        *,
        context: RequestContext | None = None,
        **options: Unpack[RequestOptions],
    ) -> RequestHandle:
        """Schedule a POST request; see :meth:`request`."""
        return await self.request("POST", url, context=context, **options)

    async def put(
        self,
        url: httpx.URL | str,
        *,
        context: RequestContext | None = None,
        **options: Unpack[RequestOptions],
    ) -> RequestHandle:
        """Schedule a PUT request; see :meth:`request`."""
        return await self.request("PUT", url, context=context, **options)

    async def patch(
        self,
        url: httpx.URL | str,
        *,
        context: RequestContext | None = None,
        **options: Unpack[RequestOptions],
    ) -> RequestHandle:
        """Schedule a PATCH request; see :meth:`request`."""
        return await self.request("PATCH", url, context=context, **options)

    async def delete(
        self,
        url: httpx.URL | str,
        *,
        context: RequestContext | None = None,
        **options: Unpack[RequestOptions],
    ) -> RequestHandle:
        """Schedule a DELETE request; see :meth:`request`."""
        return await self.request("DELETE", url, context=context, **options)

    async def head(
        self,
        url: httpx.URL | str,
        *,
        context: RequestContext | None = None,
        **options: Unpack[RequestOptions],
    ) -> RequestHandle:
        """Schedule a HEAD request; see :meth:`request`."""
        return await self.request("HEAD", url, context=context, **options)

    async def options(
        self,
        url: httpx.URL | str,
        *,
        context: RequestContext | None = None,
        **options: Unpack[RequestOptions],
    ) -> RequestHandle:
        """Schedule an OPTIONS request; see :meth:`request`."""
        return await self.request("OPTIONS", url, context=context, **options)

    # -- running -----------------------------------------------------------------------------

    async def _attempt(
        self, method: str, url: httpx.URL | str, options: RequestOptions
    ) -> httpx.Response:
        self._attempts += 1
        kwargs = cast("dict[str, Any]", options)
        if self._limiter is None:
            return await self._client.request(method, url, **kwargs)
        async with self._limiter:
            return await self._client.request(method, url, **kwargs)

    async def _run(
        self, handle: RequestHandle, method: str, url: httpx.URL | str, options: RequestOptions
    ) -> None:
        """The request's own task: attempts, backoff sleeps, events, and the final result."""
        bus = self._bus
        context = handle.context
        _current.set(context)
        start_time = time.time()
        response: httpx.Response | None = None
        error: BaseException | None = None
        try:
            with handle._scope:
                if bus.wants(EventType.STARTED):
                    bus.emit(AsyncEvent(EventType.STARTED, context, metadata=context.metadata))
                while True:
                    try:
                        response = await self._attempt(method, url, options)
                        break
                    except Exception as exc:
                        error = exc
                        if not (context.can_retry and is_retryable(exc)):
                            break
                    delay = context.backoff_delay()
                    following = context.next_attempt()
                    self._retries += 1
                    if bus.wants(EventType.RETRY):
                        bus.emit(
                            AsyncEvent(
                                EventType.RETRY,
                                following,
                                data={"delay": delay, "attempt": following.attempt_number},
                                error=error,
                                metadata=following.metadata,
                            )
                        )
                    if logger.isEnabledFor(logging.DEBUG):
                        logger.debug(
                            "request %r: %s on attempt %d, retrying in %.3fs",
                            context.request_id,
                            type(error).__name__,
                            context.attempt_number,
                            delay,
                        )
                    await anyio.sleep(delay)
                    context = following
                    handle._set_context(context)
                    _current.set(context)
        except BaseException as exc:
            # Cancelled from outside the request (the client's task group or its host), or a
            # BaseException such as KeyboardInterrupt: record the end, then let it propagate.
            cancelled = isinstance(exc, anyio.get_cancelled_exc_class())
            status = RequestStatus.CANCELLED if cancelled else RequestStatus.ERROR
            self._finish(handle, context, status, None, None if cancelled else exc, start_time)
            raise
        if response is not None:
            self._finish(handle, context, RequestStatus.SUCCESS, response, None, start_time)
        elif handle._scope.cancel_called:
            self._finish(handle, context, RequestStatus.CANCELLED, None, None, start_time)
        else:
            self._finish(handle, context, RequestStatus.ERROR, None, error, start_time)

    def _finish(
        self,
        handle: RequestHandle,
        context: RequestContext,
        status: RequestStatus,
        response: httpx.Response | None,
        error: BaseException | None,
        start_time: float,
    ) -> None:
        if status is RequestStatus.SUCCESS:
            self._succeeded += 1
        elif status is RequestStatus.ERROR:
            self._failed += 1
        else:
            self._cancelled += 1
            error = RequestCancelledError(context.request_id, context.attempt_number)
        result = RequestResult(
            request_id=context.request_id,
            status=status,
            response=response,
            error=error,
            attempts=context.attempt_number,
            total_time=time.monotonic() - context.started_at,
            start_time=start_time,
            end_time=time.time(),
            context=context,
        )
        self._results.add(result)
        del self._active[context.request_id]
        event_type = _FINAL_EVENT[status]
        if self._bus.wants(event_type):
            data: dict[str, Any] = {"attempts": result.attempts, "total_time": result.total_time}
            if response is not None:
                data["status_code"] = response.status_code
            self._bus.emit(
                AsyncEvent(event_type, context, data=data, error=error, metadata=context.metadata)
            )
        handle._finish(result)

    # -- events ------------------------------------------------------------------------------

    def add_event_callback(self, event_type: EventType, callback: EventCallback) -> None:
        """
        Call ``callback(event)`` for every event of ``event_type`` (plain or async callables).

        Callbacks run one at a time in the client's dispatcher task, never in the request's
        task. One that raises is logged and counted (``stats().callback_errors``); the others,
        the request and the client go on.
        """
        self._bus.add_callback(event_type, callback)

    def remove_event_callback(self, event_type: EventType, callback: EventCallback) -> None:
        """
        Stop calling a callback added with :meth:`add_event_callback`.

        Raises:
            ValueError: the callback is not registered for that event type.
        """
        self._bus.remove_callback(event_type, callback)

    # -- results -----------------------------------------------------------------------------

    def get_result(self, request_id: str) -> RequestResult | None:
        """The result of a finished request, or ``None`` if unknown, in flight or evicted."""
        return self._results.get(request_id)

    def get_all_results(self) -> dict[str, RequestResult]:
        """A copy of every result kept, by request id, oldest finished first."""
        return self._results.snapshot()

    async def wait_for_all_requests(self) -> dict[str, RequestResult]:
        """Wait until no request is in flight, then return :meth:`get_all_results`."""
        await self._wait_idle()
        return self._results.snapshot()

    def clear_old_results(self, max_age: float) -> int:
        """
        Remove the results that ended more than ``max_age`` seconds ago.

        Returns:
            How many were removed.

        Raises:
            ValueError: ``max_age`` is negative or NaN.
        """
        if isinstance(max_age, bool) or not isinstance(max_age, (int, float)):
            raise TypeError(f"max_age must be a number of seconds, got {type(max_age).__name__}")
        if not max_age >= 0:
            raise ValueError(f"max_age must be >= 0, got {max_age}")
        return self._results.clear_older_than(max_age)

    # -- state -------------------------------------------------------------------------------

    @property
    def http_client(self) -> httpx.AsyncClient:
        """The underlying ``httpx.AsyncClient``."""
        return self._client

    @property
    def active_tasks_count(self) -> int:
        """Requests in flight."""
        return len(self._active)

    @property
    def results_count(self) -> int:
        """Results kept."""
        return len(self._results)

    @property
    def event_queue_size(self) -> int:
        """Events waiting in the event stream for the dispatcher (not its capacity)."""
        return self._bus.pending

    @property
    def is_closed(self) -> bool:
        """Whether ``close()`` has started (no request can be submitted any more)."""
        return self._state in (_State.CLOSING, _State.CLOSED)

    def stats(self) -> ClientStats:
        """An immutable snapshot of the client's counters."""
        bus = self._bus
        return ClientStats(
            in_flight=len(self._active),
            started=self._started,
            succeeded=self._succeeded,
            failed=self._failed,
            cancelled=self._cancelled,
            attempts=self._attempts,
            retries=self._retries,
            events_emitted=bus.emitted,
            events_dropped=bus.dropped,
            events_pending=bus.pending,
            callback_errors=bus.callback_errors,
            results_kept=len(self._results),
            results_evicted=self._results.evicted,
        )
