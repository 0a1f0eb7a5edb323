"""
The library's own exceptions.

httpx's exceptions pass through unchanged: after its last attempt a request raises the
exception of that attempt (``httpx.ConnectError``, ``httpx.ReadTimeout``, ...). The types below
are only for outcomes that belong to this library::

    TypedAsyncClientError
    ├── ClientStateError
    │   ├── ClientNotOpenError
    │   └── ClientClosedError
    ├── DuplicateRequestIdError   (also a ValueError)
    ├── RequestCancelledError
    └── DeadlineExceededError     (also a TimeoutError)
"""

from __future__ import annotations


class TypedAsyncClientError(Exception):
    """
    Base class of every exception raised by typed-async-client itself.
    """


class ClientStateError(TypedAsyncClientError, RuntimeError):
    """
    Raised when the client is used in a lifecycle state that does not allow the operation.
    """


class ClientNotOpenError(ClientStateError):
    """
    Raised when a request is submitted to a client that was never opened.
    """

    def __init__(self) -> None:
        super().__init__(
            "the client is not open: use 'async with client:' or 'await client.open()' first"
        )


class ClientClosedError(ClientStateError):
    """
    Raised when a request is submitted to a client that is closing or closed.
    """

    def __init__(self) -> None:
        super().__init__("the client is closed; no new request can be submitted")


class DuplicateRequestIdError(TypedAsyncClientError, ValueError):
    """
    Raised when a request is submitted with the id of a request still in flight.
    """

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        super().__init__(
            f"a request with id {request_id!r} is already in flight; "
            "give each concurrent request its own request_id"
        )


class RequestCancelledError(TypedAsyncClientError):
    """
    Raised when awaiting the handle of a request that was cancelled before it finished.
    """

    def __init__(self, request_id: str, attempts: int) -> None:
        self.request_id = request_id
        self.attempts = attempts
        super().__init__(f"request {request_id!r} was cancelled after {attempts} attempt(s)")


class DeadlineExceededError(TypedAsyncClientError, TimeoutError):
    """
    Raised when a request's deadline (its ``total_timeout`` or its submitter's) ends it.

    The deadline, not the retry count, ended the request: either it expired during an attempt
    or a backoff sleep, or the next retry could not have started before it. ``last_error`` is
    the error of the last failed attempt (``None`` if the first attempt was interrupted); it is
    also the exception's ``__cause__``.
    """

    def __init__(
        self, request_id: str, attempts: int, timeout: float, last_error: BaseException | None
    ) -> None:
        self.request_id = request_id
        self.attempts = attempts
        self.timeout = timeout
        self.last_error = last_error
        last = (
            "" if last_error is None else f"; last error: {type(last_error).__name__}: {last_error}"
        )
        super().__init__(
            f"request {request_id!r} ran out of time: its deadline ({timeout:.3f}s after "
            f"submission) ended it after {attempts} attempt(s){last}"
        )
        self.__cause__ = last_error
