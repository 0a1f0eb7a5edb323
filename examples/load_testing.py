"""
A load test: many requests at a fixed concurrency, with the figures a load test reports.

By default it starts the bundled test server (``typed_async_client.testing.LocalServer``) with
a seeded ``FaultMix`` on its ``/mix`` route: connections reset or dropped, bodies cut short,
500, 503 and 429 answers, slow answers. One request in ten goes to a second loopback origin
that refuses every connection, a replica that is down. The client retries with
``RetryPolicy.transient()`` under a client-wide ``RetryBudget`` and a per-origin
``CircuitBreaker``, and the report says what they did: retries granted and refused by the
budget, attempts the open circuit refused, circuits opened and closed.

``--concurrency`` workers each send one request at a time (a closed loop), until ``--requests``
requests were sent or ``--duration`` seconds passed: the run is bounded in count and in time.
At the time limit the requests still running end with ``DeadlineExceededError`` (they inherit
the deadline) and count as failures.

It prints the throughput, latency percentiles (the whole request, retries and backoff sleeps
included), success and retry rates, the outcomes, the retry budget and the circuits.

    python examples/load_testing.py                         # the embedded server, 1,000 requests
    python examples/load_testing.py --requests 5000 --concurrency 100 --backend trio
    python examples/load_testing.py --url http://127.0.0.1:8000/health --duration 60

By default every request goes to loopback addresses (127.0.0.1) on this machine. ``--url``
points it at your own service instead: only load a service you run or are allowed to load.
A response with a status below 400 counts as a success.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import ipaddress
import math
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from urllib.parse import urlsplit

import anyio
import httpx

from typed_async_client import (
    AsyncEvent,
    AsyncResilientClient,
    Backoff,
    CircuitBreaker,
    EventType,
    RequestContext,
    RequestHandle,
    RequestResult,
    RequestStatus,
    RetryBudget,
    RetryPolicy,
)
from typed_async_client.testing import FaultMix, LocalServer, refusing_url

REQUESTS = 1_000
CONCURRENCY = 50
DURATION = 20.0  # seconds; the cap of the whole run
TIMEOUT = 10.0  # seconds one request may take, its retries and backoff sleeps included
DOWN_SHARE = 0.1  # share of the requests sent to a down replica, with the embedded server
BUDGET_RATIO = 0.1  # retries allowed per request sent
SETTLE = 5.0  # seconds granted, after the time limit, to the requests still running
PERCENTILES = (50, 90, 95, 99)

# The embedded server's faults, each a probability per request: 5 % of connections broken
# (reset, dropped, cut short), 9 % of error statuses, 10 % of slow or closing answers.
MIX = FaultMix(
    reset=0.02,
    drop=0.02,
    truncate=0.01,
    status_500=0.02,
    status_503=0.05,
    status_429=0.02,
    delay=0.05,
    close=0.05,
    delay_seconds=0.05,
)


@dataclasses.dataclass(frozen=True)
class LoadReport:
    """
    What a load test measured.

    Attributes:
        target: the URL loaded (the ``/mix`` route of the embedded server by default).
        down_share: the share of the requests sent to the down replica.
        budget_ratio: the retry budget's ratio (retries allowed per request sent).
        planned: the requests asked for (``--requests``).
        sent: the requests sent; fewer than ``planned`` if the time limit came first.
        succeeded: requests that got a response with a status below 400.
        failed: the other requests sent: error statuses, errors, cut by the time limit.
        outcomes: every request's outcome (``"200"``, ``"503"``, ``"ConnectError"``...), counted.
        seconds: the run's wall time.
        capped: whether the time limit (``--duration``) ended the run.
        latencies: seconds per request, from submission to its end, by percentile (``"p50"``,
            ``"p90"``, ``"p95"``, ``"p99"``, ``"max"``); empty if no request was sent.
        started: requests the client admitted, from ``client.stats()`` (equal to ``sent``).
        attempts: attempts started (a request refused by an open circuit before its first
            attempt has none).
        retries: retries scheduled.
        retries_refused: retries the retry budget refused (the request ended instead).
        budget_tokens: the budget's tokens left at the end.
        circuit_rejected: attempts an open circuit refused without touching the network.
        circuits_open: origins whose circuit was open or half-open at the end.
        circuit_events: circuit state changes seen (``"circuit_opened"``...), counted.
        events_dropped: events lost because the callback queue was full (0 expected).
        faults_drawn: the fault the embedded server drew for each attempt it received, counted
            (empty with ``--url``).
    """

    target: str
    down_share: float
    budget_ratio: float
    planned: int
    sent: int
    succeeded: int
    failed: int
    outcomes: dict[str, int]
    seconds: float
    capped: bool
    latencies: dict[str, float]
    started: int
    attempts: int
    retries: int
    retries_refused: int
    budget_tokens: float
    circuit_rejected: int
    circuits_open: int
    circuit_events: dict[str, int]
    events_dropped: int
    faults_drawn: dict[str, int]

    @property
    def throughput(self) -> float:
        """Requests completed per second."""
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    @property
    def success_rate(self) -> float:
        """The share of the requests sent that succeeded."""
        return self.succeeded / self.sent if self.sent else 0.0

    @property
    def retry_rate(self) -> float:
        """The share of the attempts that were retries."""
        return self.retries / self.attempts if self.attempts else 0.0


def outcome_of(result: RequestResult) -> str:
    """A request's outcome: its final status code, or the type of the error that ended it."""
    if result.status is RequestStatus.SUCCESS and result.status_code is not None:
        return str(result.status_code)
    if result.status is RequestStatus.CANCELLED:
        return "cancelled"
    return type(result.error).__name__


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    """Nearest-rank percentiles of ``samples`` and their maximum, in seconds."""
    ordered = sorted(samples)
    if not ordered:
        return {}
    figures = {
        f"p{pct}": ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1] for pct in PERCENTILES
    }
    figures["max"] = ordered[-1]
    return figures


def is_loopback(url: str) -> bool:
    """Whether ``url``'s host is a loopback address or ``localhost``."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Tally:
    """Each finished request's outcome and latency, and the requests still running."""

    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.in_flight: set[RequestHandle] = set()

    def add(self, result: RequestResult) -> None:
        self.outcomes[outcome_of(result)] += 1
        self.latencies.append(result.total_time)


async def worker(
    client: AsyncResilientClient,
    indices: Iterator[int],
    targets: Sequence[str],
    request_timeout: float,
    tally: Tally,
) -> None:
    """Send one request at a time, while ``indices`` (shared by all workers) lasts."""
    for index in indices:
        url = targets[index % len(targets)]
        handle = await client.get(url, context=RequestContext(total_timeout=request_timeout))
        tally.in_flight.add(handle)
        result = await handle.wait_result()
        tally.in_flight.discard(handle)
        tally.add(result)


def spread(target: str, down: str, share: float, slots: int = 100) -> list[str]:
    """``slots`` URLs, ``share`` of them ``down``, spread evenly among ``target``."""
    down_slots = round(share * slots)
    return [
        down if (i * down_slots) // slots != ((i + 1) * down_slots) // slots else target
        for i in range(slots)
    ]


async def run_load(
    target: str,
    *,
    requests: int,
    concurrency: int,
    duration: float,
    request_timeout: float,
    down_share: float,
    budget_ratio: float,
) -> LoadReport:
    """Run ``concurrency`` workers against ``target`` (and the down replica) under the limit."""
    # Each request sent adds budget_ratio tokens, a retry spends one; 1 token a second trickles
    # in, so a quiet client can still retry. The default run asks for about 0.15 retries per
    # request (148 for 1,000 with a budget of 0.2, which refused none); at the default ratio of
    # 0.1 the budget refuses some, and the report shows it.
    budget = RetryBudget(budget_ratio, min_per_second=1.0, max_tokens=20.0)
    # Opens after 10 failed attempts in a row, or when half of the last 20 failed; probes again
    # after 0.5 s (short, for a run of seconds: a service's own setting would be longer).
    breaker = CircuitBreaker(failure_threshold=10, failure_rate=0.5, window=20, recovery_time=0.5)
    policy = RetryPolicy.transient(backoff=Backoff(base=0.01, factor=2.0, cap=0.2))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    circuit_events: Counter[str] = Counter()

    def on_circuit(event: AsyncEvent) -> None:
        circuit_events[str(event.event_type)] += 1

    tally = Tally()
    indices = iter(range(requests))
    with refusing_url() as down:
        targets = spread(target, f"{down}/load", down_share)
        async with AsyncResilientClient(
            limits=limits,
            retry_policy=policy,
            retry_budget=budget,
            circuit_breaker=breaker,
            # The workers read each result: the client's store keeps few, and no body.
            max_results=100,
            max_result_bytes=0,
        ) as client:
            for event_type in (
                EventType.CIRCUIT_OPENED,
                EventType.CIRCUIT_HALF_OPEN,
                EventType.CIRCUIT_CLOSED,
            ):
                client.add_event_callback(event_type, on_circuit)
            started = time.perf_counter()
            # The requests inherit this deadline: at the time limit those still running end
            # with DeadlineExceededError, and the workers stop.
            with anyio.move_on_after(duration) as scope:
                async with anyio.create_task_group() as tg:
                    for _ in range(concurrency):
                        tg.start_soon(worker, client, indices, targets, request_timeout, tally)
            elapsed = time.perf_counter() - started
            # The requests whose worker the time limit interrupted end at that same deadline;
            # any still running SETTLE seconds later is cancelled. Each is counted once.
            with anyio.move_on_after(SETTLE):
                for handle in list(tally.in_flight):
                    tally.add(await handle.wait_result())
                    tally.in_flight.discard(handle)
            for handle in tally.in_flight:
                handle.cancel()
            for handle in tally.in_flight:
                tally.add(await handle.wait_result())
        stats = client.stats()

    sent = sum(tally.outcomes.values())
    succeeded = sum(
        count
        for outcome, count in tally.outcomes.items()
        if outcome.isdigit() and int(outcome) < 400
    )
    return LoadReport(
        target=target,
        down_share=down_share,
        budget_ratio=budget_ratio,
        planned=requests,
        sent=sent,
        succeeded=succeeded,
        failed=sent - succeeded,
        outcomes=dict(tally.outcomes.most_common()),
        seconds=elapsed,
        capped=scope.cancelled_caught,
        latencies=percentiles(tally.latencies),
        started=stats.started,
        attempts=stats.attempts,
        retries=stats.retries,
        retries_refused=stats.retries_refused,
        budget_tokens=budget.tokens,
        circuit_rejected=stats.circuit_rejected,
        circuits_open=stats.circuits_open,
        circuit_events=dict(circuit_events),
        events_dropped=stats.events_dropped,
        faults_drawn={},
    )


async def main(
    url: str | None = None,
    *,
    requests: int = REQUESTS,
    concurrency: int = CONCURRENCY,
    duration: float = DURATION,
    request_timeout: float = TIMEOUT,
    down_share: float | None = None,
    budget_ratio: float = BUDGET_RATIO,
    seed: int = 0,
) -> LoadReport:
    """
    Load ``url``, or the embedded server's fault mix, and report what happened.

    Args:
        url: the URL every request GETs; ``None`` starts the embedded server with its fault
            mix on 127.0.0.1 and loads it.
        requests: the requests to send at most.
        concurrency: the workers, each with one request at a time.
        duration: the cap of the whole run, in seconds.
        request_timeout: the seconds one request may take, retries and backoff sleeps included.
        down_share: the share of requests sent to a loopback port that refuses connections
            (a replica that is down); by default 0.1 with the embedded server, 0 with ``url``.
        budget_ratio: the retry budget's share: retries allowed per request sent.
        seed: the seed of the embedded server's fault mix.

    Returns:
        The :class:`LoadReport`.

    Raises:
        ValueError: an argument out of range (the message names it).
    """
    if url is not None and urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"url must be an http:// or https:// URL, got {url!r}")
    if requests < 0:
        raise ValueError(f"requests must be >= 0, got {requests}")
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    for name, value in (("duration", duration), ("request_timeout", request_timeout)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value}")
    share = (DOWN_SHARE if url is None else 0.0) if down_share is None else down_share
    if not 0.0 <= share < 1.0:
        raise ValueError(f"down_share must be from 0 to 1 (excluded), got {share}")
    if not (math.isfinite(budget_ratio) and budget_ratio >= 0):
        raise ValueError(f"budget_ratio must be a finite number >= 0, got {budget_ratio}")
    load = functools.partial(
        run_load,
        requests=requests,
        concurrency=concurrency,
        duration=duration,
        request_timeout=request_timeout,
        down_share=share,
        budget_ratio=budget_ratio,
    )
    if url is not None:
        return await load(url)
    async with LocalServer(fault_mix=dataclasses.replace(MIX, seed=seed)) as server:
        report = await load(server.url_for("/mix/load"))
        return dataclasses.replace(report, faults_drawn=dict(server.fault_counts))


def format_report(report: LoadReport) -> str:
    """The report as the lines the script prints."""
    ms = {name: f"{seconds * 1000:.1f}" for name, seconds in report.latencies.items()}
    latency = ", ".join(f"{name} {value} ms" for name, value in ms.items()) or "none"
    outcomes = ", ".join(f"{name} x{count}" for name, count in report.outcomes.items())
    circuits = ", ".join(f"{name} x{count}" for name, count in report.circuit_events.items())
    lines = [
        f"target:      {report.target}"
        + (f", {report.down_share:.0%} to a replica that is down" if report.down_share else ""),
        f"requests:    {report.sent:,} sent of {report.planned:,} in {report.seconds:.2f} s"
        + (" (stopped by --duration)" if report.capped else ""),
        f"throughput:  {report.throughput:,.1f} req/s",
        f"latency:     {latency}",
        f"success:     {report.succeeded:,} ({report.success_rate:.1%}), failed {report.failed:,}",
        f"outcomes:    {outcomes or 'none'}",
        f"retries:     {report.retries:,} for {report.attempts:,} attempts "
        f"({report.retry_rate:.1%} of attempts were retries)",
        f"budget:      {report.retries_refused:,} retries refused, {report.retries:,} allowed "
        f"(ratio {report.budget_ratio}), {report.budget_tokens:.1f} tokens left",
        f"circuits:    {report.circuit_rejected:,} attempts refused by an open circuit, "
        f"{report.circuits_open} open at the end; {circuits or 'no state change'}",
    ]
    if report.faults_drawn:
        drawn = ", ".join(f"{name} x{count}" for name, count in sorted(report.faults_drawn.items()))
        lines.append(f"server drew: {drawn}")
    if report.events_dropped:
        lines.append(f"events:      {report.events_dropped} dropped")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python examples/load_testing.py",
        description="A bounded load test of typed-async-client against a local server or --url.",
    )
    parser.add_argument(
        "--url",
        default=None,
        help="the URL to GET (default: the embedded test server's fault mix, on 127.0.0.1); "
        "only load a service you run or are allowed to load",
    )
    parser.add_argument("--requests", type=int, default=REQUESTS, help="requests to send at most")
    parser.add_argument(
        "--concurrency", type=int, default=CONCURRENCY, help="requests in flight at most"
    )
    parser.add_argument(
        "--duration", type=float, default=DURATION, help="cap of the whole run, in seconds"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=TIMEOUT,
        help="seconds one request may take, retries included",
    )
    parser.add_argument(
        "--down-share",
        type=float,
        default=None,
        help="share of requests sent to a loopback port that refuses connections "
        "(default 0.1 with the embedded server, 0 with --url)",
    )
    parser.add_argument(
        "--budget-ratio",
        type=float,
        default=BUDGET_RATIO,
        help=f"retries allowed per request sent (default {BUDGET_RATIO})",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the embedded fault mix")
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    if args.url is not None and not is_loopback(args.url):
        print(f"note: {args.url} is not a loopback address", file=sys.stderr)
    run = functools.partial(
        main,
        args.url,
        requests=args.requests,
        concurrency=args.concurrency,
        duration=args.duration,
        request_timeout=args.timeout,
        down_share=args.down_share,
        budget_ratio=args.budget_ratio,
        seed=args.seed,
    )
    report = anyio.run(run, backend=args.backend)
    print(f"backend:     {args.backend}, concurrency {args.concurrency}")
    print(format_report(report))
