"""
The soak: many requests through a seeded ~10 % fault mix at concurrency 200, on asyncio and trio.

Run it with ``nox -s soak`` or ``pytest -m slow tests/reliability/test_soak.py -s``; it prints
its figures. Every request must end with exactly one recorded result and one final event (none
lost, none duplicated); the retries counted in results must match the RETRY events and the
faults the server served; memory must stay flat after warm-up; closing the client must leave no
task and a closed httpx client.

Memory is checked twice. The ``REQUESTS`` requests run untraced, in two halves (the first one is
the warm-up), and the live Python memory blocks (``sys.getallocatedblocks()``) after the second
half must be about those after the first. Then ``TRACED`` more requests run under
``tracemalloc``, in two halves, and the traced memory still alive after the second must be about
what it was after the first. ``tracemalloc`` slows allocation-heavy code 4 to 5 times, hence the
short traced tail.

Size: on the 2-core machine this suite was written on (shared with other jobs), client and
server in one thread made 430 to 570 requests per second on asyncio and 570 to 800 on trio
untraced, and 115 to 190 under ``tracemalloc``. A run with ``SOAK_REQUESTS=50000`` passed in
92 s (asyncio) and 88 s (trio) untraced, plus about 20 s for the traced tail, per backend. So
``REQUESTS`` is 20,000 by default, about a minute per backend with the tail; set
``SOAK_REQUESTS=50000`` on a faster machine or in CI.
"""

from __future__ import annotations

import gc
import itertools
import os
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator

import anyio
import httpx
import pytest

from typed_async_client import (
    AsyncEvent,
    AsyncResilientClient,
    Backoff,
    EventType,
    RequestContext,
    RequestResult,
    RetryPolicy,
)
from typed_async_client.testing import FaultMix, LocalServer

pytestmark = [pytest.mark.slow, pytest.mark.anyio, pytest.mark.timeout(660)]

#: Untraced requests per backend (see the module docstring).
REQUESTS = int(os.environ.get("SOAK_REQUESTS", "20000"))
#: Requests of the traced tail, run after ``REQUESTS``.
TRACED = 3_000
#: Requests in flight in the client at once (``max_concurrency``).
CONCURRENCY = 200
#: Connections of the httpx pool, and so attempts on the wire at once.
POOL = 20
#: A 10 % mix: 8 % of attempts get a retried fault, 1 % a 500 (not retried), 1 % are benign.
MIX = FaultMix(
    seed=20_240_611,
    reset=0.02,
    drop=0.02,
    truncate=0.01,
    status_500=0.01,
    status_503=0.02,
    status_429=0.01,
    delay=0.005,
    close=0.005,
    delay_seconds=0.02,
)
#: Faults after which a GET is retried under ``RetryPolicy.transient()``.
RETRIED_FAULTS = ("reset", "drop", "truncate", "status_503", "status_429")
#: Live memory blocks may grow this much from the first untraced half to the second: a leak
#: of one block (one small object) per request passes it at the default size.
BLOCK_SLACK = 5_000
#: Traced memory may grow this much from the first traced half to the second (it wavers by
#: about 200 KiB between halves here): a leak of 700 bytes per request passes it.
MEMORY_SLACK = 1024 * 1024
#: Backstop of each run, in seconds.
BACKSTOP = 600


class Tally:
    """What the soak saw, in arrays sized before tracing starts."""

    def __init__(self, requests: int) -> None:
        self.results = bytearray(requests)
        self.finals = bytearray(requests)
        self.outcomes: Counter[str] = Counter()
        self.result_retries = 0
        self.event_attempts = 0
        self.retry_events = 0
        self.not_stored = 0

    def on_final(self, event: AsyncEvent) -> None:
        """Count a request's final event."""
        self.finals[int(event.context.request_id)] += 1
        self.event_attempts += event.data["attempts"]

    def on_retry(self, event: AsyncEvent) -> None:
        """Count a RETRY event."""
        self.retry_events += 1

    def record(self, index: int, result: RequestResult, stored: RequestResult | None) -> None:
        """Count a request's result."""
        self.results[index] += 1
        self.result_retries += result.attempts - 1
        if result.error is not None:
            self.outcomes[type(result.error).__name__] += 1
        else:
            self.outcomes[f"HTTP {result.status_code}"] += 1
        if stored is None:
            self.not_stored += 1  # already evicted by later results: the store is bounded
        else:
            assert stored is result


async def run_half(
    client: AsyncResilientClient, url: str, numbers: Iterator[int], tally: Tally
) -> None:
    """Send the requests of ``numbers`` with CONCURRENCY workers, recording each result."""

    async def worker() -> None:
        for index in numbers:
            context = RequestContext(request_id=str(index))
            handle = await client.get(url, context=context)
            result = await handle.wait_result()
            tally.record(index, result, client.get_result(handle.request_id))

    async with anyio.create_task_group() as tg:
        for _ in range(CONCURRENCY):
            tg.start_soon(worker)


def live_blocks() -> int:
    """Memory blocks Python holds after a full collection (cheap, no tracing needed)."""
    gc.collect()
    return sys.getallocatedblocks()


def traced_bytes() -> int:
    """Bytes traced by tracemalloc and still alive after a full collection."""
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def client_tasks() -> list[str]:
    """Names of the running tasks that belong to a client (requests, event dispatcher)."""
    return [
        task.name
        for task in anyio.get_running_tasks()
        if task.name.startswith("request ") or "typed_async_client._" in task.name
    ]


async def test_soak(anyio_backend: str) -> None:
    """REQUESTS + TRACED requests through the fault mix: nothing lost, retries add up, flat."""
    total = REQUESTS + TRACED
    tally = Tally(total)
    bounds = [0, REQUESTS // 2, REQUESTS, REQUESTS + TRACED // 2, total]
    halves = [iter(range(low, high)) for low, high in itertools.pairwise(bounds)]
    policy = RetryPolicy.transient(backoff=Backoff(base=0.001, factor=2.0, cap=0.01))
    limits = httpx.Limits(max_connections=POOL, max_keepalive_connections=POOL)
    blocks: list[int] = []
    traced: list[int] = []
    try:
        with anyio.fail_after(BACKSTOP):
            async with LocalServer(fault_mix=MIX, record_limit=100) as server:
                url = server.url_for("/mix/soak")
                client = AsyncResilientClient(
                    limits=limits,
                    timeout=30.0,
                    max_concurrency=CONCURRENCY,
                    retry_policy=policy,
                    max_results=1_000,
                    event_queue_size=20_000,
                )
                async with client:
                    client.add_event_callback(EventType.RETRY, tally.on_retry)
                    for final in (EventType.SUCCESS, EventType.ERROR, EventType.CANCELLED):
                        client.add_event_callback(final, tally.on_final)
                    started = time.perf_counter()
                    for numbers in halves[:2]:
                        await run_half(client, url, numbers, tally)
                        blocks.append(live_blocks())
                    untraced = time.perf_counter() - started
                    tracemalloc.start(1)
                    started = time.perf_counter()
                    for numbers in halves[2:]:
                        await run_half(client, url, numbers, tally)
                        traced.append(traced_bytes())
                    tail = time.perf_counter() - started
                    await client.wait_for_all_requests()
                leftover = client_tasks()
                stats = client.stats()
                faults = Counter(server.fault_counts)
                hits = server.hits["/mix/soak"]
                connections = server.connections
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()

    print(
        f"\nsoak on {anyio_backend}: concurrency {CONCURRENCY}, pool {POOL}\n"
        f"  {REQUESTS:,} requests in {untraced:.1f} s ({REQUESTS / untraced:,.0f} requests/s), "
        f"then {TRACED:,} under tracemalloc in {tail:.1f} s ({TRACED / tail:,.0f} requests/s)\n"
        f"  attempts {stats.attempts:,}, retries {stats.retries:,} "
        f"(RETRY events {tally.retry_events:,}), connections {connections:,}\n"
        f"  outcomes {dict(sorted(tally.outcomes.items()))}\n"
        f"  faults {dict(sorted(faults.items()))}\n"
        f"  live blocks after each untraced half {blocks[0]:,} and {blocks[1]:,}; traced memory "
        f"after each traced half {traced[0] / 1024:,.0f} KiB and {traced[1] / 1024:,.0f} KiB "
        f"(peak {peak / 1024:,.0f} KiB)\n"
        f"  results evicted {stats.results_evicted:,}, "
        f"already evicted when read {tally.not_stored:,}"
    )
    # Nothing lost, nothing duplicated: one result and one final event per request.
    assert bytes([1]) * total == bytes(tally.results)
    assert bytes([1]) * total == bytes(tally.finals)
    assert (total, 0, 0) == (stats.started, stats.in_flight, stats.cancelled)
    assert total == stats.succeeded + stats.failed
    assert total == stats.results_kept + stats.results_evicted
    assert (0, 0) == (stats.events_dropped, stats.callback_errors)
    # Retries add up: results, events, counters, and the faults the server served.
    assert tally.result_retries == tally.retry_events == stats.retries
    assert stats.attempts == total + stats.retries == tally.event_attempts == hits
    assert hits == sum(faults.values())
    given_up = stats.failed + tally.outcomes["HTTP 503"] + tally.outcomes["HTTP 429"]
    assert sum(faults[kind] for kind in RETRIED_FAULTS) == stats.retries + given_up
    assert set(tally.outcomes) <= {
        "HTTP 200",
        "HTTP 500",
        "HTTP 503",
        "HTTP 429",
        "ReadError",
        "RemoteProtocolError",
    }
    # Memory is flat after the warm-up (the first half).
    assert blocks[1] - blocks[0] < BLOCK_SLACK
    assert traced[1] - traced[0] < MEMORY_SLACK
    # Nothing leaked at close.
    assert [] == leftover
    assert client.http_client.is_closed
    assert 0 == client.active_tasks_count
