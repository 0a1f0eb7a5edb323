"""
Tools for testing code that uses typed-async-client: a loopback HTTP server that runs in your
test's own event loop on asyncio or trio, and a port that refuses connections.
"""

from __future__ import annotations

from ._server import LocalServer as LocalServer
from ._server import refusing_url as refusing_url

__all__ = ["LocalServer", "refusing_url"]
