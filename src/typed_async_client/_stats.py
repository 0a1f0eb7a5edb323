"""
``ClientStats``: an immutable snapshot of a client's counters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import final


@final
@dataclass(frozen=True, slots=True)
class ClientStats:
    """
    Counters of one client since it was created.

    Attributes:
        in_flight: requests submitted and not yet ended.
        started: requests submitted.
        succeeded: requests that got a response.
        failed: requests that ended with an error.
        cancelled: requests that were cancelled.
        attempts: attempts started, retries included.
        retries: retries scheduled.
        events_emitted: events built for callbacks.
        events_dropped: events lost because the event stream was full or closed.
        events_pending: events queued and not yet dispatched.
        callback_errors: exceptions raised by event callbacks (each one logged).
        results_kept: results in the store.
        results_evicted: results dropped from the store because it was full.
    """

    in_flight: int
    started: int
    succeeded: int
    failed: int
    cancelled: int
    attempts: int
    retries: int
    events_emitted: int
    events_dropped: int
    events_pending: int
    callback_errors: int
    results_kept: int
    results_evicted: int
