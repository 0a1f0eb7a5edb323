"""
The engine behind a client: admission, the request coroutine, and the counters.

A request's life, in its own task::

    submit ──> [admission: client/batch concurrency limits, in the submitter's task]
           ──> start_soon(run) in the owner's task group (the client's or a batch's)
    run: STARTED ─> attempt ─┬─ response ──────────────────────────> SUCCESS
                             ├─ retryable, retry left, time left ──> RETRY, sleep, attempt
                             ├─ other error / no retry left ───────> ERROR (httpx error)
                             ├─ deadline passed / retry can't fit ─> ERROR (DeadlineExceeded)
                             └─ handle.cancel() / owner cancelled ─> CANCELLED

Each attempt waits for the rate limit, then holds a slot of the attempt limiter, sized like the
httpx pool: a cancelled attempt never leaves httpx's pool wedged (RELIABILITY.md, fact 1).
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Final, cast

import anyio
import anyio.lowlevel
import httpx

from ._body import read_capped, release_stream
from ._breaker import CircuitBreaker, CircuitState, Origin
from ._budget import RetryBudget
from ._constants import LATENCY_WINDOW, LOGGER_NAME
from ._context import RequestContext, _current
from ._events import AsyncEvent, EventBus, EventType
from ._exceptions import (
    CircuitOpenError,
    DeadlineExceededError,
    RequestCancelledError,
    RetryAfterTooLongError,
)
from ._phases import AttemptTrace, RequestCounter, phase_of_error, start_counting
from ._redact import SENSITIVE_QUERY_KEYS, end_attempt, redact_url, start_attempt
from ._results import AttemptRecord, RequestResult, RequestStatus, ResultStore
from ._retry import RetryPolicy
from ._retry_after import requested_delay
from ._retrying import Retrying
from ._stats import ClientStats, percentile

if sys.version_info < (3, 11):  # pragma: no cover
    # anyio's own dependency on Python 3.10.
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found, unused-ignore]

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from ._handle import RequestHandle
    from ._limits import RateLimiter
    from ._request import RequestOptions

logger = logging.getLogger(LOGGER_NAME)

_CIRCUIT_EVENT: Final[dict[CircuitState, EventType]] = {
    CircuitState.OPEN: EventType.CIRCUIT_OPENED,
    CircuitState.HALF_OPEN: EventType.CIRCUIT_HALF_OPEN,
    CircuitState.CLOSED: EventType.CIRCUIT_CLOSED,
}

_FINAL_EVENT: Final[dict[RequestStatus, EventType]] = {
    RequestStatus.SUCCESS: EventType.SUCCESS,
    RequestStatus.ERROR: EventType.ERROR,
    RequestStatus.CANCELLED: EventType.CANCELLED,
}


#: The scope of a request without a deadline: nothing to enter.
_NO_SCOPE: Final = contextlib.nullcontext()


def _is_cancellation(exc: BaseException) -> bool:
    """
    Whether ``exc`` is the backend's cancellation, alone or grouped.

    On trio, a cancellation that lands in ``open_tcp_stream`` (its happy-eyeballs nursery)
    arrives as a ``BaseExceptionGroup`` of ``Cancelled``: that is a cancellation too.
    """
    if isinstance(exc, anyio.get_cancelled_exc_class()):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_cancellation(inner) for inner in exc.exceptions)
    return False


async def _close_quietly(response: httpx.Response) -> None:
    """Close a response under a shield: cleanup must finish even while being cancelled."""
    with anyio.CancelScope(shield=True):
        await response.aclose()


def _shrink_timeout(timeout: Any, remaining: float) -> httpx.Timeout:
    """The httpx timeout of an attempt that must end within ``remaining`` seconds."""
    base = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
    remaining = max(remaining, 0.001)

    def cap(value: float | None) -> float:
        return remaining if value is None else min(value, remaining)

    return httpx.Timeout(
        connect=cap(base.connect), read=cap(base.read), write=cap(base.write), pool=cap(base.pool)
    )


def _result(
    handle: RequestHandle,
    context: RequestContext,
    status: RequestStatus,
    response: httpx.Response | None,
    error: BaseException | None,
    start_time: float,
    history: list[AttemptRecord],
    url: str,
) -> RequestResult:
    return RequestResult(
        request_id=handle.request_id,
        status=status,
        response=response,
        error=error,
        attempts=handle._attempts,
        total_time=time.monotonic() - context.started_at,
        start_time=start_time,
        end_time=time.time(),
        context=context,
        wait_time=handle._wait_time,
        history=tuple(history),
        method=handle._method,
        url=url,
    )


class Engine:
    """Runs requests for one client and counts what happens to them."""

    def __init__(
        self,
        http_client: httpx.AsyncClient,
        bus: EventBus,
        results: ResultStore,
        attempt_limit: int | None,
        rate_limiter: RateLimiter | None,
        budget: RetryBudget | None = None,
        breaker: CircuitBreaker | None = None,
        *,
        max_response_bytes: int | None = None,
        max_content_encodings: int | None = None,
        sensitive_query_keys: frozenset[str] = SENSITIVE_QUERY_KEYS,
        counts_requests: bool = False,
    ) -> None:
        self.http_client = http_client
        self.bus = bus
        self.results = results
        self.attempt_limit = attempt_limit
        self.rate_limiter = rate_limiter
        self.budget = budget
        self.breaker = breaker
        self.max_response_bytes = max_response_bytes
        self.max_content_encodings = max_content_encodings
        self.capped = max_response_bytes is not None or max_content_encodings is not None
        self.sensitive_query_keys = sensitive_query_keys
        #: Whether the client's request hooks include count_request (a client we created):
        #: otherwise requests are built here, and an error matched with its request.
        self.counts_requests = counts_requests
        self.attempt_limiter: anyio.Semaphore | None = None
        self.active: dict[str, RequestHandle] = {}
        self.latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self.waiting = 0
        self.started = 0
        self.succeeded = 0
        self.failed = 0
        self.cancelled = 0
        self.attempts = 0
        self.retries = 0
        self.wait_time = 0.0

    def open(self) -> None:
        """Create what needs a running event loop."""
        if self.attempt_limit is not None:
            self.attempt_limiter = anyio.Semaphore(self.attempt_limit)

    def start(
        self,
        task_group: TaskGroup,
        handle: RequestHandle,
        method: str,
        url: httpx.URL | str,
        options: RequestOptions,
        policy: RetryPolicy,
    ) -> None:
        """Register an admitted request and start its task in ``task_group``."""
        handle._method = method
        handle._url = url
        coro = self.run(handle, method, url, options, policy)
        try:
            task = task_group.create_task(coro, name=f"request {handle.request_id}")
        except BaseException:
            # The task group refused the task (closed to new arrivals): nothing is registered,
            # and the never-started coroutine is closed without a "never awaited" warning.
            coro.close()
            raise
        # Registered only once its task exists, so every request in flight has a task that
        # will end it (the task cannot run before this synchronous block returns).
        handle._task = task
        self.active[handle.request_id] = handle
        self.started += 1

    async def _wait_for_rate(self, handle: RequestHandle) -> None:
        assert self.rate_limiter is not None
        self.waiting += 1
        try:
            handle._wait_time += await self.rate_limiter.wait()
        finally:
            self.waiting -= 1

    def _attempt_options(
        self, handle: RequestHandle, options: RequestOptions, trace: AttemptTrace | None
    ) -> dict[str, Any]:
        """The httpx arguments of the attempt about to start, which is counted here."""
        kwargs = cast("dict[str, Any]", options)
        deadline = handle._deadline
        if deadline != math.inf:
            remaining = deadline - anyio.current_time()
            timeout = _shrink_timeout(kwargs.get("timeout", self.http_client.timeout), remaining)
            kwargs = {**kwargs, "timeout": timeout}
        if trace is not None:
            # httpx accepts extensions=None: "or {}" keeps it working.
            extensions = kwargs.get("extensions") or {}
            kwargs = {**kwargs, "extensions": {**extensions, "trace": trace}}
        self.attempts += 1
        handle._attempts += 1
        return kwargs

    def _build(
        self, method: str, url: httpx.URL | str, kwargs: dict[str, Any]
    ) -> tuple[httpx.Request, dict[str, Any]]:
        """
        The attempt's first request, and the arguments of ``send``.

        The engine builds the request itself (as ``httpx.AsyncClient.request`` does) so that an
        error can be matched with the request that raised it: an error raised by a later
        request of the attempt (a redirect hop, an auth challenge's answer) comes after the
        first request was sent, whatever its type.
        """
        if "auth" in kwargs or "follow_redirects" in kwargs:
            send_kwargs: dict[str, Any] = {
                k: kwargs[k] for k in ("auth", "follow_redirects") if k in kwargs
            }
            kwargs = {k: v for k, v in kwargs.items() if k not in send_kwargs}
            return self.http_client.build_request(method, url, **kwargs), send_kwargs
        return self.http_client.build_request(method, url, **kwargs), {}

    async def _send(self, request: httpx.Request, send_kwargs: dict[str, Any]) -> httpx.Response:
        if not self.capped:
            return await self.http_client.send(request, **send_kwargs)
        # Streamed, so that the body is read under the caps (see _body.py).
        response = await self.http_client.send(request, stream=True, **send_kwargs)
        await read_capped(response, self.max_response_bytes, self.max_content_encodings)
        return response

    async def _acquire_slot(self, limiter: anyio.Semaphore, kwargs: dict[str, Any]) -> None:
        """
        Wait for a slot of the attempt limiter, within the pool timeout as httpx would.

        The limiter stands in front of httpx's pool (sized like it), so waiting here is waiting
        for a connection: the same ``timeout.pool`` bounds it, and ``httpx.PoolTimeout`` ends it.
        """
        timeout = kwargs.get("timeout", self.http_client.timeout)
        pool = (timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)).pool
        if pool is None:
            await limiter.acquire()
            return
        with anyio.move_on_after(pool):
            await limiter.acquire()
            return
        raise httpx.PoolTimeout(f"no connection became free within the pool timeout ({pool}s)")

    def _origin(self, url: httpx.URL | str) -> Origin:
        full = self.http_client.base_url.join(url) if self.http_client.base_url else httpx.URL(url)
        port = full.port or (443 if full.scheme == "https" else 80)
        return (full.scheme, full.host, port)

    def _circuit_event(
        self, state: CircuitState | None, context: RequestContext, origin: Origin
    ) -> None:
        if state is None:
            return
        event_type = _CIRCUIT_EVENT[state]
        if self.bus.wants(event_type):
            self.bus.emit(AsyncEvent(event_type, context, data={"origin": origin}))

    async def run(
        self,
        handle: RequestHandle,
        method: str,
        url: httpx.URL | str,
        options: RequestOptions,
        policy: RetryPolicy,
    ) -> None:
        """The request's own task: attempts, backoff sleeps, events, and the final result."""
        bus = self.bus
        http_client = self.http_client
        deadline = handle._deadline
        # A scope of its own only when the request has a deadline; handle.cancel() cancels the
        # task's own scope (anyio's task handle has one already).
        scope = None if deadline == math.inf else anyio.CancelScope(deadline=deadline)
        context = handle.context
        _current.set(context)
        start_time = time.time()
        response: httpx.Response | None = None
        error: BaseException | None = None
        final_error: BaseException | None = None
        out_of_time = False
        history: list[AttemptRecord] = []
        breaker = self.breaker
        try:
            # Inside the try: whatever raises here ends this request only.
            # The retry bookkeeping is built at the first attempt that could be retried: a
            # response under a policy that never retries responses needs none.
            retrying: Retrying | None = None
            traced = not policy.is_default
            retries_responses = bool(policy.retry_statuses) or policy.predicate is not None
            user_trace = (options.get("extensions") or {}).get("trace") if traced else None
            origin = None if breaker is None else self._origin(url)
            if self.budget is not None:
                self.budget.deposit()
            with _NO_SCOPE if scope is None else scope:
                if handle._cancel_requested:
                    # Cancelled before its task ran: end here, with no attempt counted (a flag
                    # check, cheaper than a checkpoint on every request).
                    await anyio.lowlevel.checkpoint_if_cancelled()
                if bus.wants(EventType.STARTED):
                    await self._emit(
                        AsyncEvent(EventType.STARTED, context, metadata=context.metadata)
                    )
                while True:
                    if (
                        handle._attempts == 0
                        and deadline != math.inf
                        and anyio.current_time() >= deadline
                    ):
                        # The deadline passed while the request waited for admission: it ends
                        # with no attempt.
                        out_of_time = True
                        break
                    probe = False
                    if breaker is not None and origin is not None:
                        allowed, changed, retry_in = breaker.acquire(origin)
                        self._circuit_event(changed, context, origin)
                        if not allowed:
                            final_error = CircuitOpenError(context.request_id, origin, retry_in)
                            final_error.__cause__ = error
                            break
                        probe = breaker.state(origin) is CircuitState.HALF_OPEN
                    trace = AttemptTrace(user_trace) if traced else None
                    attempt_start = time.monotonic()
                    exc: Exception | None = None
                    request: httpx.Request | None = None
                    send_kwargs: dict[str, Any] = {}
                    counter: RequestCounter | None = None
                    sent_before = False
                    try:
                        # The attempt, inline (a coroutine frame less per request in flight):
                        # the rate limit, a slot of the attempt limiter, then httpx.
                        if self.rate_limiter is not None:
                            await self._wait_for_rate(handle)
                        kwargs = self._attempt_options(handle, options, trace)
                        if self.counts_requests:
                            counter = start_counting()
                        if self.capped or not self.counts_requests:
                            request, send_kwargs = self._build(method, url, kwargs)
                        limiter = self.attempt_limiter
                        if limiter is not None:
                            try:
                                # A free slot is taken without yielding to the event loop
                                # (acquire() always does).
                                limiter.acquire_nowait()
                            except anyio.WouldBlock:
                                await self._acquire_slot(limiter, kwargs)
                        # Redirect hops are guarded only where httpx may follow them.
                        guarded = kwargs.get("follow_redirects", http_client.follow_redirects)
                        if guarded:
                            start_attempt()
                        try:
                            if request is not None:
                                response = await self._send(request, send_kwargs)
                            else:
                                # The common path: httpx's own request() (which the seed's
                                # tests patch).
                                response = await http_client.request(method, url, **kwargs)
                        finally:
                            if guarded:
                                end_attempt()
                            if limiter is not None:
                                limiter.release()
                        error = None  # the last attempt got a response
                    except Exception as caught:
                        exc = error = caught
                        response = None
                        # Raised by a later request of the attempt (a redirect hop, an auth
                        # challenge's answer): the first one reached the server.
                        if counter is not None:
                            sent_before = counter.sent_before
                        elif request is not None:
                            failed = getattr(caught, "_request", None)
                            sent_before = failed is not None and failed is not request
                    except BaseException as interrupted:
                        # Cancelled (or worse) mid-attempt: the attempt is still on record, and
                        # a half-open circuit gets its probe slot back.
                        if probe and breaker is not None and origin is not None:
                            breaker.abandon(origin)
                        if handle._attempts > len(history):
                            history.append(
                                AttemptRecord(
                                    context.attempt_number,
                                    attempt_start - context.started_at,
                                    time.monotonic() - attempt_start,
                                    None if trace is None else trace.phase,
                                    type(interrupted).__name__,
                                    None,
                                    0.0,
                                )
                            )
                        raise
                    duration = time.monotonic() - attempt_start
                    if breaker is not None and origin is not None:
                        failed = exc is not None or (
                            response is not None and response.status_code >= 500
                        )
                        changed = breaker.record(origin, failed=failed, probe=probe)
                        self._circuit_event(changed, context, origin)
                    phase = None
                    try:
                        if retrying is None and (exc is not None or retries_responses):
                            retrying = Retrying(
                                policy, method, url, options, context, self.http_client.headers
                            )
                        if retrying is None:
                            retry = False
                        elif exc is not None:
                            phase = trace.phase if trace is not None else phase_of_error(exc)
                            retry, _why = retrying.retries_error(
                                exc, context, trace, sent_before=sent_before
                            )
                        else:
                            assert response is not None
                            retry = retrying.retries_response(response, context)
                    except Exception as predicate_error:
                        # The policy's predicate raised: the user's bug ends this request
                        # with that error (logged), never the client or the other requests.
                        logger.exception(
                            "the retry predicate raised for request %r", context.request_id
                        )
                        final_error = predicate_error
                        if response is not None:
                            await _close_quietly(response)
                            response = None
                        retry = False

                    # Everything of this attempt's record but the sleep that follows it.
                    attempt = (
                        context.attempt_number,
                        attempt_start - context.started_at,
                        duration,
                        phase,
                        None if exc is None else type(exc).__name__,
                        None if response is None else response.status_code,
                    )

                    if not retry:
                        history.append(AttemptRecord(*attempt, 0.0))
                        break
                    assert retrying is not None
                    delay = retrying.next_delay(context)
                    requested: float | None = None
                    if response is not None and not retrying.instant:
                        requested = requested_delay(response)
                        if requested is not None:
                            limit = min(policy.max_retry_after, deadline - anyio.current_time())
                            if requested > limit:
                                history.append(AttemptRecord(*attempt, 0.0))
                                final_error = RetryAfterTooLongError(
                                    context.request_id, requested, max(0.0, limit), response
                                )
                                response = None
                                break
                            delay = requested
                    if anyio.current_time() + delay >= deadline:
                        # The retry could not even start before the deadline: end now.
                        history.append(AttemptRecord(*attempt, 0.0))
                        out_of_time = True
                        if response is not None:
                            await _close_quietly(response)
                            response = None
                        break
                    # Spent last: only a retry that will really happen takes a token.
                    if self.budget is not None and not self.budget.try_spend():
                        history.append(AttemptRecord(*attempt, 0.0))
                        if bus.wants(EventType.BUDGET_EXHAUSTED):
                            bus.emit(AsyncEvent(EventType.BUDGET_EXHAUSTED, context, error=exc))
                        break
                    history.append(AttemptRecord(*attempt, delay))
                    following = context.next_attempt()
                    self.retries += 1
                    if bus.wants(EventType.RETRY):
                        data: dict[str, Any] = {"delay": delay, "attempt": following.attempt_number}
                        if response is not None:
                            data["status_code"] = response.status_code
                            data["retry_after"] = requested
                        await self._emit(
                            AsyncEvent(
                                EventType.RETRY,
                                following,
                                data=data,
                                error=exc,
                                metadata=following.metadata,
                            )
                        )
                    if logger.isEnabledFor(logging.DEBUG):
                        logger.debug(
                            "request %r: %s on attempt %d, retrying in %.3fs",
                            context.request_id,
                            type(exc).__name__
                            if exc is not None
                            else f"HTTP {response.status_code}"
                            if response is not None
                            else "?",
                            context.attempt_number,
                            delay,
                        )
                    if response is not None:
                        # Read already; closing returns its connection to the pool at once.
                        await _close_quietly(response)
                        response = None
                    await anyio.sleep(delay)
                    context = following
                    handle._set_context(context)
                    _current.set(context)
        except BaseException as exc:
            if _is_cancellation(exc) or not isinstance(exc, Exception):
                # Cancelled from outside the request (its owner's task group or the owner's
                # host), or a BaseException such as KeyboardInterrupt: record the end, then
                # propagate.
                cancelled = _is_cancellation(exc)
                status = RequestStatus.CANCELLED if cancelled else RequestStatus.ERROR
                outcome = None if cancelled else exc
                self.finish(handle, context, status, None, outcome, start_time, history)
                raise
            # An Exception that escaped the attempt loop (a bug here, in a hook or in a context
            # subclass) ends this request with it, below, like any other final error: it must
            # not take the client's other requests down.
            logger.exception("request %r failed inside the client", context.request_id)
            final_error = exc
            if response is not None:
                await _close_quietly(response)
                response = None
        # Exactly one of these ends the request (finish() itself never raises).
        if final_error is not None:
            self.finish(
                handle, context, RequestStatus.ERROR, None, final_error, start_time, history
            )
        elif response is not None:
            release_stream(response)
            self.finish(handle, context, RequestStatus.SUCCESS, response, None, start_time, history)
        elif out_of_time or (scope is not None and scope.cancelled_caught):
            timeout = handle._timeout
            deadline_error = DeadlineExceededError(
                context.request_id, handle._attempts, timeout, error
            )
            self.finish(
                handle, context, RequestStatus.ERROR, None, deadline_error, start_time, history
            )
        else:
            self.finish(handle, context, RequestStatus.ERROR, None, error, start_time, history)

    async def _emit(self, event: AsyncEvent) -> None:
        if self.bus.blocking:
            await self.bus.publish(event)
        else:
            self.bus.emit(event)

    def finish(
        self,
        handle: RequestHandle,
        context: RequestContext,
        status: RequestStatus,
        response: httpx.Response | None,
        error: BaseException | None,
        start_time: float,
        history: list[AttemptRecord],
    ) -> None:
        """
        Record the request's result, emit its final event and wake its waiters, once.

        It never raises: a request's task must end its request exactly once and never raise
        into its owner's task group. Should recording fail (a bug, or a user's ``on_finish``
        chain), the failure is logged and the handle still gets a result.
        """
        if handle._result is not None:
            return
        try:
            self._record(handle, context, status, response, error, start_time, history)
        except Exception as failure:
            logger.exception("recording the end of request %r failed", handle.request_id)
            self.active.pop(handle.request_id, None)
            if handle._result is None:
                handle._result = _result(
                    handle, context, RequestStatus.ERROR, None, failure, start_time, history, ""
                )

    def _record(
        self,
        handle: RequestHandle,
        context: RequestContext,
        status: RequestStatus,
        response: httpx.Response | None,
        error: BaseException | None,
        start_time: float,
        history: list[AttemptRecord],
    ) -> None:
        if status is RequestStatus.SUCCESS:
            self.succeeded += 1
        elif status is RequestStatus.ERROR:
            self.failed += 1
        else:
            self.cancelled += 1
            error = RequestCancelledError(context.request_id, handle._attempts)
        result = _result(
            handle,
            context,
            status,
            response,
            error,
            start_time,
            history,
            redact_url(handle._url, self.sensitive_query_keys),
        )
        total_time = result.total_time
        self.results.add(result)
        self.latencies.append(total_time)
        self.wait_time += handle._wait_time
        self.active.pop(handle.request_id, None)
        event_type = _FINAL_EVENT[status]
        if self.bus.wants(event_type):
            data: dict[str, Any] = {
                "attempts": result.attempts,
                "total_time": total_time,
                "method": result.method,
                "url": result.url,
            }
            if response is not None:
                data["status_code"] = response.status_code
            # The final event never waits, even for a blocking subscriber: finishing must not
            # block (it also runs while the request is being cancelled).
            self.bus.emit(
                AsyncEvent(event_type, context, data=data, error=error, metadata=context.metadata)
            )
        handle._finish(result)

    def cancel_all(self) -> None:
        for handle in tuple(self.active.values()):
            handle.cancel()

    async def wait_idle(self) -> None:
        while self.active:
            await next(iter(self.active.values())).wait_result()

    def stats(self) -> ClientStats:
        bus = self.bus
        latencies = sorted(self.latencies)
        return ClientStats(
            in_flight=len(self.active),
            waiting=self.waiting,
            started=self.started,
            succeeded=self.succeeded,
            failed=self.failed,
            cancelled=self.cancelled,
            attempts=self.attempts,
            retries=self.retries,
            events_emitted=bus.emitted,
            events_dropped=bus.dropped + bus.subscriber_dropped,
            events_pending=bus.pending,
            callback_errors=bus.callback_errors,
            results_kept=len(self.results),
            results_evicted=self.results.evicted,
            results_body_bytes=self.results.body_bytes,
            results_bodies_evicted=self.results.bodies_evicted,
            wait_time=self.wait_time,
            latency_p50=percentile(latencies, 50),
            latency_p95=percentile(latencies, 95),
            latency_p99=percentile(latencies, 99),
            retries_refused=0 if self.budget is None else self.budget.retries_refused,
            circuit_rejected=0 if self.breaker is None else self.breaker.rejected,
            circuits_open=0
            if self.breaker is None
            else sum(s is not CircuitState.CLOSED for s in self.breaker.states().values()),
        )
