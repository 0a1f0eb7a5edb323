"""
The demo's records: its options, a live :class:`Snapshot` for the dashboard, and the final
:class:`DemoReport`, with its JSON form and a plain-text form for terminals without rich.

No rich and no I/O here: the dashboard renders these records, the command prints them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, final

from .. import AsyncEvent, ClientStats, EventType, RequestResult

if TYPE_CHECKING:
    from ._demo import DemoRun


@final
@dataclass(frozen=True, slots=True)
class DemoOptions:
    """The demo's command-line options."""

    backend: str = "asyncio"
    requests: int = 1_000
    concurrency: int = 50
    fault_rate: float = 0.1
    seed: int = 1
    policy: str = "transient"
    time_limit: float = 120.0

    @property
    def title(self) -> str:
        """One line that says what runs."""
        return (
            f"{self.requests:,} requests, {self.concurrency} at a time · {self.fault_rate:.0%} "
            f"faults · seed {self.seed} · {self.policy} policy · {self.backend}"
        )


@final
@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the live dashboard shows at one refresh."""

    options: DemoOptions
    elapsed: float
    submitted: int
    stats: ClientStats
    outcomes: Mapping[str, int]
    retried_after: Mapping[str, int]
    events_per_second: float
    events: Mapping[str, int]
    circuits: Sequence[tuple[str, str]]
    budget_tokens: float
    budget_max: float
    server_faults: Mapping[str, int]
    stopped_by: str | None
    done: bool

    @property
    def finished(self) -> int:
        """Requests that have ended, whatever their outcome."""
        return self.stats.succeeded + self.stats.failed + self.stats.cancelled


def outcome_of_event(event: AsyncEvent) -> str | None:
    """The outcome a final event reports (``None`` for the other events)."""
    if event.event_type is EventType.SUCCESS:
        code = event.data.get("status_code")
        return "ok" if isinstance(code, int) and code < 400 else f"HTTP {code}"
    if event.event_type is EventType.ERROR:
        return type(event.error).__name__ if event.error is not None else "error"
    if event.event_type is EventType.CANCELLED:
        return "cancelled"
    return None


def retried_after(event: AsyncEvent) -> str | None:
    """What a ``RETRY`` event retries after: an error's type name or ``"HTTP nnn"``."""
    if event.event_type is not EventType.RETRY:
        return None
    if event.error is not None:
        return type(event.error).__name__
    return f"HTTP {event.data.get('status_code')}"


def outcome_of_result(result: RequestResult) -> str:
    """``"ok"``, ``"HTTP 503"``, an exception's type name, or ``"cancelled"``."""
    if result.is_success:
        code = result.status_code
        return "ok" if code is not None and code < 400 else f"HTTP {code}"
    if result.is_cancelled:
        return "cancelled"
    return type(result.error).__name__ if result.error is not None else "error"


def percentile(ordered: Sequence[float], pct: float) -> float | None:
    """The nearest-rank percentile of an ascending sequence, ``None`` when it is empty."""
    if not ordered:
        return None
    return ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1]


@final
@dataclass(frozen=True, slots=True)
class DemoReport:
    """
    The demo's outcome, built from the requests' results once the batch has ended.

    Attributes:
        lost: requests submitted that have no final result; any makes the exit status 1.
        not_submitted: requests of the plan never submitted (the run was stopped first).
        outcomes: results by outcome (``"ok"``, ``"HTTP 503"``, an error's type name,
            ``"cancelled"``).
        attempt_failures: failed attempts by error type name, or ``"HTTP nnn"`` for a 429 or
            5xx answer, retries included.
        planned: requests by planned fault (``refused``, ``retry_after``, ``mix``).
        server_faults: what the server's mix gave each ``/mix`` attempt.
        stopped_by: ``"Ctrl-C"``, the time limit, or ``None`` for a run that finished.
    """

    options: DemoOptions
    submitted: int
    lost: int
    not_submitted: int
    outcomes: dict[str, int]
    attempts: int
    retries: int
    retries_refused: int
    circuit_rejected: int
    circuits: dict[str, str]
    events: dict[str, int]
    events_dropped: int
    attempt_failures: dict[str, int]
    planned: dict[str, int]
    server_faults: dict[str, int]
    latency: dict[str, float | None]
    seconds: float
    stopped_by: str | None

    @property
    def exit_status(self) -> int:
        """130 if stopped by Ctrl-C, 1 if a request was lost, else 0."""
        if self.stopped_by == "Ctrl-C":
            return 130
        return 1 if self.lost else 0

    @property
    def requests_per_second(self) -> float:
        """Finished requests per second of the run."""
        finished = self.submitted - self.lost
        return finished / self.seconds if self.seconds > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        """The report as one JSON-ready object."""
        options = self.options
        return {
            "backend": options.backend,
            "policy": options.policy,
            "seed": options.seed,
            "requests": options.requests,
            "concurrency": options.concurrency,
            "fault_rate": options.fault_rate,
            "submitted": self.submitted,
            "lost": self.lost,
            "not_submitted": self.not_submitted,
            "outcomes": self.outcomes,
            "attempts": self.attempts,
            "retries": self.retries,
            "retries_refused_by_budget": self.retries_refused,
            "rejected_by_circuit": self.circuit_rejected,
            "circuits": self.circuits,
            "events": self.events,
            "events_dropped": self.events_dropped,
            "attempt_failures": self.attempt_failures,
            "planned_faults": self.planned,
            "server_faults": self.server_faults,
            "latency_seconds": {
                name: None if value is None else round(value, 4)
                for name, value in self.latency.items()
            },
            "seconds": round(self.seconds, 3),
            "requests_per_second": round(self.requests_per_second, 1),
            "stopped_by": self.stopped_by,
        }


def _attempt_failures(results: Iterable[RequestResult]) -> Counter[str]:
    failures: Counter[str] = Counter()
    for result in results:
        # A cancelled request's last attempt did not fail: it was stopped.
        history = result.history[:-1] if result.is_cancelled else result.history
        for attempt in history:
            if attempt.error is not None:
                failures[attempt.error] += 1
            elif attempt.status_code is not None and (
                attempt.status_code == 429 or attempt.status_code >= 500
            ):
                failures[f"HTTP {attempt.status_code}"] += 1
    return failures


def build_report(run: DemoRun, stats: ClientStats, kinds: Sequence[str]) -> DemoReport:
    """The report of a run whose batch has ended."""
    results = [handle.result for handle in run.handles]
    done = [result for result in results if result is not None]
    times = sorted(result.total_time for result in done)
    return DemoReport(
        options=run.options,
        submitted=len(run.handles),
        lost=len(results) - len(done),
        not_submitted=len(kinds) - len(run.handles),
        outcomes=dict(Counter(outcome_of_result(result) for result in done).most_common()),
        attempts=stats.attempts,
        retries=stats.retries,
        retries_refused=stats.retries_refused,
        circuit_rejected=stats.circuit_rejected,
        circuits=dict(run.circuits()),
        events=dict(run.tally.events.most_common()),
        events_dropped=stats.events_dropped,
        attempt_failures=dict(_attempt_failures(done).most_common()),
        planned=dict(Counter(kinds[: len(run.handles)]).most_common()),
        server_faults=dict(run.server.fault_counts.most_common()),
        latency={
            name: percentile(times, pct) for name, pct in (("p50", 50), ("p95", 95), ("p99", 99))
        },
        seconds=run.elapsed(),
        stopped_by=run.stopped_by,
    )


# How the summary names the fault plan's kinds and the server's draws.
_SHOWN: Final[dict[str, str]] = {
    "refused": "refused port",
    "retry_after": "503 + Retry-After",
    "delay": "slow",
}


def _counts(counts: Mapping[str, int]) -> str:
    shown = (f"{_SHOWN.get(name, name)} {count:,}" for name, count in counts.items())
    return ", ".join(shown) or "none"


def _planned(planned: Mapping[str, int]) -> str:
    mixed = planned.get("mix", 0)
    chosen = _counts({kind: count for kind, count in planned.items() if kind != "mix"})
    return f"{chosen} · {mixed:,} left to the server's mix"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:,.0f} ms" if value < 1 else f"{value:.2f} s"


def summary_rows(report: DemoReport) -> list[tuple[str, str]]:
    """The summary as ``(label, value)`` rows, for the rich table and the plain text alike."""
    latency = report.latency
    rows = [
        ("requests", f"{report.submitted:,} submitted, {report.lost:,} lost"),
        ("outcomes", _counts(report.outcomes)),
        ("attempts", f"{report.attempts:,} ({report.retries:,} retries)"),
        ("failed attempts", _counts(report.attempt_failures)),
        (
            "retry budget",
            f"{report.retries_refused:,} retries refused",
        ),
        (
            "circuits",
            ", ".join(f"{label} {state}" for label, state in report.circuits.items())
            + f" · {report.events.get('circuit_opened', 0)} opened, "
            f"{report.circuit_rejected:,} attempts failed fast",
        ),
        (
            "latency",
            f"p50 {_seconds(latency['p50'])} · p95 {_seconds(latency['p95'])} · "
            f"p99 {_seconds(latency['p99'])}",
        ),
        (
            "time",
            f"{report.seconds:.2f} s, {report.requests_per_second:,.0f} requests/s",
        ),
        ("planned faults", _planned(report.planned)),
        ("server's mix", _counts(report.server_faults)),
        ("events", f"{sum(report.events.values()):,} ({report.events_dropped:,} dropped)"),
    ]
    if report.not_submitted:
        rows.insert(1, ("not submitted", f"{report.not_submitted:,}"))
    if report.stopped_by is not None:
        rows.insert(0, ("stopped by", report.stopped_by))
    return rows


def format_plain(report: DemoReport) -> str:
    """The summary as aligned plain text."""
    rows = summary_rows(report)
    width = max(len(label) for label, _ in rows)
    lines = [f"typed-async-client demo: {report.options.title}"]
    lines += [f"  {label:<{width}}  {value}" for label, value in rows]
    return "\n".join(lines)
