"""
``serve``: the fault-injecting test server as a process, until Ctrl-C, SIGTERM or
``--duration``.

Shared with ``python -m typed_async_client.testing``. It needs neither rich nor a terminal: it
prints ``serving on URL`` (flushed, the line scripts read), the fault mix if there is one, and
``stopped (...)`` on the way out. Stopping by a signal is the normal way to end a server, so it
exits 0, as it does after ``--duration``.
"""

from __future__ import annotations

import argparse
import functools
import math
import signal
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack

import anyio

from ..testing import FaultMix, LocalServer
from ._args import build_serve_parser, fault_mix
from ._console import plural
from ._interrupt import handle_interrupts
from ._runner import run_command


def describe_mix(mix: FaultMix) -> str:
    """One line: the non-zero rates of ``mix`` and its seed."""
    rates = ", ".join(
        f"{kind} {getattr(mix, kind):g}" for kind in FaultMix.KINDS if getattr(mix, kind)
    )
    return f"{rates} (seed {mix.seed}, delay {mix.delay_seconds:g} s)"


async def serve(host: str, port: int, duration: float | None, mix: FaultMix | None) -> int:
    """Serve until a signal or ``duration``; return the exit status."""
    server = LocalServer(host, port, fault_mix=mix)
    async with AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(server)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            print(f"error: cannot listen on {host}:{port}: {reason}", file=sys.stderr)
            return 1
        stopping = anyio.Event()

        async def stop() -> None:
            stopping.set()

        # Signals are handled before the line that tells a script it may send them.
        async with handle_interrupts(stop, signals=(signal.SIGINT, signal.SIGTERM)):
            print(f"serving on {server.url}", flush=True)
            if mix is not None:
                print(f"fault mix on {server.url_for('/mix')}: {describe_mix(mix)}", flush=True)
            with anyio.move_on_after(math.inf if duration is None else duration):
                await stopping.wait()
        hits, connections = sum(server.hits.values()), server.connections
    served = f"{plural(hits, 'request')} on {plural(connections, 'connection')}"
    print(f"stopped ({served})", flush=True)
    return 0


def run_serve(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Run ``serve`` with parsed options (``parser`` reports a bad fault mix)."""
    main = functools.partial(serve, args.host, args.port, args.duration, fault_mix(parser, args))
    return run_command(main, backend=args.backend, interrupted=_stopped)


def _stopped() -> int:
    # Ctrl-C before the signal handler was in place, or after it was removed.
    print("stopped", flush=True)
    return 0


def main(argv: Sequence[str] | None = None, *, prog: str) -> int:
    """``serve`` as a program of its own (``python -m typed_async_client.testing``)."""
    parser = build_serve_parser(prog)
    return run_serve(parser, parser.parse_args(argv))
