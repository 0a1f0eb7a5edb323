"""
``fetch``: GET many URLs through one client, one JSON line per result on stdout.

Each URL is a task started only once a slot is free (at most ``--concurrency`` exist), which
submits the request and writes its line when the result comes. Lines come in the order results
do. Ctrl-C stops submitting and cancels the requests in flight: their lines still come (with
``"error": "cancelled"``), then the partial summary on stderr, and the exit status is 130. A
closed stdout (``fetch ... | head -1``) stops the run the same way, quietly.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, final

import anyio
import httpx

from .. import AsyncResilientClient, RequestContext, RequestHandle, RequestResult, RetryPolicy
from ._console import plural
from ._interrupt import handle_interrupts


@final
@dataclass(frozen=True, slots=True)
class FetchOptions:
    """The fetch command's options."""

    urls: tuple[str, ...]
    retries: int = 3
    backoff: float = 0.5
    concurrency: int = 10
    rate: float | None = None
    timeout: float = 10.0
    deadline: float | None = None
    policy: str = "default"


class Progress(Protocol):
    """What shows fetch's progress (a rich progress bar on stderr)."""

    def advance(self, tally: FetchTally) -> None:
        """A result came: redraw with ``tally``."""


@final
class FetchTally:
    """Counts of the results so far."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.submitted = 0
        self.statuses: Counter[str] = Counter()  # "200", "404"...
        self.errors = 0
        self.cancelled = 0
        self.started = time.perf_counter()
        self.stopped_by: str | None = None

    @property
    def done(self) -> int:
        """URLs with a result."""
        return sum(self.statuses.values()) + self.errors + self.cancelled

    @property
    def responses(self) -> int:
        """URLs that got a response, whatever its status."""
        return sum(self.statuses.values())

    def summary(self) -> str:
        """One line for stderr."""
        seconds = time.perf_counter() - self.started
        statuses = ", ".join(f"{count} x {code}" for code, count in sorted(self.statuses.items()))
        parts = [plural(self.responses, "response") + (f" ({statuses})" if statuses else "")]
        parts.append(plural(self.errors, "error"))
        if self.cancelled:
            parts.append(f"{self.cancelled} cancelled")
        done = f"{self.done} of {self.total} URLs in {seconds:.2f} s: " + ", ".join(parts)
        if self.stopped_by is None:
            return "fetched " + done
        left = self.total - self.submitted
        return f"interrupted ({self.stopped_by}): {done}; {left} not started"


def line_for(url: str, result: RequestResult | None, error: BaseException | None) -> str:
    """The JSON line of one URL (``result`` is ``None`` when it could not be submitted)."""
    record: dict[str, Any] = {"url": url, "status": None, "attempts": 0, "seconds": 0.0}
    if result is not None:
        record["status"] = result.status_code
        record["attempts"] = result.attempts
        record["seconds"] = round(result.total_time, 3)
        error = result.error
        if result.is_cancelled:
            record["error"] = "cancelled"
            return json.dumps(record)
    if error is None:
        record["error"] = None
    else:
        message = str(error)
        record["error"] = type(error).__name__ + (f": {message}" if message else "")
    return json.dumps(record)


class _Fetcher:
    def __init__(self, options: FetchOptions, progress: Progress | None) -> None:
        self.options = options
        self.progress = progress
        self.tally = FetchTally(len(options.urls))
        self.in_flight: set[RequestHandle] = set()
        self.slots = anyio.Semaphore(options.concurrency)

    def stop(self, reason: str) -> None:
        """Submit no more URLs; cancel those in flight (their lines still come)."""
        if self.tally.stopped_by is None:
            self.tally.stopped_by = reason
        for handle in list(self.in_flight):
            handle.cancel()

    def write(self, line: str) -> None:
        # Looked up at each write: rich's progress bar may stand in for sys.stdout.
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except BrokenPipeError:  # fetch ... | head -1
            # What is still buffered goes nowhere, instead of failing again at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            self.stop("stdout closed")

    def record(self, url: str, result: RequestResult | None, error: Exception | None) -> None:
        if result is not None and result.is_cancelled:
            self.tally.cancelled += 1
        elif result is not None and result.is_success:
            self.tally.statuses[str(result.status_code)] += 1
        else:
            self.tally.errors += 1
        if self.tally.stopped_by != "stdout closed":
            self.write(line_for(url, result, error))
        if self.progress is not None:
            self.progress.advance(self.tally)

    async def one(self, client: AsyncResilientClient, url: str) -> None:
        try:
            try:
                handle = await client.get(url)
            except Exception as exc:  # a URL httpx cannot parse, a header it refuses...
                self.record(url, None, exc)
                return
            self.in_flight.add(handle)
            try:
                if self.tally.stopped_by is not None:
                    handle.cancel()
                result = await handle.wait_result()
            finally:
                self.in_flight.discard(handle)
            self.record(url, result, None)
        finally:
            self.slots.release()

    async def run(self) -> None:
        options = self.options
        context = RequestContext(
            max_retries=options.retries,
            base_delay=options.backoff,
            max_delay=max(30.0, options.backoff),
            total_timeout=options.deadline,
        )

        async def interrupted() -> None:
            self.stop("Ctrl-C")

        async with (
            handle_interrupts(interrupted),
            AsyncResilientClient(
                timeout=httpx.Timeout(options.timeout),
                limits=httpx.Limits(max_connections=options.concurrency),
                max_concurrency=options.concurrency,
                max_per_second=options.rate,
                retry_policy=RetryPolicy.transient() if options.policy == "transient" else None,
                default_context=context,
                max_results=1,  # each result is read from its handle
                max_result_bytes=0,
            ) as client,
            anyio.create_task_group() as tg,
        ):
            for url in options.urls:
                await self.slots.acquire()  # before the task exists
                if self.tally.stopped_by is not None:
                    self.slots.release()
                    break
                self.tally.submitted += 1
                tg.start_soon(self.one, client, url)


async def fetch(options: FetchOptions, progress: Progress | None = None) -> FetchTally:
    """Fetch every URL; return the tally (``stopped_by`` set if it was interrupted)."""
    fetcher = _Fetcher(options, progress)
    await fetcher.run()
    return fetcher.tally


def read_urls(arguments: Sequence[str], path: str | None) -> list[str]:
    """The URLs of the arguments, then those of ``path`` (``-``: stdin), blanks and # skipped."""
    urls = list(arguments)
    if path is not None:
        if path == "-":
            lines = sys.stdin.read().splitlines()
        else:
            with open(path, encoding="utf-8") as file:
                lines = file.read().splitlines()
        urls += [
            line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")
        ]
    return urls


def exit_status(tally: FetchTally) -> int:
    """130 after Ctrl-C, 1 if some URL got no response, else 0."""
    if tally.stopped_by == "Ctrl-C":
        return 130
    return 1 if tally.errors or tally.cancelled or tally.done < tally.total else 0
