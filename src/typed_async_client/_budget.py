"""
``RetryBudget``: a client-wide cap on retries, as a fraction of requests.

In the spirit of gRPC's retry throttling and the Finagle/Envoy retry budgets: during an outage
every request fails, and retrying each one multiplies the load on an upstream that is already
down. A budget lets retries through only while they stay a small share of the traffic.

It is a token bucket. Each request admitted deposits ``ratio`` tokens; each retry spends one;
``min_per_second`` tokens trickle in with time so that a quiet client can still retry; the
bucket holds at most ``max_tokens``. A retry that finds less than one token is refused: the
request ends after its current attempt, with that attempt's outcome. Over any stretch of time,
retries <= ratio * requests + min_per_second * seconds + min(max_tokens, min_per_second)
(the initial fill).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ._checks import check_number


class RetryBudget:
    """
    Retries allowed as a fraction of requests, shared by every request of a client.

    Args:
        ratio: tokens deposited per request (0.2: at most one retry per five requests).
        min_per_second: tokens added per second whatever the traffic (0 disables it).
        max_tokens: the most tokens the bucket holds; it starts with
            ``min(max_tokens, min_per_second)``.
        clock: a monotonic clock in seconds (for tests).

    Raises:
        ValueError: a negative, NaN or infinite value, or ``max_tokens`` of 0.
    """

    def __init__(
        self,
        ratio: float = 0.2,
        *,
        min_per_second: float = 10.0,
        max_tokens: float = 100.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ratio = float(check_number("ratio", ratio, minimum=0))
        self.min_per_second = float(check_number("min_per_second", min_per_second, minimum=0))
        self.max_tokens = float(check_number("max_tokens", max_tokens, minimum=0, above=True))
        self._clock = clock
        self._tokens = min(self.max_tokens, self.min_per_second)
        self._last = clock()
        self.deposits = 0
        self.retries_allowed = 0
        self.retries_refused = 0

    def __repr__(self) -> str:
        return (
            f"RetryBudget(ratio={self.ratio}, min_per_second={self.min_per_second}, "
            f"max_tokens={self.max_tokens}, tokens={self.tokens:.2f})"
        )

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._last)
        self._last = now
        if self.min_per_second:
            self._tokens = min(self.max_tokens, self._tokens + elapsed * self.min_per_second)

    @property
    def tokens(self) -> float:
        """Tokens available now."""
        self._refill()
        return self._tokens

    def deposit(self) -> None:
        """Record a request: its share of retries becomes available."""
        self.deposits += 1
        self._refill()
        self._tokens = min(self.max_tokens, self._tokens + self.ratio)

    def try_spend(self) -> bool:
        """Take a token for one retry; ``False`` (and counted) if the budget is spent."""
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            self.retries_allowed += 1
            return True
        self.retries_refused += 1
        return False
