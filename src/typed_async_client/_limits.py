"""
A smooth rate limit shared by every attempt of a client.

It is a virtual scheduler (the GCRA of ATM networks, without burst): each attempt reserves the
next free slot, ``interval = 1 / per_second`` after the previous one, and sleeps until it. No
burst is allowed, so the upstream sees an even rate. A waiter that is cancelled leaves its slot
unused; the limit errs on the side of sending less.
"""

from __future__ import annotations

import math

import anyio


class RateLimiter:
    """
    At most ``per_second`` attempts per second, evenly spaced.

    Raises:
        ValueError: ``per_second`` is not a finite number > 0.
    """

    def __init__(self, per_second: float) -> None:
        if isinstance(per_second, bool) or not isinstance(per_second, (int, float)):
            raise TypeError(f"max_per_second must be a number, got {type(per_second).__name__}")
        if not (math.isfinite(per_second) and per_second > 0):
            raise ValueError(f"max_per_second must be a finite number > 0, got {per_second}")
        self.per_second = float(per_second)
        self._interval = 1.0 / self.per_second
        self._next_slot = -math.inf

    async def wait(self) -> float:
        """Wait for this caller's slot; return the seconds waited."""
        now = anyio.current_time()
        slot = max(now, self._next_slot)
        self._next_slot = slot + self._interval
        delay = slot - now
        if delay > 0:
            await anyio.sleep(delay)
        return delay
