"""
Defaults of the client, in one place.

Every value here is a default: each can be overridden per client or per request.
"""

from __future__ import annotations

from typing import Final

import httpx

#: Retries after the first attempt (so at most ``DEFAULT_MAX_RETRIES + 1`` attempts).
DEFAULT_MAX_RETRIES: Final[int] = 3
#: Delay before the first retry, in seconds, before jitter.
DEFAULT_BASE_DELAY: Final[float] = 0.5
#: Growth of the delay between consecutive retries.
DEFAULT_BACKOFF_FACTOR: Final[float] = 2.0
#: No backoff sleep is longer than this, in seconds.
DEFAULT_MAX_DELAY: Final[float] = 30.0

#: Capacity of the event stream between requests and the callback dispatcher.
DEFAULT_EVENT_QUEUE_SIZE: Final[int] = 1_000
#: Seconds that closing a client gives the callbacks to take the events already queued.
DEFAULT_EVENT_DRAIN_TIMEOUT: Final[float] = 10.0
#: Finished results kept by a client; the oldest finished are evicted first. Each one holds its
#: response: 10,000 of them made the garbage collector's full passes cost about 35 us per request
#: (benchmarks/README.md), against about 4 us for 1,000.
DEFAULT_MAX_RESULTS: Final[int] = 1_000
#: Bytes of response bodies kept in those results (64 MiB); past it the oldest results lose
#: their body and keep the rest. 64 KiB per result at the default count: ordinary API responses
#: never reach it, while large downloads nobody fetched cannot pin more than 64 MiB.
DEFAULT_MAX_RESULT_BYTES: Final[int] = 64 * 1024 * 1024

#: httpx's own defaults, restated so the client can size its attempt limiter.
DEFAULT_TIMEOUT: Final[httpx.Timeout] = httpx.Timeout(5.0)
DEFAULT_LIMITS: Final[httpx.Limits] = httpx.Limits(
    max_connections=100, max_keepalive_connections=20
)
DEFAULT_MAX_REDIRECTS: Final[int] = 20

#: Timeout of the one-shot helper ``simple_async_request``, in seconds.
DEFAULT_SIMPLE_TIMEOUT: Final[float] = 30.0

#: Name of the library's logger.
LOGGER_NAME: Final[str] = "typed_async_client"

#: Finished requests whose total time feeds the latency percentiles of ``stats()``.
LATENCY_WINDOW: Final[int] = 1_024
#: Buffer of an event subscription (``client.events()``).
DEFAULT_SUBSCRIBER_BUFFER: Final[int] = 1_000
