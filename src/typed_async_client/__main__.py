"""
``python -m typed_async_client``: the ``typed-async-client`` command.
"""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main(prog="python -m typed_async_client"))
