"""
Backoff delays: pure functions of the retry number, with no I/O and no clock.

For the ``n``-th retry (``n >= 1``) the ceiling is::

    ceiling(n) = min(max_delay, base_delay * backoff_factor ** (n - 1))

and the jitter picks the delay from that ceiling:

* ``"full"`` (the default, as in AWS's "Exponential Backoff And Jitter"): ``uniform(0, ceiling)``;
* ``"equal"``: ``ceiling / 2 + uniform(0, ceiling / 2)``;
* ``"none"``: ``ceiling``.

The power is computed without overflow for any retry number: past the point where it would
overflow a float, the ceiling is simply ``max_delay``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Final, Literal

Jitter = Literal["full", "equal", "none"]

JITTERS: Final[frozenset[str]] = frozenset({"full", "equal", "none"})


def backoff_ceiling(
    retry: int, base_delay: float, backoff_factor: float, max_delay: float
) -> float:
    """
    Return the largest delay allowed before retry number ``retry``.

    Args:
        retry: 1 for the first retry, 2 for the second, and so on.
        base_delay: the ceiling of the first retry, in seconds.
        backoff_factor: growth of the ceiling between retries (``>= 1``).
        max_delay: the cap, in seconds.

    Returns:
        ``min(max_delay, base_delay * backoff_factor ** (retry - 1))``, never ``inf`` or NaN.
    """
    if retry < 1:
        raise ValueError(f"retry must be >= 1, got {retry}")
    if base_delay <= 0.0 or max_delay <= 0.0:
        return 0.0
    exponent = retry - 1
    # Compare in log space: factor ** exponent, and even max_delay / base_delay, may overflow.
    if backoff_factor <= 1.0 or exponent == 0:
        return min(max_delay, base_delay)
    if math.log(base_delay) + exponent * math.log(backoff_factor) >= math.log(max_delay):
        return max_delay
    try:
        return min(max_delay, base_delay * backoff_factor**exponent)
    except OverflowError:  # the power alone overflows though the product would not
        return max_delay


def backoff_delay(
    retry: int,
    base_delay: float,
    backoff_factor: float,
    max_delay: float,
    *,
    jitter: Jitter = "full",
    rand: Callable[[], float] = random.random,
) -> float:
    """
    Return the sleep before retry number ``retry``, jittered inside its ceiling.

    Args:
        retry: 1 for the first retry, 2 for the second, and so on.
        base_delay: the ceiling of the first retry, in seconds.
        backoff_factor: growth of the ceiling between retries.
        max_delay: the cap, in seconds.
        jitter: ``"full"``, ``"equal"`` or ``"none"`` (see the module docstring).
        rand: a source of floats in ``[0, 1)``; pass a seeded ``random.Random().random`` for
            reproducible delays.

    Returns:
        A delay in ``[0, max_delay]``.
    """
    ceiling = backoff_ceiling(retry, base_delay, backoff_factor, max_delay)
    if jitter == "full":
        return ceiling * rand()
    if jitter == "equal":
        half = ceiling / 2.0
        return half + half * rand()
    if jitter == "none":
        return ceiling
    raise ValueError(f"jitter must be one of {sorted(JITTERS)}, got {jitter!r}")
