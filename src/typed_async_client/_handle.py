"""
``RequestHandle``: what submitting a request returns.

A handle is awaitable any number of times, from any task, on asyncio and on trio, and it can be
passed to ``asyncio.gather``: awaiting it waits for the request's end and returns its response,
or raises the exception of its last attempt.

The request belongs to the client, not to whoever awaits the handle: if the awaiting task is
cancelled, the request goes on and its result is still recorded. ``handle.cancel()`` is how a
request is stopped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, final

import anyio.lowlevel
import httpx

from ._context import RequestContext
from ._results import RequestResult

if TYPE_CHECKING:
    from anyio import TaskHandle


@final
class RequestHandle:
    """
    A submitted request: await it for its response.

    Attributes:
        request_id: the request's id, the key of its result.
    """

    __slots__ = (
        "_attempts",
        "_cancel_requested",
        "_context",
        "_deadline",
        "_method",
        "_on_finish",
        "_result",
        "_task",
        "_timeout",
        "_url",
        "_wait_time",
        "request_id",
    )

    def __init__(
        self,
        context: RequestContext,
        *,
        deadline: float = math.inf,
        timeout: float = math.inf,
        on_finish: Callable[[RequestHandle], None] | None = None,
    ) -> None:
        self.request_id = context.request_id
        self._context = context
        self._deadline = deadline
        self._timeout = timeout
        self._cancel_requested = False
        self._on_finish = on_finish
        self._wait_time = 0.0
        self._attempts = 0
        self._method = ""
        self._url: httpx.URL | str = ""
        # The request's task, once started: cancel() cancels it and waiters wait for its end
        # (anyio's task handle carries a cancel scope and an event already: the request needs
        # no other).
        self._task: TaskHandle[None] | None = None
        self._result: RequestResult | None = None

    def __repr__(self) -> str:
        state = "pending" if self._result is None else self._result.status.value
        return f"<RequestHandle {self.request_id!r} {state}>"

    @property
    def context(self) -> RequestContext:
        """The context of the latest attempt (of the last one once the request has ended)."""
        return self._context

    @property
    def deadline(self) -> float:
        """The request's deadline on the event loop's clock (``inf`` when it has none)."""
        return self._deadline

    @property
    def result(self) -> RequestResult | None:
        """The request's result once it has ended, else ``None``."""
        return self._result

    def done(self) -> bool:
        """Whether the request has ended (success, error or cancellation)."""
        return self._result is not None

    def cancel(self) -> None:
        """
        Cancel the request if it is still running; it then ends with status ``CANCELLED``.

        Cancelling a request that has ended does nothing.
        """
        if self._result is None:
            self._cancel_requested = True
            if self._task is not None:
                self._task.cancel()

    async def wait_result(self) -> RequestResult:
        """Wait for the request's end and return its result, whatever the outcome; never raises."""
        if self._result is None:
            assert self._task is not None, "a handle is returned once its task has started"
            await self._task.wait()
        else:
            # A checkpoint all the same, as anyio's Event.wait() makes one: awaiting a handle
            # always yields and honours the caller's cancellation, done or not.
            await anyio.lowlevel.checkpoint()
        assert self._result is not None
        return self._result

    async def wait(self) -> httpx.Response:
        """
        Wait for the request's end and return its response.

        Raises:
            Exception: the exception of the last attempt (an httpx exception, unchanged).
            RequestCancelledError: the request was cancelled.
        """
        return await self

    def __await__(self) -> Generator[Any, None, httpx.Response]:
        # wait_result() inline, without a coroutine frame: awaiting a handle is the hot path.
        if self._result is None:
            assert self._task is not None, "a handle is returned once its task has started"
            yield from self._task.wait().__await__()
        else:
            yield from anyio.lowlevel.checkpoint().__await__()
        result = self._result
        assert result is not None
        if result.response is not None:
            return result.response
        assert result.error is not None
        raise result.error

    def _set_context(self, context: RequestContext) -> None:
        self._context = context

    def _finish(self, result: RequestResult) -> None:
        self._result = result
        self._context = result.context
        if self._on_finish is not None:
            self._on_finish(self)
