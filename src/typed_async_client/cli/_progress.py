"""
fetch's progress bar on stderr, on rich; imported only once rich is known to be there.

rich refreshes it from its own thread, reading only the bar's own fields under its lock; the
event loop updates them once per result.
"""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from ._console import plural
from ._fetch import FetchTally


class FetchProgress:
    """A progress bar for ``fetch`` (a :class:`~._fetch.Progress`), used as a context manager."""

    def __init__(self, total: int, *, lines_through_bar: bool) -> None:
        # When stdout is a terminal too, rich takes the JSON lines (redirect_stdout) and prints
        # them above the bar, through stderr's console: written straight to stdout they would
        # be drawn over by the next refresh. A file or a pipe on stdout is left alone.
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]fetch"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            redirect_stdout=lines_through_bar,
            redirect_stderr=False,
            refresh_per_second=8,
        )
        self._task = self._progress.add_task("fetch", total=total, counts="")

    def __enter__(self) -> FetchProgress:
        self._progress.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.__exit__(exc_type, exc, tb)

    def advance(self, tally: FetchTally) -> None:
        """Show ``tally``."""
        counts = f"[green]{plural(tally.responses, 'response')}[/] · "
        counts += f"[red]{plural(tally.errors, 'error')}[/]"
        if tally.cancelled:
            counts += f" · {tally.cancelled} cancelled"
        self._progress.update(self._task, completed=tally.done, counts=counts)
