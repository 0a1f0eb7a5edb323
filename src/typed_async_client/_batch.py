"""
``Batch``: a group of requests whose lifetime is an ``async with`` block.

The batch owns a task group: its requests run in it, so none outlives the block. Leaving the
block waits for all of them. Cancellation follows anyio's task-group rules:

* an exception raised in the block cancels the batch's requests in flight, then propagates;
* with ``fail_fast=True``, the first request that ends with an error cancels the batch's task
  group, which cancels its other requests *and the block's body*, like a failing child task
  does; leaving the block then raises that error inside an ``ExceptionGroup`` (always a group,
  whatever the number of failures, as anyio's task groups do).

Requests outside the batch, and other batches of the same client, are not touched.
"""

from __future__ import annotations

import math
import sys
from types import TracebackType
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

from ._exceptions import ClientStateError
from ._verbs import VerbMethods

if sys.version_info < (3, 11):  # pragma: no cover
    # anyio's own dependency on Python 3.10.
    from exceptiongroup import ExceptionGroup  # type: ignore[import-not-found, unused-ignore]

if TYPE_CHECKING:
    import httpx
    from anyio.abc import TaskGroup
    from typing_extensions import Self, Unpack

    from ._client import AsyncResilientClient
    from ._context import RequestContext
    from ._handle import RequestHandle
    from ._request import RequestOptions
    from ._results import RequestResult
    from ._retry import RetryPolicy


class Batch(VerbMethods):
    """
    Requests scoped by ``async with client.batch(...) as batch:``.

    ``await batch.get(url)`` (any verb, or ``request``) submits a request and returns its
    handle, waiting first for a free slot when ``max_concurrency`` requests of the batch are in
    flight: a batch of 100,000 URLs holds at most ``max_concurrency`` tasks at a time.

    Attributes:
        max_concurrency: the batch's own limit of requests in flight (``None``: no limit).
        fail_fast: whether the first error cancels the batch.
    """

    def __init__(
        self,
        client: AsyncResilientClient,
        *,
        max_concurrency: int | None,
        fail_fast: bool,
        collect_results: bool = True,
    ) -> None:
        self.max_concurrency = max_concurrency
        self.fail_fast = fail_fast
        self._client = client
        self._collect = collect_results
        self._limiter: anyio.CapacityLimiter | None = None
        self._tg: TaskGroup | None = None
        self._handles: list[RequestHandle] = []
        self._submitted = 0
        self._errors = 0
        self._first_error: BaseException | None = None
        self._state = "new"

    def __repr__(self) -> str:
        return f"<Batch {self._state} submitted={self._submitted} errors={self._errors}>"

    async def __aenter__(self) -> Self:
        if self._state != "new":
            raise ClientStateError("a batch can be entered once")
        self._client._check_open()
        if self.max_concurrency is not None:
            self._limiter = anyio.CapacityLimiter(self.max_concurrency)
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        self._state = "open"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None
        # From here on the batch takes no new request: a submitter still waiting for a slot
        # gets ClientStateError (see _check_accepting) instead of a task in a closing group.
        self._state = "closing"
        if exc_type is not None:
            # The block failed (or was cancelled): its requests are no longer wanted.
            self._tg.cancel_scope.cancel()
        try:
            suppress = await self._tg.__aexit__(exc_type, exc, tb)
        finally:
            self._state = "closed"
        if self._first_error is not None:
            raise ExceptionGroup("a request of the batch failed (fail_fast)", [self._first_error])
        return suppress

    @property
    def results(self) -> list[RequestResult]:
        """The results of the batch's finished requests, in submission order."""
        return [h.result for h in self._handles if h.result is not None]

    @property
    def submitted(self) -> int:
        """Requests submitted to the batch."""
        return self._submitted

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
        Submit a request to the batch; see ``AsyncResilientClient.request``.

        Raises:
            ClientStateError: the batch is not open (outside its ``async with`` block).
        """
        self._check_accepting()
        client = self._client
        method, handle = client._prepare(method, url, context, options, on_finish=self._on_finish)
        if handle.deadline == -math.inf:
            await anyio.lowlevel.checkpoint_if_cancelled()  # see _client._cancelled_submission
        limiters = [limiter for limiter in (self._limiter, client._concurrency) if limiter]
        assert self._tg is not None
        policy = client._policy_for(retry_policy)
        await client._admit_and_start(
            self._tg, handle, method, url, options, policy, limiters, self._check_accepting
        )
        self._submitted += 1
        if self._collect:
            self._handles.append(handle)
        return handle

    def _check_accepting(self) -> None:
        if self._state != "open":
            raise ClientStateError(
                f"the batch is {self._state}: submit inside its 'async with' block"
            )

    def _on_finish(self, handle: RequestHandle) -> None:
        result = handle.result
        if result is None or not result.is_error:
            return
        self._errors += 1
        if self.fail_fast and self._first_error is None and result.error is not None:
            self._first_error = result.error
            assert self._tg is not None
            self._tg.cancel_scope.cancel()
