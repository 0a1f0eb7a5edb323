"""
One request's retry bookkeeping: the policy's verdict on each attempt and the next delay.

The engine asks, after each attempt, ``retries_error`` or ``retries_response``; if the answer
is yes (and the context still allows a retry), ``next_delay`` gives the backoff sleep. Budget,
``Retry-After`` and deadline checks come after, in the engine, because they need the client.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from ._backoff import backoff_delay
from ._retry import DEFAULT_POLICY, RetryDecisionInput, RetryPolicy, is_never_sent, is_retryable

if TYPE_CHECKING:
    from ._context import RequestContext
    from ._phases import AttemptTrace


@dataclass(frozen=True, slots=True)
class TestingOverrides:
    """What ``typed_async_client.testing.instant_retries()`` changes for the requests it scopes."""

    max_attempts: int | None


#: Set by ``typed_async_client.testing.instant_retries()``; read once per request, at its start,
#: in the request's task, which inherits the submitter's context: so only the requests
#: submitted inside the ``with`` block are affected, on any client.
TESTING_OVERRIDES: ContextVar[TestingOverrides | None] = ContextVar(
    "typed_async_client_testing_overrides", default=None
)


def _replayable(options: Mapping[str, Any]) -> bool:
    """Whether the request body can be sent again: not a one-shot (async) iterator."""
    content = options.get("content")
    if content is None or isinstance(content, (str, bytes, bytearray, memoryview)):
        return True
    return not isinstance(content, (Iterable, AsyncIterable))


def _marked_idempotent(options: Mapping[str, Any], client_headers: httpx.Headers) -> bool:
    if "idempotency-key" in client_headers:
        return True
    headers = options.get("headers")
    return headers is not None and "idempotency-key" in httpx.Headers(headers)


class Retrying:
    """The retry state of one request under one policy."""

    __slots__ = (
        "_previous_sleep",
        "_testing",
        "idempotent",
        "method",
        "policy",
        "replayable",
        "url",
    )

    def __init__(
        self,
        policy: RetryPolicy,
        method: str,
        url: httpx.URL | str,
        options: Mapping[str, Any],
        context: RequestContext,
        client_headers: httpx.Headers,
    ) -> None:
        self.policy = policy
        self.method = method
        self.url = url
        self.replayable = _replayable(options)
        if context.idempotent is not None:
            self.idempotent = context.idempotent
        elif policy is DEFAULT_POLICY:
            self.idempotent = False  # never consulted: the default retries unsent requests only
        else:
            self.idempotent = method in policy.idempotent_methods or _marked_idempotent(
                options, client_headers
            )
        self._previous_sleep = 0.0
        self._testing = TESTING_OVERRIDES.get()

    def _capped(self, context: RequestContext) -> bool:
        """Whether a test's ``instant_retries(max_attempts=...)`` forbids another attempt."""
        testing = self._testing
        return (
            testing is not None
            and testing.max_attempts is not None
            and context.attempt_number >= testing.max_attempts
        )

    @property
    def instant(self) -> bool:
        """Whether a test's ``instant_retries()`` scopes this request (no sleeps at all)."""
        return self._testing is not None

    @property
    def traced(self) -> bool:
        """Whether attempts need an httpcore trace (the policy looks past connect errors)."""
        return not self.policy.is_default

    def _decision(
        self, context: RequestContext, error: Exception | None, response: httpx.Response | None
    ) -> RetryDecisionInput:
        return RetryDecisionInput(
            method=self.method,
            url=str(self.url),
            attempt=context.attempt_number,
            error=error,
            response=response,
            idempotent=self.idempotent,
        )

    def retries_error(
        self,
        exc: Exception,
        context: RequestContext,
        trace: AttemptTrace | None,
        *,
        sent_before: bool = False,
    ) -> tuple[bool, str]:
        """
        Whether to retry after ``exc``, and why not when not.

        ``sent_before``: an earlier request of the same attempt (before a redirect or an auth
        challenge) reached the server, so even a connection error does not prove that nothing
        was sent: the error counts as one that may have reached the server.
        """
        if not context.can_retry or self._capped(context):
            return False, "no retry left"
        if self.policy is DEFAULT_POLICY:
            if sent_before:
                return False, "an earlier request of the attempt was sent"
            return is_retryable(exc), "not a connection error"
        reused = trace is not None and trace.is_reused_disconnect(exc)
        if not self.policy.retries_error(
            exc,
            self._decision(context, exc, None),
            reused_disconnect=reused,
            sent_before=sent_before,
        ):
            return False, "the policy does not retry it"
        if not self.replayable and (sent_before or not is_never_sent(exc)):
            # The body iterator may have been consumed: resending would send it empty.
            return False, "the streaming body cannot be sent again"
        return True, ""

    def retries_response(self, response: httpx.Response, context: RequestContext) -> bool:
        """Whether to retry after getting ``response``."""
        if not context.can_retry or self._capped(context):
            return False
        policy = self.policy
        if not policy.retry_statuses and policy.predicate is None:
            return False
        if not self.replayable:
            return False
        return policy.retries_response(response, self._decision(context, None, response))

    def next_delay(self, context: RequestContext) -> float:
        """The backoff sleep before the next attempt (none in ``instant_retries`` mode)."""
        if self._testing is not None:
            return 0.0
        backoff = self.policy.backoff
        if backoff is None:
            delay = context.backoff_delay()
        elif backoff.jitter == "decorrelated":
            ceiling = max(backoff.base, 3.0 * self._previous_sleep)
            delay = min(backoff.cap, random.uniform(backoff.base, ceiling))
        else:
            delay = backoff_delay(
                context.current_attempt + 1,
                backoff.base,
                backoff.factor,
                backoff.cap,
                jitter=backoff.jitter,  # type: ignore[arg-type]
            )
        self._previous_sleep = delay
        return delay
