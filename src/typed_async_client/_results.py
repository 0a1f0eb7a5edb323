"""
``RequestResult``, the final record of a request, and the bounded store that keeps them.
"""

from __future__ import annotations

import enum
import time
from collections import OrderedDict
from dataclasses import dataclass

import httpx

from ._context import RequestContext


class RequestStatus(str, enum.Enum):
    """The final state of a request."""

    SUCCESS = "success"
    """A response arrived (whatever its HTTP status: statuses are not errors by default)."""
    ERROR = "error"
    """The last attempt raised; ``RequestResult.error`` holds the exception."""
    CANCELLED = "cancelled"
    """The request was cancelled before it finished."""

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """
    One attempt of a request.

    Attributes:
        number: one-based attempt number.
        start: seconds from the request's submission to the attempt's start.
        duration: seconds the attempt took.
        phase: where it failed: ``"connect"``, ``"send"``, ``"response_headers"``, ``"body"``
            (or ``"response"`` when the two cannot be told apart); ``None`` if a response came.
        error: the exception's type name, if it raised.
        status_code: the response's status, if one came.
        sleep: the backoff sleep that followed it (``0.0`` for the last attempt).
    """

    number: int
    start: float
    duration: float
    phase: str | None
    error: str | None
    status_code: int | None
    sleep: float


@dataclass(frozen=True, slots=True)
class RequestResult:
    """
    What became of one request.

    Attributes:
        request_id: the request's id.
        status: ``SUCCESS``, ``ERROR`` or ``CANCELLED``.
        response: the response, on success.
        error: the exception of the last attempt, on error or cancellation.
        attempts: attempts started, the first included (``0`` for a request cancelled before
            its first attempt).
        total_time: seconds from submission to the end, backoff sleeps included.
        start_time: ``time.time()`` at submission.
        end_time: ``time.time()`` at the end.
        context: the context of the last attempt.
        wait_time: seconds spent waiting for the client's or the batch's concurrency limit and
            for the rate limit, included in ``total_time``.
        history: every attempt, in order.
        method: the request's method.
        url: the request's URL as given, with credentials and sensitive query values redacted.
    """

    request_id: str
    status: RequestStatus
    response: httpx.Response | None
    error: BaseException | None
    attempts: int
    total_time: float
    start_time: float
    end_time: float
    context: RequestContext
    wait_time: float = 0.0
    history: tuple[AttemptRecord, ...] = ()
    method: str = ""
    url: str = ""

    @property
    def is_success(self) -> bool:
        """Whether a response arrived."""
        return self.status is RequestStatus.SUCCESS

    @property
    def is_error(self) -> bool:
        """Whether the request failed (cancellation is not an error: see ``is_cancelled``)."""
        return self.status is RequestStatus.ERROR

    @property
    def is_cancelled(self) -> bool:
        """Whether the request was cancelled."""
        return self.status is RequestStatus.CANCELLED

    @property
    def status_code(self) -> int | None:
        """The HTTP status of the response, if there is one."""
        return None if self.response is None else self.response.status_code


class ResultStore:
    """
    Finished results by request id, at most ``max_results`` of them.

    Insertion order is finishing order, so eviction drops the oldest finished result first. A
    request id used again replaces its older result.
    """

    def __init__(self, max_results: int) -> None:
        if isinstance(max_results, bool) or not isinstance(max_results, int):
            raise TypeError(f"max_results must be an int, got {type(max_results).__name__}")
        if max_results < 1:
            raise ValueError(f"max_results must be >= 1, got {max_results}")
        self.max_results = max_results
        self.evicted = 0
        self._results: OrderedDict[str, RequestResult] = OrderedDict()

    def __len__(self) -> int:
        return len(self._results)

    def add(self, result: RequestResult) -> None:
        results = self._results
        results.pop(result.request_id, None)
        results[result.request_id] = result
        if len(results) > self.max_results:
            results.popitem(last=False)
            self.evicted += 1

    def get(self, request_id: str) -> RequestResult | None:
        return self._results.get(request_id)

    def snapshot(self) -> dict[str, RequestResult]:
        return dict(self._results)

    def clear_older_than(self, max_age: float, now: float | None = None) -> int:
        """Remove the results that ended more than ``max_age`` seconds ago; return how many."""
        cutoff = (time.time() if now is None else now) - max_age
        stale = [rid for rid, result in self._results.items() if result.end_time < cutoff]
        for rid in stale:
            del self._results[rid]
        return len(stale)
