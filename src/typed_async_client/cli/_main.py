"""
``main()``: parse the command line, run the command on its backend, return the exit status.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Sequence

from ._args import build_parser
from ._console import have_rich, is_terminal, needs_rich, warn
from ._demo import StartLine, View, run_demo
from ._fetch import FetchOptions, exit_status, fetch, read_urls
from ._report import DemoOptions, format_plain
from ._runner import EXIT_USAGE, run_command
from ._serve import run_serve


def main(argv: Sequence[str] | None = None, *, prog: str = "typed-async-client") -> int:
    """
    Run ``typed-async-client`` with ``argv`` (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 done, 1 a request failed or was lost, 2 bad usage, 130 Ctrl-C
        (``serve`` exits 0 on Ctrl-C: it is how a server is stopped).
    """
    parser, commands = build_parser(prog)
    args = parser.parse_args(argv)
    command: str = args.command
    if command == "serve":
        return run_serve(commands["serve"], args)
    if command == "fetch":
        return _run_fetch(commands["fetch"], args)
    return _run_demo(args)


def _run_demo(args: argparse.Namespace) -> int:
    options = DemoOptions(
        backend=args.backend,
        requests=args.requests,
        concurrency=args.concurrency,
        fault_rate=args.fault_rate,
        seed=args.seed,
        policy=args.policy,
        time_limit=args.time_limit,
    )
    if args.json:
        mode = "json"
    elif is_terminal(sys.stdout):
        if not have_rich():
            warn(f"error: {needs_rich('the live dashboard')} (or use --json)")
            return EXIT_USAGE
        mode = "live"
    else:
        mode = "plain"  # a file or a pipe: aligned text, no colours, no padding
    return run_command(functools.partial(_demo, options, mode), backend=options.backend)


async def _demo(options: DemoOptions, mode: str) -> int:
    view: View = StartLine()
    if mode == "live":
        from rich.console import Console

        from ._dashboard import LiveDashboard, summary_table

        console = Console(highlight=False)
        view = LiveDashboard(console, options.time_limit)
    report = await run_demo(options, view)
    if mode == "json":
        print(json.dumps(report.as_json()), flush=True)
    elif mode == "plain":
        print(format_plain(report), flush=True)
    else:
        console.print(summary_table(report))
    if report.lost:
        warn(f"error: {report.lost} requests lost (submitted, no final result)")
    if report.stopped_by == "Ctrl-C":
        warn("interrupted")
    return report.exit_status


def _run_fetch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    try:
        urls = read_urls(args.urls, args.input)
    except (OSError, UnicodeDecodeError) as exc:
        parser.error(f"cannot read --input {args.input}: {exc}")
    if not urls:
        parser.error("no URL to fetch: give URLs, or --input FILE")
    options = FetchOptions(
        urls=tuple(urls),
        retries=args.retries,
        backoff=args.backoff,
        concurrency=args.concurrency,
        rate=args.rate,
        timeout=args.timeout,
        deadline=args.deadline,
        policy=args.policy,
    )
    show = is_terminal(sys.stderr)
    if show and not have_rich():
        warn(f"no progress bar: {needs_rich('it')}")
        show = False
    return run_command(functools.partial(_fetch, options, show), backend=args.backend)


async def _fetch(options: FetchOptions, show: bool) -> int:
    if show:
        from ._progress import FetchProgress

        terminal_stdout = is_terminal(sys.stdout)
        with FetchProgress(len(options.urls), lines_through_bar=terminal_stdout) as progress:
            tally = await fetch(options, progress)
    else:
        tally = await fetch(options)
    warn(tally.summary())
    return exit_status(tally)
