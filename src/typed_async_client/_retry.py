"""
Which failures are retried.

By default a request is retried only when its attempt failed to connect: ``httpx.ConnectError``
or ``httpcore.ConnectError``. The request never left the machine, so sending it again is safe
whatever its method. Everything else (HTTP statuses, read errors, timeouts) ends the request.

``httpx.ConnectError`` also covers TLS verification failures. A certificate that fails
verification will fail again, so a ``ConnectError`` with an ``ssl.SSLCertVerificationError`` in
its cause chain is permanent.

Only ``Exception`` subclasses are ever considered: cancellation, ``KeyboardInterrupt`` and
``SystemExit`` are never retried.
"""

from __future__ import annotations

import ssl
from typing import Final

import httpcore
import httpx

RETRYABLE_ERRORS: Final[tuple[type[Exception], ...]] = (httpx.ConnectError, httpcore.ConnectError)

#: How far down ``__cause__`` / ``__context__`` to look for a TLS verification failure.
_MAX_CHAIN: Final[int] = 32


def is_tls_verification_failure(exc: BaseException) -> bool:
    """Whether ``exc`` or one of its causes is an ``ssl.SSLCertVerificationError``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < _MAX_CHAIN:
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def is_retryable(exc: BaseException) -> bool:
    """
    Whether a failed attempt may be retried under the default policy.

    True for connection errors, except TLS verification failures.
    """
    return isinstance(exc, RETRYABLE_ERRORS) and not is_tls_verification_failure(exc)
