"""
``AsyncResilientClient``: an ``httpx.AsyncClient`` whose requests run in a task group the client
owns, retried on connection errors, observed through events, and remembered as results.

Lifecycle (a client is used once)::

    UNOPENED --open()/__aenter__--> OPEN --close()/__aexit__--> CLOSING --> DRAINED --> CLOSED

``open()`` enters the client's task group and starts the event dispatcher in it. Closing has
two halves. Stopping (``OPEN -> CLOSING -> DRAINED``) refuses new requests, waits for the
requests in flight (or cancels them with ``cancel=True``, or after ``grace`` seconds), lets the
dispatcher deliver the events already emitted and ends the event streams: any task may do it,
once (a second closer waits for the first). Exiting the task group (``DRAINED -> CLOSED``) and
closing the httpx client the client created can only be done where the task group was entered:
by ``__aexit__``, or by ``close()`` of a client opened by hand, in the opener's task and scope.

The request coroutines themselves live in ``_engine.py``; batches in ``_batch.py``.
"""

from __future__ import annotations

import enum
import math
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.lowlevel
import httpx

from ._batch import Batch
from ._breaker import CircuitBreaker
from ._budget import RetryBudget
from ._constants import (
    DEFAULT_EVENT_QUEUE_SIZE,
    DEFAULT_LIMITS,
    DEFAULT_MAX_REDIRECTS,
    DEFAULT_MAX_RESULT_BYTES,
    DEFAULT_MAX_RESULTS,
    DEFAULT_SUBSCRIBER_BUFFER,
    DEFAULT_TIMEOUT,
)
from ._context import RequestContext, _new_request_id
from ._engine import Engine
from ._events import EventBus, EventCallback, EventStream, EventType, Overflow
from ._exceptions import (
    ClientClosedError,
    ClientNotOpenError,
    ClientStateError,
    DuplicateRequestIdError,
    TransportRetriesWarning,
)
from ._handle import RequestHandle
from ._limits import RateLimiter
from ._phases import count_request
from ._redact import (
    SENSITIVE_HEADERS,
    SENSITIVE_QUERY_KEYS,
    RedirectGuard,
    install_httpx_log_redaction,
    normalize_names,
)
from ._request import (
    RequestOptions,
    check_auth,
    check_cookies,
    check_headers,
    check_method,
    check_options,
    check_params,
    check_timeout,
    check_url,
)
from ._results import RequestResult, ResultStore
from ._retry import DEFAULT_POLICY, RetryPolicy
from ._scopes import is_innermost
from ._stats import ClientStats
from ._verbs import VerbMethods

if TYPE_CHECKING:
    import ssl
    from collections.abc import AsyncIterator

    from anyio.abc import TaskGroup
    from typing_extensions import Self, Unpack


#: The template of a request submitted without a context or a client default.
_DEFAULT_CONTEXT: Final = RequestContext()


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSING = "closing"
    DRAINED = "drained"  # closed to requests, task group left for __aexit__ to exit
    CLOSED = "closed"


def _with_redirect_guard(
    event_hooks: Mapping[str, Sequence[Callable[..., Any]]] | None, guard: RedirectGuard
) -> dict[str, list[Callable[..., Any]]]:
    """
    The user's hooks, with ours last among the request hooks: the redirect guard, and the
    counter that tells whether an attempt's first request was already sent (see _phases.py).
    """
    hooks = {key: list(value) for key, value in (event_hooks or {}).items()}
    hooks.setdefault("request", []).extend((guard, count_request))
    return hooks


def _warn_if_transport_retries(transport: httpx.AsyncBaseTransport | None) -> None:
    """Warn when the wrapped transport retries too: attempts would multiply."""
    pool = getattr(transport, "_pool", None)  # httpx.AsyncHTTPTransport(retries=N) keeps N there
    retries = getattr(pool, "_retries", 0)
    if isinstance(retries, int) and retries > 0:
        warnings.warn(
            f"the transport retries failed connections itself (retries={retries}); with the "
            "client's own retries, attempts multiply. Use one or the other.",
            TransportRetriesWarning,
            stacklevel=3,
        )


def _check_limit(name: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int or None, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1 or None, got {value}")


async def _cancelled_submission() -> None:
    """
    A submission from a cancelled scope (``current_effective_deadline()`` is ``-inf``) raises
    the submitter's cancellation, as any checkpoint there would: nothing is scheduled, rather
    than a request that inherits an already cancelled deadline and ends as an error.
    """
    await anyio.lowlevel.checkpoint_if_cancelled()


class AsyncResilientClient(VerbMethods):
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
        trust_env: read proxies (``HTTP_PROXY``...) and certificates (``SSL_CERT_FILE``...)
            from the environment. Off by default, unlike httpx: where requests go should not
            change with the environment unless you ask for it.
        event_hooks: httpx event hooks (``{"request": [...], "response": [...]}``).
        http_client: an ``httpx.AsyncClient`` of your own to use instead of creating one. The
            httpx options above must then be left out; you close it yourself. No attempt
            limiter is applied, since its pool size is unknown.
        event_queue_size: capacity of the event stream to the callbacks; events emitted while it
            is full are dropped and counted.
        max_results: results kept; the oldest finished are evicted first.
        max_result_bytes: bytes of response bodies kept in the results (64 MiB by default);
            past it the oldest results lose their body (their record stays, with
            ``body_evicted`` set). ``None``: no byte bound; ``0``: keep no body.
        default_context: template of the context of requests submitted without one (each gets
            a fresh ``request_id``).
        max_concurrency: requests in flight at most, across the client and all its batches;
            submitting waits for a free slot, so no surplus task ever exists.
        max_per_second: attempts started per second at most, evenly spaced.
        retry_policy: what is retried (default: connection errors only); a request can pass
            its own.
        retry_budget: a client-wide cap on retries as a fraction of requests.
        circuit_breaker: per-origin circuits that fail fast while an origin keeps failing.
        max_response_bytes: the most bytes a decoded response body may hold; past it the
            attempt fails with ``ResponseTooLargeError`` (bodies are then streamed and counted).
        max_content_encodings: the most stacked ``Content-Encoding`` codings accepted
            (``TooManyEncodingsError`` beyond).
        sensitive_headers: header names to treat as secrets, besides ``Authorization``,
            ``Proxy-Authorization``, ``Cookie``, ``Set-Cookie`` and ``X-Api-Key``: stripped from
            redirects that change origin or leave https, redacted wherever shown.
        sensitive_query_keys: query keys whose values are redacted in results and events,
            besides the usual ones (``token``, ``api_key``, ``password``...).

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
        trust_env: bool = False,
        event_hooks: Mapping[str, Sequence[Callable[..., Any]]] | None = None,
        http_client: httpx.AsyncClient | None = None,
        event_queue_size: int = DEFAULT_EVENT_QUEUE_SIZE,
        max_results: int = DEFAULT_MAX_RESULTS,
        max_result_bytes: int | None = DEFAULT_MAX_RESULT_BYTES,
        default_context: RequestContext | None = None,
        max_concurrency: int | None = None,
        max_per_second: float | None = None,
        retry_policy: RetryPolicy | None = None,
        retry_budget: RetryBudget | None = None,
        circuit_breaker: CircuitBreaker | None = None,
        max_response_bytes: int | None = None,
        max_content_encodings: int | None = None,
        sensitive_headers: Iterable[str] = (),
        sensitive_query_keys: Iterable[str] = (),
    ) -> None:
        if not isinstance(limits, httpx.Limits):
            raise TypeError(f"limits must be an httpx.Limits, got {type(limits).__name__}")
        # httpx takes these as given: 0 makes every request wait forever for a connection
        # (and close() with it), a negative value fails later, at open(), with anyio's message.
        for name in ("max_connections", "max_keepalive_connections"):
            value = getattr(limits, name)
            minimum = 1 if name == "max_connections" else 0
            if value is not None and value < minimum:
                raise ValueError(f"limits.{name} must be >= {minimum} or None, got {value}")
        if default_context is not None and not isinstance(default_context, RequestContext):
            raise TypeError(
                f"default_context must be a RequestContext, got {type(default_context).__name__}"
            )
        _check_limit("max_concurrency", max_concurrency)
        _check_limit("max_response_bytes", max_response_bytes)
        check_timeout(timeout)
        if headers is not None:
            check_headers(headers)
        # Client-wide values get the per-request checks: a bad one would fail every request.
        if cookies is not None:
            check_cookies(cookies)
        if params is not None:
            check_params(params)
        if auth is not None:
            check_auth(auth)
        if max_content_encodings is not None and (
            isinstance(max_content_encodings, bool)
            or not isinstance(max_content_encodings, int)
            or max_content_encodings < 0
        ):
            raise ValueError(
                f"max_content_encodings must be an int >= 0 or None, got {max_content_encodings!r}"
            )
        secret_headers = SENSITIVE_HEADERS | normalize_names(sensitive_headers, "sensitive_headers")
        secret_keys = SENSITIVE_QUERY_KEYS | normalize_names(
            sensitive_query_keys, "sensitive_query_keys"
        )
        install_httpx_log_redaction(secret_keys, secret_headers)
        self._secret_keys = secret_keys
        for name, value, kind in (
            ("retry_policy", retry_policy, RetryPolicy),
            ("retry_budget", retry_budget, RetryBudget),
            ("circuit_breaker", circuit_breaker, CircuitBreaker),
        ):
            if value is not None and not isinstance(value, kind):
                raise TypeError(f"{name} must be a {kind.__name__}, got {type(value).__name__}")
        self._policy = DEFAULT_POLICY if retry_policy is None else retry_policy
        bus = EventBus(event_queue_size)
        results = ResultStore(max_results, max_result_bytes)
        rate_limiter = None if max_per_second is None else RateLimiter(max_per_second)
        attempt_limit: int | None = None
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
                trust_env,
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
            _warn_if_transport_retries(getattr(http_client, "_transport", None))
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
                event_hooks=_with_redirect_guard(event_hooks, RedirectGuard(secret_headers)),
            )
            self._owns_client = True
            attempt_limit = limits.max_connections
            _warn_if_transport_retries(transport)
        self._engine = Engine(
            self._client,
            bus,
            results,
            attempt_limit,
            rate_limiter,
            retry_budget,
            circuit_breaker,
            max_response_bytes=max_response_bytes,
            max_content_encodings=max_content_encodings,
            sensitive_query_keys=secret_keys,
            counts_requests=self._owns_client,
        )
        self._default_context = default_context
        self._max_concurrency = max_concurrency
        self._concurrency: anyio.CapacityLimiter | None = None
        self._has_base_url = bool(str(self._client.base_url))
        self._state = _State.UNOPENED
        self._stack: AsyncExitStack | None = None
        self._tg: TaskGroup | None = None
        self._owner_task: int | None = None
        self._drained: anyio.Event | None = None
        self._managed = False

    def __repr__(self) -> str:
        return (
            f"<AsyncResilientClient {self._state.value} in_flight={len(self._engine.active)} "
            f"results={len(self._engine.results)}>"
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
            self._engine.open()
            if self._max_concurrency is not None:
                self._concurrency = anyio.CapacityLimiter(self._max_concurrency)
            tg = await stack.enter_async_context(anyio.create_task_group())
            await tg.start(self._engine.bus.run)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await stack.aclose()
            self._state = _State.CLOSED
            raise
        self._stack = stack
        self._tg = tg
        self._owner_task = anyio.get_current_task().id
        self._drained = anyio.Event()
        self._state = _State.OPEN
        return self

    async def _initialize_client(self) -> Self:
        """Alias of :meth:`open`, the name the original specification uses."""
        return await self.open()

    async def __aenter__(self) -> Self:
        await self.open()
        self._managed = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # A failing block (or a cancelled one) should not wait for requests it no longer wants.
        # If close() is running in another task (a shutdown task), wait for it to end the
        # requests; exiting the task group is always done here, where it was entered.
        try:
            await self._stop(cancel=exc_type is not None, grace=None)
        finally:
            if self._state is _State.CLOSING:
                # Cancelled while another task was closing the client: the task group must
                # still be exited here, on the way out, so its requests go too.
                self._engine.cancel_all()
            if self._state in (_State.CLOSING, _State.DRAINED):
                await self._exit_task_group()

    async def close(self, *, cancel: bool = False, grace: float | None = None) -> None:
        """
        Close the client: no new requests, wait for those in flight, deliver pending events.

        Args:
            cancel: cancel the requests in flight at once instead of waiting for them; each
                ends with status ``CANCELLED``.
            grace: wait at most this many seconds for the requests in flight, then cancel the
                rest.

        Closing twice does nothing; a second ``close()`` while one is running waits for it. If
        the task calling ``close()`` is cancelled while it waits, the remaining requests are
        cancelled too. Event streams end once their queued events are read.

        Where it may be called from:

        * a client used with ``async with``: from any task and any scope, an event callback
          included. ``close()`` ends the requests and the event streams; leaving the block
          exits the client's task group (the client is then closed).
        * a client opened with ``open()``: from the task that opened it, at the level where it
          opened it (not inside a cancel scope or task group entered after ``open()``: bound the
          shutdown with ``grace`` instead). Anywhere else it raises ``ClientStateError`` before
          anything changes, since exiting the task group there would corrupt the scopes.

        Raises:
            ClientStateError: a client opened with ``open()``, closed from another task or from
                inside a scope entered after ``open()``.
            ValueError: ``grace`` is negative or NaN.
        """
        if grace is not None and (
            isinstance(grace, bool)
            or not isinstance(grace, (int, float))
            or not (math.isfinite(grace) and grace >= 0)
        ):
            raise ValueError(
                f"grace must be a finite number of seconds >= 0 or None, got {grace!r}"
            )
        if self._state is _State.UNOPENED:
            self._state = _State.CLOSED
            self._engine.bus.close()
            if self._owns_client:
                await self._close_http_client()
            return
        if self._managed:
            # Inside `async with`, close() ends the requests and the event streams from any task
            # and any scope, and leaves exiting the task group to __aexit__, which runs where
            # the scopes nest properly.
            await self._stop(cancel=cancel, grace=grace)
            return
        if self._state in (_State.OPEN, _State.CLOSING, _State.DRAINED):
            # Opened by hand: the task group is exited here, which only the opener's task can do,
            # at the level where it opened the client. Refused before anything changes.
            problem = self._cannot_exit_here()
            if problem is not None:
                raise ClientStateError(problem)
        await self._stop(cancel=cancel, grace=grace)
        if self._state is _State.DRAINED:
            await self._exit_task_group()

    def _cannot_exit_here(self) -> str | None:
        """Why the current task cannot exit the client's task group now (``None``: it can)."""
        if anyio.get_current_task().id != self._owner_task:
            return (
                "close() must run in the task that opened the client with open(); "
                "use 'async with' to close it from anywhere"
            )
        assert self._tg is not None
        if is_innermost(self._tg.cancel_scope) is False:
            return (
                "close() must run at the level where open() was called, not inside a cancel "
                "scope or task group entered after open() (such as anyio.fail_after()); bound "
                "the shutdown with close(grace=...) instead"
            )
        return None

    async def _stop(self, *, cancel: bool, grace: float | None) -> None:
        """End the requests and the event streams, once, whichever task asks first."""
        if self._state is _State.OPEN:
            self._state = _State.CLOSING
            assert self._drained is not None
            try:
                await self._drain(cancel=cancel, grace=grace)
            finally:
                if self._state is _State.CLOSING:  # not exited meanwhile by __aexit__
                    self._state = _State.DRAINED
                self._drained.set()
        elif self._state is _State.CLOSING:
            # Another task is closing the client: wait for it (cancelling now if asked), unless
            # this is an event callback: the other closer waits for the dispatcher, this task.
            if cancel:
                self._engine.cancel_all()
            if self._engine.bus.in_dispatcher():
                return
            assert self._drained is not None
            await self._drained.wait()

    async def _exit_task_group(self) -> None:
        """Exit the task group (waiting for its tasks), then close the httpx client."""
        assert self._stack is not None
        try:
            await self._stack.aclose()
        finally:
            self._state = _State.CLOSED

    async def _drain(self, *, cancel: bool, grace: float | None) -> None:
        """Stop the requests in flight (waiting for them first, unless told not to)."""
        engine = self._engine
        # Nothing waits for a subscriber from here on (overflow="block" included): a subscriber
        # that stopped reading must not hold the requests, hence close(). What cannot be queued
        # for it is dropped and counted.
        engine.bus.release_backpressure()
        give_up = math.inf if grace is None else anyio.current_time() + grace
        try:
            if cancel:
                engine.cancel_all()
            with anyio.move_on_after(math.inf if grace is None else grace):
                await engine.wait_idle()
            engine.cancel_all()
            await engine.wait_idle()
        except BaseException:
            # The closing task was cancelled (or worse) while waiting: stop the requests too.
            engine.cancel_all()
            raise
        finally:
            # Queued events are still delivered: the dispatcher ends once the stream is drained.
            engine.bus.close()
        if not engine.bus.in_dispatcher():
            # close() from an event callback must not wait for the dispatcher, its own task:
            # the dispatcher ends on its own once the callback returns. The grace bounds the
            # delivery too: past it, what is left is dropped and counted.
            await engine.bus.wait_finished(cancel_after=max(0.0, give_up - anyio.current_time()))

    async def _close_http_client(self) -> None:
        with anyio.CancelScope(shield=True):
            await self._client.aclose()

    # -- submitting --------------------------------------------------------------------------

    def _prepare(
        self,
        method: str,
        url: httpx.URL | str,
        context: RequestContext | None,
        options: RequestOptions,
        on_finish: Callable[[RequestHandle], None] | None = None,
    ) -> tuple[str, RequestHandle]:
        """Check the call and build the request's handle; nothing is scheduled yet."""
        self._check_open()
        method = check_method(method)
        check_url(url, has_base_url=self._has_base_url, sensitive_query_keys=self._secret_keys)
        if options:
            check_options(options)
        now = time.monotonic()
        if context is None:
            template = self._default_context or _DEFAULT_CONTEXT
            context = template._renewed(now, _new_request_id())
        elif isinstance(context, RequestContext):
            context = context._renewed(now)
        else:
            raise TypeError(f"context must be a RequestContext, got {type(context).__name__}")
        if context.request_id in self._engine.active:
            raise DuplicateRequestIdError(context.request_id)
        deadline = timeout = math.inf
        inherited = anyio.current_effective_deadline() if context.inherit_deadline else math.inf
        if context.total_timeout is not None or inherited != math.inf:
            # The clock is read only when some deadline applies (the common case has none).
            clock = anyio.current_time()
            if context.total_timeout is not None:
                timeout = context.total_timeout
                deadline = clock + timeout
            if inherited < deadline:
                deadline = inherited
                timeout = max(0.0, inherited - clock)
        handle = RequestHandle(context, deadline=deadline, timeout=timeout, on_finish=on_finish)
        return method, handle

    def _check_open(self) -> None:
        if self._state is not _State.OPEN:
            if self._state is _State.UNOPENED:
                raise ClientNotOpenError()
            raise ClientClosedError()

    async def _admit_and_start(
        self,
        task_group: TaskGroup,
        handle: RequestHandle,
        method: str,
        url: httpx.URL | str,
        options: RequestOptions,
        policy: RetryPolicy,
        limiters: Sequence[anyio.CapacityLimiter],
        check_owner: Callable[[], None] | None = None,
    ) -> None:
        """
        Wait for a slot of each limiter (in order), then start the request's task.

        ``check_owner`` raises if the task group's owner (a batch) stopped accepting requests
        while we waited; the client's own state is checked too.
        """
        engine = self._engine
        acquired: list[anyio.CapacityLimiter] = []
        if not limiters:
            engine.start(task_group, handle, method, url, options, policy)
            return
        engine.waiting += 1
        started_waiting = anyio.current_time()
        try:
            for limiter in limiters:
                await limiter.acquire_on_behalf_of(handle)
                acquired.append(limiter)
            # The client or the batch may have closed, or the id been taken, while we waited.
            self._check_open()
            if check_owner is not None:
                check_owner()
            if handle.request_id in engine.active:
                raise DuplicateRequestIdError(handle.request_id)
            handle._wait_time = anyio.current_time() - started_waiting
            release = handle._on_finish

            def release_slots(done: RequestHandle) -> None:
                for limiter in acquired:
                    limiter.release_on_behalf_of(done)
                if release is not None:
                    release(done)

            handle._on_finish = release_slots
            engine.start(task_group, handle, method, url, options, policy)
        except BaseException:
            # Not started (start() registers nothing when its task cannot be created).
            for limiter in acquired:
                limiter.release_on_behalf_of(handle)
            raise
        finally:
            engine.waiting -= 1

    async def request(
        self,
        method: str,
        url: httpx.URL | str,
        *,
        context: RequestContext | None = None,
        retry_policy: RetryPolicy | None = None,
        **options: Unpack[RequestOptions],
    ) -> RequestHandle:
        """
        Schedule a request in the client's task group and return its handle.

        Waits only when ``max_concurrency`` requests are already in flight.

        Args:
            method: the HTTP method.
            url: an absolute http(s) URL, or a relative one if the client has a ``base_url``.
            context: the request's context; a default one (with a fresh id) when not given.
            retry_policy: this request's retry policy instead of the client's.
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
        method, handle = self._prepare(method, url, context, options)
        if handle.deadline == -math.inf:
            await _cancelled_submission()
        policy = self._policy_for(retry_policy)
        assert self._tg is not None
        if self._concurrency is None:
            # Nothing to wait for: started at once, without a coroutine of its own.
            self._engine.start(self._tg, handle, method, url, options, policy)
        else:
            await self._admit_and_start(
                self._tg, handle, method, url, options, policy, (self._concurrency,)
            )
        return handle

    def _policy_for(self, retry_policy: RetryPolicy | None) -> RetryPolicy:
        if retry_policy is None:
            return self._policy
        if not isinstance(retry_policy, RetryPolicy):
            raise TypeError(
                f"retry_policy must be a RetryPolicy, got {type(retry_policy).__name__}"
            )
        return retry_policy

    def batch(
        self,
        *,
        max_concurrency: int | None = None,
        fail_fast: bool = False,
        collect_results: bool = True,
    ) -> Batch:
        """
        A group of requests scoped by ``async with``; see :class:`Batch`.

        Args:
            max_concurrency: the batch's requests in flight at most (the client's own limit
                applies too).
            fail_fast: the first request that ends with an error cancels the rest of the batch,
                and leaving the block raises it in an ``ExceptionGroup``.
            collect_results: keep every request's handle so that ``batch.results`` lists them;
                turn it off for huge batches whose results you read elsewhere (events, the
                client's bounded result store), so memory stays flat.
        """
        _check_limit("max_concurrency", max_concurrency)
        for name, flag in (("fail_fast", fail_fast), ("collect_results", collect_results)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be a bool, got {type(flag).__name__}")
        return Batch(
            self,
            max_concurrency=max_concurrency,
            fail_fast=fail_fast,
            collect_results=collect_results,
        )

    # -- events ------------------------------------------------------------------------------

    def add_event_callback(self, event_type: EventType, callback: EventCallback) -> None:
        """
        Call ``callback(event)`` for every event of ``event_type`` (plain or async callables).

        Callbacks run one at a time in the client's dispatcher task, never in the request's
        task. One that raises is logged and counted (``stats().callback_errors``); the others,
        the request and the client go on.
        """
        self._engine.bus.add_callback(event_type, callback)

    def remove_event_callback(self, event_type: EventType, callback: EventCallback) -> None:
        """
        Stop calling a callback added with :meth:`add_event_callback`.

        Raises:
            ValueError: the callback is not registered for that event type.
        """
        self._engine.bus.remove_callback(event_type, callback)

    def events(
        self,
        *event_types: EventType,
        buffer: int = DEFAULT_SUBSCRIBER_BUFFER,
        overflow: Overflow = "drop_oldest",
    ) -> AbstractAsyncContextManager[EventStream]:
        """
        Subscribe to events: ``async with client.events(EventType.RETRY) as stream:``.

        Every subscriber gets every matching event (a broadcast), through a buffer of its own.
        Leaving the block unsubscribes; the stream ends when the client closes.

        Args:
            *event_types: the types to receive; all of them when none is given.
            buffer: events queued for this subscriber at most.
            overflow: ``"drop_oldest"`` (the default) drops the oldest queued event when the
                buffer is full and counts it in ``stream.dropped``: requests never wait.
                ``"block"`` makes requests wait for room instead (backpressure); their final
                event is never held back, and is dropped and counted if there is no room.

        Raises:
            ValueError: ``buffer < 1`` or an unknown ``overflow``.
            TypeError: an argument of the wrong type.
        """
        types = frozenset(event_types)
        EventBus.check_subscription(types, buffer, overflow)
        return self._subscription(types, buffer, overflow)

    @asynccontextmanager
    async def _subscription(
        self, event_types: frozenset[EventType], buffer: int, overflow: Overflow
    ) -> AsyncIterator[EventStream]:
        stream = self._engine.bus.subscribe(event_types, buffer, overflow)
        try:
            yield stream
        finally:
            self._engine.bus.unsubscribe(stream)

    # -- results -----------------------------------------------------------------------------

    def get_result(self, request_id: str) -> RequestResult | None:
        """The result of a finished request, or ``None`` if unknown, in flight or evicted."""
        return self._engine.results.get(request_id)

    def get_all_results(self) -> dict[str, RequestResult]:
        """A copy of every result kept, by request id, oldest finished first."""
        return self._engine.results.snapshot()

    async def wait_for_all_requests(self) -> dict[str, RequestResult]:
        """Wait until no request is in flight, then return :meth:`get_all_results`."""
        await self._engine.wait_idle()
        return self._engine.results.snapshot()

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
        return self._engine.results.clear_older_than(max_age)

    # -- state -------------------------------------------------------------------------------

    @property
    def http_client(self) -> httpx.AsyncClient:
        """The underlying ``httpx.AsyncClient``."""
        return self._client

    @property
    def active_tasks_count(self) -> int:
        """Requests in flight."""
        return len(self._engine.active)

    @property
    def results_count(self) -> int:
        """Results kept."""
        return len(self._engine.results)

    @property
    def event_queue_size(self) -> int:
        """Events waiting in the event stream for the dispatcher (not its capacity)."""
        return self._engine.bus.pending

    @property
    def is_closed(self) -> bool:
        """Whether ``close()`` has started (no request can be submitted any more)."""
        return self._state in (_State.CLOSING, _State.DRAINED, _State.CLOSED)

    def stats(self) -> ClientStats:
        """An immutable snapshot of the client's counters."""
        return self._engine.stats()
