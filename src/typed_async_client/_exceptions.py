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
    ├── DeadlineExceededError     (also a TimeoutError)
    ├── RetryAfterTooLongError
    ├── CircuitOpenError
    └── ResponseRejectedError
        ├── ResponseTooLargeError
        └── TooManyEncodingsError
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx


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


class RetryAfterTooLongError(TypedAsyncClientError):
    """
    Raised when a server asks for a wait (``Retry-After``, rate-limit reset) that passes the
    policy's ``max_retry_after`` or the request's deadline: the request ends at once instead
    of sleeping.

    ``requested_delay`` is the wait asked for, in seconds; ``limit`` the most the request could
    wait; ``response`` the last response (already read).
    """

    def __init__(
        self, request_id: str, requested_delay: float, limit: float, response: httpx.Response
    ) -> None:
        self.request_id = request_id
        self.requested_delay = requested_delay
        self.limit = limit
        self.response = response
        super().__init__(
            f"request {request_id!r}: the server asked to wait {requested_delay:.1f}s before "
            f"retrying (HTTP {response.status_code}), more than the {limit:.1f}s it may wait"
        )


class CircuitOpenError(TypedAsyncClientError):
    """
    Raised when an attempt is refused without touching the network because the circuit of
    its origin is open (or half-open with its probes already out).

    ``origin`` is ``(scheme, host, port)``; ``retry_in`` the seconds until a probe may go.
    """

    def __init__(self, request_id: str, origin: tuple[str, str, int], retry_in: float) -> None:
        self.request_id = request_id
        self.origin = origin
        self.retry_in = retry_in
        scheme, host, port = origin
        super().__init__(
            f"request {request_id!r}: the circuit for {scheme}://{host}:{port} is open; "
            f"next probe in {retry_in:.1f}s"
        )


class TransportRetriesWarning(UserWarning):
    """
    Warned when the client wraps a transport that retries connections itself
    (``httpx.AsyncHTTPTransport(retries=N)``): each of the client's attempts would make up to
    ``N + 1`` connection attempts.
    """


class ResponseRejectedError(TypedAsyncClientError):
    """
    Raised when a response breaks one of the client's caps; ``response`` is closed, its body
    not kept. Never retried: the same server would send the same thing.
    """

    def __init__(self, message: str, response: httpx.Response) -> None:
        self.response = response
        super().__init__(message)


class ResponseTooLargeError(ResponseRejectedError):
    """Raised when a response's decoded body passes the client's ``max_response_bytes``."""

    def __init__(self, limit: int, response: httpx.Response) -> None:
        self.limit = limit
        super().__init__(
            f"the response body passed the {limit:,}-byte limit (max_response_bytes) once "
            f"decoded (HTTP {response.status_code})",
            response,
        )


class TooManyEncodingsError(ResponseRejectedError):
    """Raised when a response stacks more content codings than ``max_content_encodings``."""

    def __init__(self, codings: list[str], limit: int, response: httpx.Response) -> None:
        self.codings = codings
        self.limit = limit
        super().__init__(
            f"the response stacks {len(codings)} content codings ({', '.join(codings)}), "
            f"more than the {limit} allowed (max_content_encodings)",
            response,
        )
