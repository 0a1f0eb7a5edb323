"""
The demo's terminal UI on rich: the live dashboard and the summary table.

Imported only once rich is known to be there (``_main`` asks ``have_rich()``). ``Live`` runs with
``auto_refresh=False``: rich's refresh thread would read the client's counters from another
thread while the event loop changes them, so the dashboard's own task refreshes it, every
``REFRESH_SECONDS``, a bounded number of times.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Final

import anyio
from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ._report import DemoReport, Snapshot, summary_rows

REFRESH_SECONDS: Final[float] = 0.1
# Frames drawn after the time limit at most, while the cancelled requests wind down.
_SPARE_FRAMES: Final[int] = 300
_STATE_STYLES: Final[dict[str, str]] = {
    "closed": "green",
    "open": "bold red",
    "half_open": "yellow",
}
_COUNT_ROWS: Final[int] = 4
# ClientStats' percentiles cover the latest 1,024 finished requests.
_LATENCY_WINDOW: Final[int] = 1_024
#: Terminal width from which the dashboard's four sections stand side by side.
WIDE: Final[int] = 110


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:,.0f} ms" if value < 1 else f"{value:,.2f} s"


def _pairs(*sections: tuple[str, list[tuple[str, Text | str]]]) -> Table:
    """A small two-column table of sections: a bold title, then labels and values."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim", no_wrap=True)
    table.add_column(justify="right", no_wrap=True)
    for index, (title, rows) in enumerate(sections):
        if index:
            table.add_row("", "")
        table.add_row(Text(title, style="bold"), "")
        for label, value in rows:
            table.add_row(label, value)
    return table


def _ok_first(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (item[0] != "ok", -item[1]))


def _counts(counts: Mapping[str, int], *, rows: int = _COUNT_ROWS) -> list[tuple[str, Text | str]]:
    """The largest counts first (``ok`` on top), the rest summed up as ``others``."""
    lines: list[tuple[str, Text | str]] = []
    ordered = _ok_first(counts)
    for name, count in ordered[:rows]:
        style = "green" if name == "ok" else "yellow" if name.startswith("HTTP") else "red"
        lines.append((name, Text(f"{count:,}", style=style)))
    if len(ordered) > rows:
        rest = sum(count for _, count in ordered[rows:])
        lines.append(("others", f"{rest:,}"))
    return lines or [("none yet", "")]


def render(snap: Snapshot, width: int = 120) -> RenderableType:
    """One frame of the dashboard, four columns wide from ``WIDE`` columns, else two."""
    options, stats = snap.options, snap.stats
    total = options.requests
    if snap.stopped_by is not None:
        state = "stopped" if snap.done else "stopping"
        status = Text(f"{state}: {snap.stopped_by}", style="bold yellow")
    elif snap.done:
        status = Text("done", style="bold green")
    else:
        status = Text("running", style="bold cyan")
    bar = Table.grid(padding=(0, 2), expand=True)
    bar.add_column(ratio=1)
    bar.add_column(justify="right", no_wrap=True)
    bar.add_row(
        ProgressBar(total=total, completed=snap.finished),
        Text.assemble(
            (f"{snap.finished:,}", "bold"),
            f" / {total:,} done  {snap.finished / total:4.0%}  {snap.elapsed:5.1f} s  ",
            status,
        ),
    )
    events_per_second = snap.events_per_second
    if snap.done and snap.elapsed > 0:  # the run's average, once the batch has ended
        events_per_second = sum(snap.events.values()) / snap.elapsed
    requests = _pairs(
        (
            "Requests",
            [
                ("submitted", f"{snap.submitted:,}"),
                ("in flight", f"{stats.in_flight:,}"),
                ("succeeded", Text(f"{stats.succeeded:,}", style="green")),
                ("failed", Text(f"{stats.failed:,}", style="red" if stats.failed else "")),
                ("cancelled", f"{stats.cancelled:,}"),
                ("retries", Text(f"{stats.retries:,}", style="yellow" if stats.retries else "")),
                ("events/s", f"{events_per_second:,.0f}"),
            ],
        )
    )
    outcomes = _pairs(
        ("Outcomes", _counts(snap.outcomes)),
        ("Retried after", _counts(snap.retried_after, rows=3)),
    )
    latency = _pairs(
        (
            "Latency",
            [
                ("p50", _ms(stats.latency_p50)),
                ("p95", _ms(stats.latency_p95)),
                ("p99", _ms(stats.latency_p99)),
                ("over", f"last {min(snap.finished, _LATENCY_WINDOW):,}"),
            ],
        )
    )
    resilience = _pairs(
        (
            "Circuits",
            [
                *(
                    (label, Text(state.replace("_", "-"), style=_STATE_STYLES.get(state, "")))
                    for label, state in snap.circuits
                ),
                ("openings", f"{snap.events.get('circuit_opened', 0):,}"),
                ("failed fast", f"{stats.circuit_rejected:,}"),
            ],
        ),
        (
            "Retry budget",
            [
                ("tokens", f"{snap.budget_tokens:,.1f} / {snap.budget_max:,.0f}"),
                ("retries refused", f"{stats.retries_refused:,}"),
            ],
        ),
    )
    if width >= WIDE:
        columns = Table.grid(padding=(0, 4))
        for _ in range(4):
            columns.add_column(vertical="top")
        columns.add_row(requests, outcomes, latency, resilience)
    else:
        columns = Table.grid(padding=(0, 4))
        for _ in range(2):
            columns.add_column(vertical="top")
        columns.add_row(requests, outcomes)
        columns.add_row("", "")
        columns.add_row(latency, resilience)
    faults = ", ".join(
        f"{'slow' if kind == 'delay' else kind} {count:,}"
        for kind, count in _ok_first(snap.server_faults)
    )
    footer = Text(f"server's fault mix so far: {faults or 'none'}", style="dim")
    return Panel(
        Group(Text(options.title, style="dim"), bar, Text(""), columns, Text(""), footer),
        # Two columns short of the terminal's width: a full-width last line leaves the cursor
        # in the last column, where the "^C" the terminal echoes on Ctrl-C (or any key typed)
        # wraps to a new line, and the next frame is drawn one line too low.
        width=max(40, width - 2),
        title="[bold]typed-async-client demo[/]",
        border_style="blue",
        box=box.ROUNDED,
    )


class LiveDashboard:
    """The live view of a demo run (a :class:`~._demo.View`)."""

    def __init__(self, console: Console, time_limit: float) -> None:
        self.console = console
        self.max_frames = math.ceil(time_limit / REFRESH_SECONDS) + _SPARE_FRAMES

    async def run(self, snapshot: Callable[[], Snapshot], done: anyio.Event) -> None:
        """Redraw every ``REFRESH_SECONDS`` until ``done``, then draw the last frame."""
        with Live(
            console=self.console,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        ) as live:
            for _ in range(self.max_frames):
                live.update(render(snapshot(), self.console.width), refresh=True)
                with anyio.move_on_after(REFRESH_SECONDS):
                    await done.wait()
                if done.is_set():
                    break
            live.update(render(snapshot(), self.console.width), refresh=True)


def summary_table(report: DemoReport) -> Table:
    """The summary after a run."""
    table = Table(
        title="Summary",
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        show_header=False,
        caption=report.options.title,
        caption_justify="left",
    )
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for label, value in summary_rows(report):
        style = ""
        if label == "requests":
            style = "red" if report.lost else "green"
        elif label == "stopped by":
            style = "yellow"
        table.add_row(label, Text(value, style=style))
    return table
