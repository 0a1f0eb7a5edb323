"""
Which failures are retried: ``RetryPolicy`` and the decision it makes.

The default policy is the original specification's: retry only when the attempt failed to
connect (``httpx.ConnectError``, ``httpcore.ConnectError``). The request never left the
machine, so sending it again is safe whatever its method. Everything else (HTTP statuses, read
errors, timeouts) ends the request.

A policy can retry more, under one safety rule: once a request *may have reached the server*
(any failure after the connection was made, and every response), it is retried only if it is
idempotent: its method is in ``idempotent_methods`` (GET, HEAD, OPTIONS, PUT, DELETE, TRACE by
default), or the caller marked it (an ``Idempotency-Key`` header, or
``RequestContext(idempotent=True)``). Errors that prove the request was never sent
(``ConnectError``, ``ConnectTimeout``, ``PoolTimeout``) are safe for every method.

Never retried, whatever the policy says:

* a ``ConnectError`` whose cause chain holds an ``ssl.SSLCertVerificationError`` (a certificate
  that failed verification will fail again);
* anything that is not an ``Exception``: cancellation, ``KeyboardInterrupt``, ``SystemExit``.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

import httpcore
import httpx

from ._backoff import JITTERS, Jitter

RETRYABLE_ERRORS: Final[tuple[type[Exception], ...]] = (httpx.ConnectError, httpcore.ConnectError)

#: Failures that prove the request was never sent: safe to retry for any method.
NEVER_SENT_ERRORS: Final[tuple[type[Exception], ...]] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpcore.ConnectError,
    httpcore.ConnectTimeout,
    httpcore.PoolTimeout,
)

IDEMPOTENT_METHODS: Final[frozenset[str]] = frozenset(
    {"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"}
)

#: The statuses of ``RetryPolicy.transient()``.
TRANSIENT_STATUSES: Final[frozenset[int]] = frozenset({429, 502, 503, 504})

#: A server asking for a longer wait than this (seconds) ends the request instead.
DEFAULT_MAX_RETRY_AFTER: Final[float] = 60.0

#: How far down ``__cause__`` / ``__context__`` to look for a TLS verification failure.
_MAX_CHAIN: Final[int] = 32


def is_tls_verification_failure(exc: BaseException) -> bool:
    """Whether ``exc`` or one of its causes is an ``ssl.SSLCertVerificationError``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < _MAX_CHAIN:
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def is_retryable(exc: BaseException) -> bool:
    """
    Whether a failed attempt may be retried under the default policy.

    True for connection errors, except TLS verification failures.
    """
    return isinstance(exc, RETRYABLE_ERRORS) and not is_tls_verification_failure(exc)


def is_server_disconnect(exc: BaseException) -> bool:
    """
    Whether the server closed the connection before its response was complete.

    httpcore and h11 say so in the message of their ``RemoteProtocolError``: "Server
    disconnected without sending a response." or "peer closed connection without sending
    complete message body". Other protocol errors are malformed responses.
    """
    return isinstance(
        exc, (httpx.RemoteProtocolError, httpcore.RemoteProtocolError)
    ) and "without sending" in str(exc)


def is_never_sent(exc: BaseException) -> bool:
    """Whether the failure proves the request never reached the server."""
    return isinstance(exc, NEVER_SENT_ERRORS)


@dataclass(frozen=True, slots=True)
class Backoff:
    """
    A backoff strategy: the sleep before retry ``n`` (``n >= 1``).

    ``ceiling(n) = min(cap, base * factor ** (n - 1))``, then the jitter: ``"full"`` picks
    ``uniform(0, ceiling)``, ``"equal"`` ``ceiling / 2 + uniform(0, ceiling / 2)``, ``"none"``
    the ceiling itself, and ``"decorrelated"`` (AWS's "decorrelated jitter")
    ``min(cap, uniform(base, 3 * previous_sleep))``.

    Raises:
        ValueError: a negative, NaN or infinite duration, ``factor < 1``, ``base > cap`` or an
            unknown jitter (the message names the field).
    """

    base: float = 0.5
    factor: float = 2.0
    cap: float = 30.0
    jitter: Jitter | str = "full"

    def __post_init__(self) -> None:
        for name, value, minimum in (
            ("base", self.base, 0.0),
            ("factor", self.factor, 1.0),
            ("cap", self.cap, 0.0),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number, got {type(value).__name__}")
            if not math.isfinite(value) or value < minimum:
                raise ValueError(f"{name} must be a finite number >= {minimum}, got {value}")
        if self.base > self.cap:
            raise ValueError(f"base must be <= cap, got base={self.base} and cap={self.cap}")
        if self.jitter not in JITTERS | {"decorrelated"}:
            raise ValueError(
                f"jitter must be one of {sorted(JITTERS | {'decorrelated'})}, got {self.jitter!r}"
            )


@dataclass(frozen=True, slots=True)
class RetryDecisionInput:
    """
    What a ``RetryPolicy.predicate`` sees about a finished attempt.

    Attributes:
        method: the request's method.
        url: the request's URL as given.
        attempt: the one-based number of the attempt that just ended.
        error: its exception, or ``None`` if a response arrived.
        response: its response, or ``None``.
        idempotent: whether the request may be sent twice (see the module docstring).
    """

    method: str
    url: str
    attempt: int
    error: Exception | None
    response: httpx.Response | None
    idempotent: bool


RetryPredicate = Callable[[RetryDecisionInput], "bool | None"]
"""Returns True to retry, False not to, ``None`` to let the policy's rules decide."""


def _exception_types(value: Iterable[object]) -> tuple[type[Exception], ...]:
    types = tuple(value)
    for item in types:
        if not (isinstance(item, type) and issubclass(item, Exception)):
            raise TypeError(f"retry_on must hold Exception subclasses, got {item!r}")
    return types  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """
    What is retried, and how long to wait in between.

    Set on the client (``AsyncResilientClient(retry_policy=...)``) or per request
    (``client.get(url, retry_policy=...)``). The request's ``RequestContext.max_retries``
    still bounds the number of retries.

    Attributes:
        retry_on: exception types that are retried (subject to the idempotency rule unless
            they prove the request was never sent).
        retry_statuses: HTTP statuses that are retried (idempotent requests only).
        idempotent_methods: methods that may be resent once they may have reached the server.
        predicate: a hook that can force (``True``) or forbid (``False``) a retry, or defer
            (``None``); it is never asked about TLS failures or non-``Exception`` errors.
        backoff: the backoff strategy; ``None`` uses the context's ``base_delay``,
            ``backoff_factor`` and ``max_delay`` with full jitter.
        max_retry_after: the longest ``Retry-After`` (or rate-limit reset) honoured, in
            seconds; a longer request ends the request at once with ``RetryAfterTooLongError``.
        retry_reused_disconnects: retry a ``RemoteProtocolError`` raised before any response
            byte on a reused keep-alive connection (the server closed it as we sent), for
            idempotent requests, even if ``RemoteProtocolError`` is not in ``retry_on``.
        retry_disconnects: retry, for idempotent requests, a ``RemoteProtocolError`` raised
            because the server closed the connection before its response was complete (no
            byte at all, or a body cut short). Malformed responses (a garbage status line, a
            bad chunk...) are other protocol errors, retried only if ``RemoteProtocolError``
            is in ``retry_on``.
    """

    retry_on: tuple[type[Exception], ...] = RETRYABLE_ERRORS
    retry_statuses: frozenset[int] = frozenset()
    idempotent_methods: frozenset[str] = IDEMPOTENT_METHODS
    predicate: RetryPredicate | None = field(default=None, compare=False)
    backoff: Backoff | None = None
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER
    retry_reused_disconnects: bool = False
    retry_disconnects: bool = False
    _is_default: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "retry_on", _exception_types(self.retry_on))
        statuses = frozenset(self.retry_statuses)
        for status in statuses:
            if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
                raise ValueError(
                    f"retry_statuses must hold HTTP statuses (100-599), got {status!r}"
                )
        object.__setattr__(self, "retry_statuses", statuses)
        given: object = self.idempotent_methods
        if isinstance(given, str):
            raise TypeError(
                f"idempotent_methods must be a collection of method names, not a str: got {given!r}"
            )
        for method in self.idempotent_methods:
            if not isinstance(method, str) or not method:
                raise TypeError(f"idempotent_methods must hold method names, got {method!r}")
        methods = frozenset(m.upper() for m in self.idempotent_methods)
        object.__setattr__(self, "idempotent_methods", methods)
        if self.predicate is not None and not callable(self.predicate):
            raise TypeError(f"predicate must be callable, got {type(self.predicate).__name__}")
        if self.backoff is not None and not isinstance(self.backoff, Backoff):
            raise TypeError(f"backoff must be a Backoff, got {type(self.backoff).__name__}")
        value = self.max_retry_after
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"max_retry_after must be a number, got {type(value).__name__}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"max_retry_after must be a finite number >= 0, got {value}")
        # Computed once: the engine asks for every request.
        is_default = (
            not self.retry_statuses
            and self.predicate is None
            and set(self.retry_on) <= set(RETRYABLE_ERRORS)
            and not self.retry_reused_disconnects
            and not self.retry_disconnects
        )
        object.__setattr__(self, "_is_default", is_default)

    @classmethod
    def transient(
        cls, *, backoff: Backoff | None = None, max_retry_after: float = DEFAULT_MAX_RETRY_AFTER
    ) -> RetryPolicy:
        """
        A preset for common transient failures.

        ``ConnectError``, ``ConnectTimeout`` and ``PoolTimeout`` for every method; for
        idempotent requests also 429, 502, 503, 504, ``ReadError``, and the
        ``RemoteProtocolError`` of a server that closed the connection before its response was
        complete (a dropped keep-alive connection, a body cut short). A malformed response is a
        protocol error too, but sending the request again would get the same answer: it is
        not retried.
        """
        return cls(
            retry_on=(
                *RETRYABLE_ERRORS,
                httpx.ConnectTimeout,
                httpx.PoolTimeout,
                httpx.ReadError,
            ),
            retry_statuses=TRANSIENT_STATUSES,
            backoff=backoff,
            max_retry_after=max_retry_after,
            retry_reused_disconnects=True,
            retry_disconnects=True,
        )

    @property
    def is_default(self) -> bool:
        """Whether the policy retries connection errors only, as the default one does."""
        return self._is_default

    def retries_error(
        self,
        exc: Exception,
        decision: RetryDecisionInput,
        *,
        reused_disconnect: bool = False,
        sent_before: bool = False,
    ) -> bool:
        """
        Whether a failed attempt is retried (before counting retries, budget or time).

        With ``sent_before`` (an earlier request of the attempt, before a redirect or an auth
        challenge, reached the server), no error proves the request was never sent: it is
        retried only for an idempotent request.
        """
        if is_tls_verification_failure(exc):
            return False
        if self.predicate is not None:
            verdict = self.predicate(decision)
            if verdict is not None:
                return bool(verdict)
        if is_never_sent(exc) and not sent_before:
            return isinstance(exc, self.retry_on)
        if not decision.idempotent:
            return False
        if reused_disconnect and self.retry_reused_disconnects:
            return True
        if self.retry_disconnects and is_server_disconnect(exc):
            return True
        return isinstance(exc, self.retry_on)

    def retries_response(self, response: httpx.Response, decision: RetryDecisionInput) -> bool:
        """Whether an attempt that got ``response`` is retried."""
        if self.predicate is not None:
            verdict = self.predicate(decision)
            if verdict is not None:
                return bool(verdict)
        return decision.idempotent and response.status_code in self.retry_statuses


DEFAULT_POLICY: Final[RetryPolicy] = RetryPolicy()
