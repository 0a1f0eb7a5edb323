"""
``ClientStats``: an immutable snapshot of a client's counters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import final


def percentile(ordered: Sequence[float], pct: float) -> float | None:
    """The nearest-rank percentile of an ascending sequence, ``None`` when it is empty."""
    if not ordered:
        return None
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


@final
@dataclass(frozen=True, slots=True)
class ClientStats:
    """
    Counters of one client since it was created.

    Attributes:
        in_flight: requests admitted and not yet ended.
        waiting: submissions waiting for a concurrency slot plus attempts waiting for the rate
            limit, right now.
        started: requests admitted.
        succeeded: requests that got a response.
        failed: requests that ended with an error.
        cancelled: requests that were cancelled.
        attempts: attempts started, retries included.
        retries: retries scheduled.
        events_emitted: events built (only built when a callback or subscriber wants them).
        events_dropped: events lost: the callback stream was full or closed, or a subscriber
            fell behind (each subscriber's own count is on its stream).
        events_pending: events waiting in the callback stream's buffer (an event handed
            straight to an idle dispatcher is not counted, though its callbacks may not have
            run yet).
        callback_errors: exceptions raised by event callbacks (each one logged).
        results_kept: results in the store.
        results_evicted: results dropped from the store because it was full.
        wait_time: seconds spent by finished requests waiting for concurrency and rate limits.
        latency_p50: median total time of the recent requests (the last 1,024), in seconds.
        latency_p95: 95th percentile of the same.
        latency_p99: 99th percentile of the same.
        retries_refused: retries the retry budget refused.
        circuit_rejected: attempts refused by an open circuit.
        circuits_open: origins whose circuit is open or half-open now.
        results_body_bytes: bytes of response bodies kept in the results.
        results_bodies_evicted: bodies dropped to keep within ``max_result_bytes`` (their
            results stay, with ``body_evicted`` set).
    """

    in_flight: int
    waiting: int
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
    wait_time: float
    latency_p50: float | None
    latency_p95: float | None
    latency_p99: float | None
    retries_refused: int
    circuit_rejected: int
    circuits_open: int
    results_body_bytes: int
    results_bodies_evicted: int
