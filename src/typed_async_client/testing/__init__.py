"""
Tools for testing code that uses typed-async-client: a loopback HTTP server with scriptable
faults that runs in your test's own event loop on asyncio or trio, a seeded random mix of
those faults (``FaultMix``), a port that refuses connections, and ``instant_retries()`` to make
retrying code fast to test.
"""

from __future__ import annotations

from ._faults import FaultMix as FaultMix
from ._mode import instant_retries as instant_retries
from ._server import LocalServer as LocalServer
from ._server import RecordedRequest as RecordedRequest
from ._server import refusing_url as refusing_url

__all__ = ["FaultMix", "LocalServer", "RecordedRequest", "instant_retries", "refusing_url"]
