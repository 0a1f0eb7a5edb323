"""
typed-async-client: a resilient, fully typed async HTTP client on httpx and anyio.

Requests run in a task group owned by the client, on asyncio and on trio; connection errors
are retried with exponential backoff and jitter; events reach callbacks through a bounded
stream; every request leaves a :class:`RequestResult`.
"""

from __future__ import annotations

import contextlib

from ._backoff import Jitter as Jitter
from ._backoff import backoff_delay as backoff_delay
from ._batch import Batch as Batch
from ._breaker import CircuitBreaker as CircuitBreaker
from ._breaker import CircuitState as CircuitState
from ._budget import RetryBudget as RetryBudget
from ._client import AsyncResilientClient as AsyncResilientClient
from ._context import RequestContext as RequestContext
from ._context import current_context as current_context
from ._events import AsyncEvent as AsyncEvent
from ._events import EventCallback as EventCallback
from ._events import EventStream as EventStream
from ._events import EventType as EventType
from ._events import Overflow as Overflow
from ._exceptions import CircuitOpenError as CircuitOpenError
from ._exceptions import ClientClosedError as ClientClosedError
from ._exceptions import ClientNotOpenError as ClientNotOpenError
from ._exceptions import ClientStateError as ClientStateError
from ._exceptions import DeadlineExceededError as DeadlineExceededError
from ._exceptions import DuplicateRequestIdError as DuplicateRequestIdError
from ._exceptions import RequestCancelledError as RequestCancelledError
from ._exceptions import ResponseRejectedError as ResponseRejectedError
from ._exceptions import ResponseTooLargeError as ResponseTooLargeError
from ._exceptions import RetryAfterTooLongError as RetryAfterTooLongError
from ._exceptions import TooManyEncodingsError as TooManyEncodingsError
from ._exceptions import TransportRetriesWarning as TransportRetriesWarning
from ._exceptions import TypedAsyncClientError as TypedAsyncClientError
from ._handle import RequestHandle as RequestHandle
from ._oneshot import create_async_resilient_client as create_async_resilient_client
from ._oneshot import simple_async_request as simple_async_request
from ._request import RequestOptions as RequestOptions
from ._results import AttemptRecord as AttemptRecord
from ._results import RequestResult as RequestResult
from ._results import RequestStatus as RequestStatus
from ._retry import Backoff as Backoff
from ._retry import RetryDecisionInput as RetryDecisionInput
from ._retry import RetryPolicy as RetryPolicy
from ._retry import RetryPredicate as RetryPredicate
from ._retry import is_retryable as is_retryable
from ._retry_after import parse_retry_after as parse_retry_after
from ._stats import ClientStats as ClientStats

__version__ = "0.1.0"

__all__ = [
    "AsyncEvent",
    "AsyncResilientClient",
    "AttemptRecord",
    "Backoff",
    "Batch",
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "ClientClosedError",
    "ClientNotOpenError",
    "ClientStateError",
    "ClientStats",
    "DeadlineExceededError",
    "DuplicateRequestIdError",
    "EventCallback",
    "EventStream",
    "EventType",
    "Jitter",
    "Overflow",
    "RequestCancelledError",
    "RequestContext",
    "RequestHandle",
    "RequestOptions",
    "RequestResult",
    "RequestStatus",
    "ResponseRejectedError",
    "ResponseTooLargeError",
    "RetryAfterTooLongError",
    "RetryBudget",
    "RetryDecisionInput",
    "RetryPolicy",
    "RetryPredicate",
    "TooManyEncodingsError",
    "TransportRetriesWarning",
    "TypedAsyncClientError",
    "backoff_delay",
    "create_async_resilient_client",
    "current_context",
    "is_retryable",
    "parse_retry_after",
    "simple_async_request",
]

# Show the public path in reprs, tracebacks and docs, as httpx and anyio do.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("typed_async_client."):
        with contextlib.suppress(AttributeError, TypeError):  # aliases such as Jitter
            _obj.__module__ = __name__
del _name, _obj
