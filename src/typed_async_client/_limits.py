"""
A smooth rate limit shared by every attempt of a client.

It is a virtual scheduler (the GCRA of ATM networks, without burst): slot ``n + 1`` comes
``interval = 1 / per_second`` after slot ``n``, so the upstream sees an even rate. A slot is
reserved only when it is granted, never while its caller waits, so a waiter that is cancelled
gives nothing back because it holds nothing: the waiters behind it move up.

The waiters form a queue, and only its head sleeps, until the next slot:

* a caller that finds nobody waiting and the next slot already past takes it at once (no
  allocation, no checkpoint);
* a caller that finds nobody waiting but the slot still ahead becomes the head;
* any other caller queues with an :class:`anyio.Event` and becomes the head when it is set;
* the head, granted or cancelled, sets the event of the first queued waiter (or marks the
  queue idle), so the turn passes on in arrival order whatever happens to the head.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import anyio

from ._checks import check_number


class RateLimiter:
    """
    At most ``per_second`` attempts per second, evenly spaced, first come first served.

    Raises:
        ValueError: ``per_second`` is not a finite number > 0.
        TypeError: ``per_second`` is not a number.
    """

    def __init__(self, per_second: float) -> None:
        check_number("max_per_second", per_second, minimum=0, above=True)
        self.per_second = float(per_second)
        self._interval = 1.0 / self.per_second
        # The earliest time of the next slot: the last granted slot plus one interval.
        self._next_slot = -math.inf
        # Whether a head waiter is sleeping until ``_next_slot`` (or about to).
        self._busy = False
        # The waiters behind the head, in arrival order. An OrderedDict rather than a deque:
        # a cancelled waiter leaves from the middle in O(1), so mass cancellation stays linear.
        self._queue: OrderedDict[anyio.Event, None] = OrderedDict()

    async def wait(self) -> float:
        """
        Wait for this caller's slot.

        Returns:
            The seconds waited (0 when a slot was free).
        """
        start = anyio.current_time()
        if not self._busy:
            if start >= self._next_slot:
                self._next_slot = start + self._interval
                return 0.0
            self._busy = True
        else:
            turn = anyio.Event()
            self._queue[turn] = None
            try:
                await turn.wait()
            except BaseException:
                if turn.is_set():
                    # Cancelled once already made the head: the turn must not be lost.
                    self._pass_turn()
                else:
                    del self._queue[turn]
                raise
        try:
            slot = max(anyio.current_time(), self._next_slot)
            await anyio.sleep_until(slot)
            self._next_slot = slot + self._interval
        finally:
            self._pass_turn()
        return anyio.current_time() - start

    def _pass_turn(self) -> None:
        """Make the first queued waiter the head, or mark the queue idle."""
        if self._queue:
            turn, _ = self._queue.popitem(last=False)
            turn.set()
        else:
            self._busy = False
