"""
The command line: one ``argparse`` parser per command, and the checks of their values.

Every value is checked here, so a bad option ends in argparse's usage error (exit status 2)
naming the option and the rule, before any event loop or socket exists.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Final

from .. import __version__
from ..testing import FaultMix, LocalServer

BACKENDS: Final[tuple[str, ...]] = ("asyncio", "trio")
POLICIES: Final[tuple[str, ...]] = ("default", "transient")
MAX_REQUESTS: Final[int] = 100_000
MAX_CONCURRENCY: Final[int] = 1_000
MAX_RETRIES: Final[int] = 100

DEMO_EPILOG: Final[str] = (
    "Exit status: 0 when every request submitted has its result (failures are part of the "
    "demo), 1 if one was lost, 2 bad usage, 130 after Ctrl-C. Ctrl-C cancels the requests in "
    "flight, then the summary is printed; a second Ctrl-C stops at once."
)
FETCH_EPILOG: Final[str] = (
    "Exit status: 0 when every URL got a response (an HTTP error such as 404 is a response), "
    "1 otherwise, 2 bad usage, 130 after Ctrl-C. Ctrl-C cancels the requests in flight (their "
    "lines say 'cancelled'), then the partial summary goes to stderr; a second Ctrl-C stops "
    "at once."
)


def integer(low: int, high: int) -> Callable[[str], int]:
    """An argparse ``type`` for an integer from ``low`` to ``high``."""

    def check(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"must be an integer from {low} to {high}, got {value}"
            )
        return value

    return check


def number(low: float, high: float = math.inf, *, low_open: bool = False) -> Callable[[str], float]:
    """An argparse ``type`` for a finite number in ``[low, high]`` (``(low, high]``)."""

    def check(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        too_low = value <= low if low_open else value < low
        if not math.isfinite(value) or too_low or value > high:
            left = "above" if low_open else "from"
            right = "" if math.isinf(high) else f" to {high:g}"
            raise argparse.ArgumentTypeError(f"must be a number {left} {low:g}{right}, got {text}")
        return value

    return check


def loopback_host(text: str) -> str:
    """An argparse ``type`` for the test server's host, by ``LocalServer``'s own rule."""
    try:
        LocalServer(text)  # only checks its arguments: nothing is bound before ``async with``
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a loopback address (127.0.0.1, ::1 or localhost), got {text!r}: the test "
            "server never listens beyond this machine"
        ) from None
    return text


def _add_backend(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend", choices=BACKENDS, default="asyncio", help="event loop (default: asyncio)"
    )


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``serve`` (also those of ``python -m typed_async_client.testing``)."""
    parser.add_argument(
        "--host",
        type=loopback_host,
        default="127.0.0.1",
        help="loopback address: 127.0.0.1, ::1 or localhost (default: 127.0.0.1)",
    )
    parser.add_argument(
        "--port", type=integer(0, 65535), default=8000, help="port, 0 picks one (default: 8000)"
    )
    parser.add_argument(
        "--duration",
        type=number(0, low_open=True),
        default=None,
        metavar="SECONDS",
        help="stop after this many seconds (default: run until Ctrl-C)",
    )
    _add_backend(parser)
    mix = parser.add_argument_group(
        "fault mix",
        "Faults for the /mix and /mix/... routes, each a probability from 0 to 1, drawn in "
        "the order requests arrive from random.Random(--seed). The rest get a normal answer.",
    )
    mix.add_argument("--seed", type=int, default=0, help="seed of the fault draws (default: 0)")
    for kind in FaultMix.KINDS:
        mix.add_argument(
            "--" + kind.replace("_", "-"),
            type=number(0, 1),
            default=0.0,
            metavar="P",
            help=_FAULT_HELP[kind],
        )
    mix.add_argument(
        "--delay-seconds",
        type=number(0, 60),
        default=0.05,
        metavar="SECONDS",
        help="the wait of the delay fault (default: 0.05)",
    )


_FAULT_HELP: Final[dict[str, str]] = {
    "reset": "abort the connection with a RST, no response",
    "drop": "close the connection cleanly, no response",
    "truncate": "send half of the body announced",
    "status_500": "answer 500",
    "status_503": "answer 503",
    "status_429": "answer 429",
    "delay": "answer after --delay-seconds",
    "close": "answer, then close the connection",
}


def fault_mix(parser: argparse.ArgumentParser, args: argparse.Namespace) -> FaultMix | None:
    """
    The ``FaultMix`` that ``serve``'s options describe, ``None`` when every rate is 0; rates
    that add up to more than 1 are a usage error.
    """
    rates = {kind: getattr(args, kind) for kind in FaultMix.KINDS}
    if not any(rates.values()):
        return None
    total = math.fsum(rates.values())
    if total > 1 + 1e-9:
        given = " + ".join(f"--{k.replace('_', '-')} {v:g}" for k, v in rates.items() if v)
        parser.error(f"the fault rates add up to {total:g}, more than 1: {given}")
    try:
        return FaultMix(seed=args.seed, delay_seconds=args.delay_seconds, **rates)
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))


def build_serve_parser(prog: str) -> argparse.ArgumentParser:
    """The parser of ``python -m typed_async_client.testing``: ``serve`` on its own."""
    parser = argparse.ArgumentParser(prog=prog, description=SERVE_DESCRIPTION, epilog=SERVE_EPILOG)
    add_serve_arguments(parser)
    return parser


SERVE_DESCRIPTION: Final[str] = (
    "Run the fault-injecting test server (typed_async_client.testing.LocalServer) on loopback. "
    "It prints 'serving on URL' once ready (with --port 0, read the port there)."
)
SERVE_EPILOG: Final[str] = (
    "Ctrl-C (SIGINT) or SIGTERM stops it cleanly: it prints 'stopped' and exits 0, as it does "
    "after --duration. Exit status 1: the port could not be bound; 2: bad usage."
)


def build_parser(
    prog: str = "typed-async-client",
) -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The parser of the ``typed-async-client`` command, and those of its commands by name."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="A resilient async HTTP client (httpx + anyio), from the terminal: a live "
        "demo against a local fault-injecting server, a fetcher for many URLs, and the test "
        "server itself.",
        epilog="Run '%(prog)s COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser(
        "demo",
        help="run a batch against a local faulty server, with a live dashboard",
        description="Start a fault-injecting server on loopback (no network needed), send it a "
        "batch of requests through AsyncResilientClient, and show a live dashboard, then a "
        "summary. Faults, split evenly: refused connections (a port that refuses), 503 with "
        "Retry-After: 1 (then 200), slow answers (0.25 s) and connection resets.",
        epilog=DEMO_EPILOG,
    )
    _add_backend(demo)
    demo.add_argument(
        "--requests",
        type=integer(1, MAX_REQUESTS),
        default=1_000,
        help=f"requests to send, 1 to {MAX_REQUESTS:,} (default: 1000)",
    )
    demo.add_argument(
        "--concurrency",
        type=integer(1, MAX_CONCURRENCY),
        default=50,
        help=f"requests in flight at most, 1 to {MAX_CONCURRENCY:,} (default: 50)",
    )
    demo.add_argument(
        "--fault-rate",
        type=number(0, 1),
        default=0.1,
        metavar="F",
        help="share of requests that meet a fault, 0 to 1 (default: 0.1)",
    )
    demo.add_argument("--seed", type=int, default=1, help="seed of the fault plan (default: 1)")
    demo.add_argument(
        "--policy",
        choices=POLICIES,
        default="transient",
        help="retry policy: 'default' retries connection errors only, 'transient' also 429/"
        "502/503/504 and resets, honouring Retry-After (default: transient)",
    )
    demo.add_argument(
        "--time-limit",
        type=number(0, low_open=True),
        default=120.0,
        metavar="SECONDS",
        help="cancel what is left after this long (default: 120)",
    )
    demo.add_argument(
        "--json", action="store_true", help="print one JSON object on stdout, no dashboard"
    )

    fetch = commands.add_parser(
        "fetch",
        help="GET many URLs with retries; one JSON line per result",
        description="GET each URL through AsyncResilientClient and print one JSON line per "
        "result on stdout, as results arrive: url, status (HTTP status or null), attempts, "
        "seconds, error (null or 'Type: message'). A progress bar goes to stderr when stderr "
        "is a terminal; a summary line always does.",
        epilog=FETCH_EPILOG,
    )
    fetch.add_argument("urls", nargs="*", metavar="URL", help="URLs to GET")
    fetch.add_argument(
        "--input", metavar="FILE", help="read URLs from FILE, one a line ('-': stdin; # comments)"
    )
    fetch.add_argument(
        "--retries", type=integer(0, MAX_RETRIES), default=3, help="retries per URL (default: 3)"
    )
    fetch.add_argument(
        "--backoff",
        type=number(0),
        default=0.5,
        metavar="SECONDS",
        help="first backoff ceiling, doubled each retry, full jitter (default: 0.5)",
    )
    fetch.add_argument(
        "--concurrency",
        type=integer(1, MAX_CONCURRENCY),
        default=10,
        help="URLs in flight at most (default: 10)",
    )
    fetch.add_argument(
        "--rate",
        type=number(0, low_open=True),
        default=None,
        metavar="PER_SECOND",
        help="attempts started per second at most, retries included (default: no limit)",
    )
    fetch.add_argument(
        "--timeout",
        type=number(0, low_open=True),
        default=10.0,
        metavar="SECONDS",
        help="timeout of each attempt's connect, read and write (default: 10)",
    )
    fetch.add_argument(
        "--deadline",
        type=number(0, low_open=True),
        default=None,
        metavar="SECONDS",
        help="total time per URL, every attempt and backoff sleep included (default: none)",
    )
    fetch.add_argument(
        "--policy",
        choices=POLICIES,
        default="default",
        help="'default' retries connection errors only; 'transient' also 429/502/503/504 "
        "and resets of idempotent requests (default: default)",
    )
    _add_backend(fetch)

    serve = commands.add_parser(
        "serve",
        help="run the fault-injecting test server",
        description=SERVE_DESCRIPTION,
        epilog=SERVE_EPILOG,
    )
    add_serve_arguments(serve)
    return parser, {"demo": demo, "fetch": fetch, "serve": serve}
