"""
Run the test server as a process: ``python -m typed_async_client.testing --port 8000``.

The same code as ``typed-async-client serve`` (its options, checks and clean Ctrl-C); see
``--help``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..cli._serve import main


def cli(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: the command line), serve, and return the exit status."""
    return main(argv, prog="python -m typed_async_client.testing")


if __name__ == "__main__":
    raise SystemExit(cli())
