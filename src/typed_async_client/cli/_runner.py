"""
Run a command's coroutine on the chosen backend, and turn a stray Ctrl-C into an exit status.

Commands handle SIGINT themselves while they run (``_interrupt``); a ``KeyboardInterrupt``
can still arrive outside that window (while the event loop starts or stops, or where signals
cannot be received). It is reported in one line, never as a traceback or an exception group.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Awaitable, Callable

import anyio

if sys.version_info < (3, 11):  # pragma: no cover
    # anyio's own dependency on Python 3.10.
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found, unused-ignore]

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a command ended by Ctrl-C
EXIT_USAGE = 2


def _interrupted() -> int:
    print("interrupted", file=sys.stderr, flush=True)
    return EXIT_INTERRUPTED


def run_command(
    main: Callable[[], Awaitable[int]],
    *,
    backend: str,
    interrupted: Callable[[], int] = _interrupted,
) -> int:
    """
    ``anyio.run(main, backend=backend)``, and its exit status.

    Args:
        main: the command's coroutine function; it returns the exit status.
        backend: ``"asyncio"`` or ``"trio"``.
        interrupted: reports a ``KeyboardInterrupt`` that reached this far, and returns the
            exit status (by default: ``interrupted`` on stderr, 130).
    """
    if backend == "trio" and importlib.util.find_spec("trio") is None:
        print(
            "error: --backend trio needs trio: pip install 'typed-async-client[trio]'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        return anyio.run(main, backend=backend)
    except KeyboardInterrupt:
        pass
    except BaseExceptionGroup as group:
        _, rest = group.split(KeyboardInterrupt)
        if rest is not None:
            raise
    return interrupted()
