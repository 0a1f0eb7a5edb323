"""
``RequestResult``, the final record of a request, and the bounded store that keeps them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import httpx

from ._checks import check_number
from ._constants import DEFAULT_MAX_RESULT_BYTES
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
        body_evicted: the client's result store dropped the response's body to keep within its
            byte bound (``max_result_bytes``). ``response`` still has the status, headers,
            request, HTTP version and redirect history; reading its body raises httpx's
            ``ResponseNotRead`` (``.content``, ``.text``, ``.json()``) or ``StreamConsumed``
            (``aread()``). The result handed to whoever awaited the request keeps its body.
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
    body_evicted: bool = False

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


def body_size(response: httpx.Response | None) -> int:
    """
    Bytes of response body held in memory: the decoded content of the response and of the
    redirect responses in its history (a body never read into memory counts zero).
    """
    if response is None:
        return 0
    size = _content_size(response)
    for earlier in response.history:
        size += _content_size(earlier)
    return size


def _content_size(response: httpx.Response) -> int:
    try:
        return len(response.content)
    except httpx.ResponseNotRead:
        return 0


def _without_body(response: httpx.Response) -> httpx.Response:
    """
    A copy of a response with its status, headers, request and history, and no body.

    The copy is built, not the response emptied: whoever awaited the request may still hold the
    original and read its body. The copy reads as closed and consumed, so httpx itself refuses
    to show a body (``ResponseNotRead``, ``StreamConsumed``) rather than show an empty one. Of
    the extensions only ``http_version`` and ``reason_phrase`` are kept: ``network_stream``
    would keep the connection's objects alive.
    """
    extensions: dict[str, Any] = {
        key: response.extensions[key]
        for key in ("http_version", "reason_phrase")
        if key in response.extensions
    }
    try:
        request: httpx.Request | None = response.request
    except RuntimeError:  # a response built without a request
        request = None
    copy = httpx.Response(
        response.status_code,
        headers=response.headers,
        stream=httpx.ByteStream(b""),
        request=request,
        extensions=extensions,
        history=[_without_body(earlier) for earlier in response.history],
    )
    copy.is_stream_consumed = True
    copy.is_closed = True
    with contextlib.suppress(RuntimeError):  # a response httpx never closed was never timed
        copy.elapsed = response.elapsed
    return copy


class ResultStore:
    """
    Finished results by request id, within two bounds: ``max_results`` results, and
    ``max_bytes`` bytes of response bodies kept in them.

    Insertion order is finishing order. A request id used again replaces its older result.

    * Past ``max_results``, the oldest finished result is evicted whole (counted in
      ``evicted``); ``get()`` then answers ``None``.
    * Past ``max_bytes`` of bodies (``body_size()``: decoded content, redirect history
      included), the oldest results that still hold a body lose it, until the bodies kept fit:
      the result is replaced by a copy whose response has no body and whose ``body_evicted`` is
      true (counted in ``bodies_evicted``). A body larger than ``max_bytes`` on its own is
      never kept. ``None`` leaves bodies bounded by the count alone; ``0`` keeps no body.
      Request bodies (uploads) and responses carried by errors are not counted.

    Bodies rather than whole results go, because they are what takes the memory (a body is
    often megabytes, the rest of a result a few kilobytes, already bounded by the count), and
    what a result is kept for after the fact is mostly its outcome: status, attempts, timings,
    error. Evicting whole results to save bytes would make a request that ended a moment ago
    unknown; keeping its record, marked, tells the truth about what is gone. ``body_bytes`` is
    the bytes of bodies kept now.
    """

    def __init__(self, max_results: int, max_bytes: int | None = DEFAULT_MAX_RESULT_BYTES) -> None:
        check_number("max_results", max_results, integer=True, minimum=1)
        check_number("max_result_bytes", max_bytes, integer=True, minimum=0, allow_none=True)
        self.max_results = max_results
        self.max_bytes = max_bytes
        self.evicted = 0
        self.bodies_evicted = 0
        self.body_bytes = 0
        self._results: OrderedDict[str, RequestResult] = OrderedDict()
        # The results that hold a body, oldest finished first, with its size: the byte bound
        # takes from the front, so each eviction is O(1).
        self._sizes: OrderedDict[str, int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._results)

    def add(self, result: RequestResult) -> None:
        results = self._results
        request_id = result.request_id
        if results.pop(request_id, None) is not None:
            self._forget_body(request_id)
        size = body_size(result.response)
        if size and self.max_bytes is not None and size > self.max_bytes:
            result = self._strip(result)
            size = 0
        results[request_id] = result
        if size:
            self._sizes[request_id] = size
            self.body_bytes += size
        if len(results) > self.max_results:
            oldest, _ = results.popitem(last=False)
            self._forget_body(oldest)
            self.evicted += 1
        if self.max_bytes is not None:
            while self.body_bytes > self.max_bytes:
                oldest, freed = self._sizes.popitem(last=False)
                self.body_bytes -= freed
                # Assigning to a present key keeps its place in the finishing order.
                results[oldest] = self._strip(results[oldest])

    def _strip(self, result: RequestResult) -> RequestResult:
        assert result.response is not None
        self.bodies_evicted += 1
        return dataclasses.replace(
            result, response=_without_body(result.response), body_evicted=True
        )

    def _forget_body(self, request_id: str) -> None:
        self.body_bytes -= self._sizes.pop(request_id, 0)

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
            self._forget_body(rid)
        return len(stale)
