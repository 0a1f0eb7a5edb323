"""
The ``typed-async-client`` command: ``demo``, ``fetch`` and ``serve``.

Run it as ``typed-async-client COMMAND`` or ``python -m typed_async_client COMMAND``. The
terminal UI (the demo's live dashboard, fetch's progress bar) needs the optional extra
``typed-async-client[cli]`` (rich); without it the package still imports, ``serve``, ``fetch``
and ``demo --json`` still work, and the rest says what to install.
"""

from __future__ import annotations

from ._main import main as main

__all__ = ["main"]
