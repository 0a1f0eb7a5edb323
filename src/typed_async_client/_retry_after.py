"""
Parsing the server's requested wait: ``Retry-After`` (RFC 9110 section 10.2.3) and the
rate-limit reset headers (``RateLimit-Reset``, ``X-RateLimit-Reset``).

Pure functions, no I/O. They never raise: a negative, fractional-looking-but-garbage, NaN or
malformed value is ignored (``None``), so the computed backoff applies instead.
"""

from __future__ import annotations

import datetime
import email.utils
import math
import time
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import httpx

#: ``X-RateLimit-Reset`` values above this are Unix timestamps, not delays (GitHub's style).
_EPOCH_THRESHOLD: Final[float] = 1_000_000_000.0
#: Longer header values are not even looked at.
_MAX_LENGTH: Final[int] = 64


def _delta_seconds(text: str) -> float | None:
    """A non-negative integer number of seconds (RFC 9110's delay-seconds), else ``None``."""
    if not text.isdigit() or not text.isascii():
        return None
    return float(int(text))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """
    Return the delay a ``Retry-After`` value asks for, in seconds, or ``None`` if unusable.

    Args:
        value: the header value: delay-seconds (``"120"``) or an HTTP-date in any of the three
            RFC 9110 formats (IMF-fixdate, RFC 850, asctime).
        now: the current Unix time (``time.time()`` when not given).

    Returns:
        The delay, ``0.0`` for a date in the past, ``None`` for a negative, fractional,
        non-finite or malformed value.
    """
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > _MAX_LENGTH:
        return None
    delta = _delta_seconds(text)
    if delta is not None:
        return delta
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        # asctime dates (and "-0000") carry no zone; HTTP dates are always GMT (RFC 9110).
        when = when.replace(tzinfo=datetime.timezone.utc)
    try:
        target = when.timestamp()
    except (OverflowError, OSError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, target - current)


def parse_rate_limit_reset(value: str | None, now: float | None = None) -> float | None:
    """
    Return the delay a ``RateLimit-Reset`` / ``X-RateLimit-Reset`` value asks for, or ``None``.

    Delay-seconds; values past 10^9 are read as a Unix timestamp. Fractions are accepted here
    (some servers send them); negative or malformed values are ignored.
    """
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > _MAX_LENGTH:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    if not math.isfinite(number) or number < 0:
        return None
    if number >= _EPOCH_THRESHOLD:
        current = time.time() if now is None else now
        return max(0.0, number - current)
    return number


def requested_delay(response: httpx.Response, now: float | None = None) -> float | None:
    """The wait a response asks for: ``Retry-After`` first, then the rate-limit reset headers."""
    headers = response.headers
    delay = parse_retry_after(headers.get("retry-after"), now)
    if delay is not None:
        return delay
    for name in ("ratelimit-reset", "x-ratelimit-reset"):
        delay = parse_rate_limit_reset(headers.get(name), now)
        if delay is not None:
            return delay
    return None
