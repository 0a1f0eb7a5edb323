"""
Small helpers for what the commands print: whether the optional terminal UI (rich, the ``cli``
extra) is there and what to say if not, whether a stream is a terminal, plurals.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Final, TextIO

INSTALL_HINT: Final[str] = "install typed-async-client[cli]: pip install 'typed-async-client[cli]'"


def have_rich() -> bool:
    """Whether rich can be imported (without importing it)."""
    try:
        return importlib.util.find_spec("rich") is not None
    except (ImportError, ValueError):  # a broken or stubbed-out installation
        return False


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is an interactive terminal."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # replaced by an object without isatty, or closed
        return False


def needs_rich(what: str) -> str:
    """The message for a feature that needs rich."""
    return f"{what} needs rich, which is not installed; {INSTALL_HINT}"


def warn(message: str) -> None:
    """One line on stderr."""
    print(message, file=sys.stderr, flush=True)


def plural(count: int, word: str) -> str:
    """``"1 error"``, ``"2 errors"``."""
    return f"{count} {word}" + ("" if count == 1 else "s")
