"""
``demo``: a batch through a fault-injecting loopback server, observed through the public API.

The fault plan, for ``--fault-rate F`` and ``--seed S``, gives each kind a share ``F / 4`` of
the requests:

* refused connections: the request goes to a port that refuses every connection
  (``refusing_url``); retried, then failed, until its circuit opens and fails it fast;
* 503 with ``Retry-After: 1``: ``/sequence/{i}?codes=503,200``, answered 200 the second time;
* slow answers (0.25 s) and connection resets: the server's own ``FaultMix`` on ``/mix/{i}``,
  at rates that make them ``F / 4`` of all requests.

The first two are drawn here from ``random.Random(S)``, request by request; the last two by the
server from the same seed, in the order requests (retries included) reach it. Every loop is
bounded: the requests by ``--requests``, the run by ``--time-limit`` (what is left is then
cancelled, as on Ctrl-C), the dashboard's refreshes by both.
"""

from __future__ import annotations

import random
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import Final, Protocol

import anyio
import httpx

from .. import (
    AsyncEvent,
    AsyncResilientClient,
    CircuitBreaker,
    EventType,
    RequestContext,
    RequestHandle,
    RetryBudget,
    RetryPolicy,
)
from ..testing import FaultMix, LocalServer, refusing_url
from ._interrupt import handle_interrupts
from ._report import (
    DemoOptions,
    DemoReport,
    Snapshot,
    build_report,
    outcome_of_event,
    retried_after,
)

SLOW_SECONDS: Final[float] = 0.25
RETRY_AFTER_SECONDS: Final[int] = 1


class View(Protocol):
    """What shows a run while it goes (the live dashboard)."""

    async def run(self, snapshot: Callable[[], Snapshot], done: anyio.Event) -> None:
        """Refresh from ``snapshot()`` until ``done`` is set, then draw the last frame."""


class StartLine:
    """The view without a terminal: one line on stderr when the batch starts, then nothing."""

    async def run(self, snapshot: Callable[[], Snapshot], done: anyio.Event) -> None:
        """Say what runs (and that Ctrl-C stops it), then wait for the end."""
        print(f"demo: {snapshot().options.title}; Ctrl-C stops it", file=sys.stderr, flush=True)
        await done.wait()


def plan(options: DemoOptions) -> list[str]:
    """
    The client-side fault of each request: ``"refused"``, ``"retry_after"`` or ``"mix"``
    (the server's mix decides).
    """
    rng = random.Random(options.seed)
    share = options.fault_rate / 4
    kinds: list[str] = []
    for _ in range(options.requests):
        point = rng.random()
        kinds.append("refused" if point < share else "retry_after" if point < 2 * share else "mix")
    return kinds


def server_mix(options: DemoOptions) -> FaultMix | None:
    """The server's mix: resets and slow answers, each ``F / 4`` of all the requests."""
    share = options.fault_rate / 4
    if share == 0:
        return None
    # Only the requests left after the refused and Retry-After shares reach /mix.
    rate = min(0.5, share / (1 - 2 * share))
    return FaultMix(seed=options.seed, reset=rate, delay=rate, delay_seconds=SLOW_SECONDS)


def url_for(kind: str, index: int, server: LocalServer, refused: str) -> str:
    """The URL of request ``index`` under its planned fault."""
    if kind == "refused":
        return f"{refused}/refused/{index}"
    if kind == "retry_after":
        return server.url_for(f"/sequence/{index}?codes=503,200&retry_after={RETRY_AFTER_SECONDS}")
    return server.url_for(f"/mix/{index}")


class Tally:
    """Counts of the events a client emits, fed by a callback (cheap, non-blocking)."""

    def __init__(self) -> None:
        self.events: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.retried_after: Counter[str] = Counter()
        self.total = 0

    def on_event(self, event: AsyncEvent) -> None:
        """The callback, for every event type."""
        self.total += 1
        self.events[event.event_type.value] += 1
        outcome = outcome_of_event(event)
        if outcome is not None:
            self.outcomes[outcome] += 1
        cause = retried_after(event)
        if cause is not None:
            self.retried_after[cause] += 1


class DemoRun:
    """The state of one run: what the dashboard shows and the report is built from."""

    def __init__(
        self,
        options: DemoOptions,
        client: AsyncResilientClient,
        breaker: CircuitBreaker,
        budget: RetryBudget,
        server: LocalServer,
        origins: dict[tuple[str, str, int], str],
    ) -> None:
        self.options = options
        self.client = client
        self.breaker = breaker
        self.budget = budget
        self.server = server
        self.origins = origins
        self.tally = Tally()
        self.handles: list[RequestHandle] = []
        self.started = time.perf_counter()
        self.stopped_by: str | None = None
        self.finished_at: float | None = None
        self._samples: deque[tuple[float, int]] = deque(maxlen=12)  # ~1.2 s of refreshes

    def elapsed(self) -> float:
        """Seconds since the first request (frozen once the batch has ended)."""
        end = time.perf_counter() if self.finished_at is None else self.finished_at
        return end - self.started

    def stop(self, reason: str) -> None:
        """Submit no more, and cancel the requests in flight (they end ``CANCELLED``)."""
        if self.stopped_by is None:
            self.stopped_by = reason
        for handle in self.handles:
            handle.cancel()  # a no-op on a handle that has ended

    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self.stopped_by is not None

    def circuits(self) -> list[tuple[str, str]]:
        """``(label, state)`` of each origin the breaker has seen."""
        states = self.breaker.states()
        return [
            (label, states[origin].value if origin in states else "closed")
            for origin, label in self.origins.items()
        ]

    def snapshot(self) -> Snapshot:
        """What the dashboard shows now."""
        now = time.perf_counter()
        self._samples.append((now, self.tally.total))
        first_time, first_total = self._samples[0]
        span = now - first_time
        rate = (self.tally.total - first_total) / span if span > 0 else 0.0
        return Snapshot(
            options=self.options,
            elapsed=self.elapsed(),
            submitted=len(self.handles),
            stats=self.client.stats(),
            outcomes=dict(self.tally.outcomes),
            retried_after=dict(self.tally.retried_after),
            events_per_second=rate,
            events=dict(self.tally.events),
            circuits=self.circuits(),
            budget_tokens=self.budget.tokens,
            budget_max=self.budget.max_tokens,
            server_faults=dict(self.server.fault_counts),
            stopped_by=self.stopped_by,
            done=self.finished_at is not None,
        )


async def run_demo(options: DemoOptions, view: View | None = None) -> DemoReport:
    """Run the demo: serve, send the batch (shown on ``view``), and report."""
    kinds = plan(options)
    budget = RetryBudget()
    # A short recovery time, so that a run of a few seconds shows circuits half-open again.
    breaker = CircuitBreaker(failure_threshold=5, recovery_time=1.0)
    policy = RetryPolicy.transient() if options.policy == "transient" else None
    limits = httpx.Limits(
        max_connections=options.concurrency, max_keepalive_connections=options.concurrency
    )
    async with LocalServer(fault_mix=server_mix(options)) as server:
        with refusing_url() as refused:
            urls = [url_for(kind, i, server, refused) for i, kind in enumerate(kinds)]
            origins = _origins({"server": server.url, "refusing port": refused})
            async with AsyncResilientClient(
                limits=limits,
                # The demo's own retry schedule: short, so a run takes seconds, not minutes.
                default_context=RequestContext(
                    max_retries=3, base_delay=0.05, max_delay=1.0, total_timeout=15.0
                ),
                retry_policy=policy,
                retry_budget=budget,
                circuit_breaker=breaker,
                event_queue_size=10_000,
                max_results=100,  # the handles hold the results the report reads
                max_result_bytes=0,
            ) as client:
                run = DemoRun(options, client, breaker, budget, server, origins)
                for event_type in EventType:
                    client.add_event_callback(event_type, run.tally.on_event)
                await _send(run, urls, view)
                stats = client.stats()
            # Leaving the client's block delivered the last events to the tally.
            return build_report(run, stats, kinds)


async def _send(run: DemoRun, urls: Sequence[str], view: View | None) -> None:
    """Submit ``urls`` through a batch, under the time limit and Ctrl-C, shown on ``view``."""
    done = anyio.Event()
    timer = anyio.CancelScope()

    async def interrupted() -> None:
        run.stop("Ctrl-C")

    async def time_limit() -> None:
        with timer:
            await anyio.sleep(run.options.time_limit)
            run.stop(f"the {run.options.time_limit:g} s time limit")

    async with anyio.create_task_group() as tg:
        tg.start_soon(time_limit)
        batch = run.client.batch(max_concurrency=run.options.concurrency, collect_results=False)
        async with handle_interrupts(interrupted):
            if view is not None:  # started once Ctrl-C is handled: it may say so
                tg.start_soon(view.run, run.snapshot, done)
            try:
                async with batch:
                    for url in urls:
                        if run.stopping():
                            break
                        handle = await batch.get(url)
                        run.handles.append(handle)
                        if run.stopping():
                            handle.cancel()  # admitted while stopping
            finally:  # even when a second Ctrl-C cancels the block
                run.finished_at = time.perf_counter()
                timer.cancel()
                done.set()  # the view draws its last frame and returns


def _origins(urls: dict[str, str]) -> dict[tuple[str, str, int], str]:
    """Label each origin ``(scheme, host, port)`` as the circuit breaker keys it."""
    origins: dict[tuple[str, str, int], str] = {}
    for label, url in urls.items():
        parsed = httpx.URL(url)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        origins[(parsed.scheme, parsed.host, port)] = label
    return origins
