"""
``instant_retries()``: make retrying code fast to test, without touching global state.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .._checks import check_number
from .._retrying import TESTING_OVERRIDES, TestingOverrides


@contextmanager
def instant_retries(*, max_attempts: int | None = None) -> Iterator[None]:
    """
    Within the block, requests submitted (to any client) retry without sleeping.

    The scope is the block's context, not the process: requests submitted outside it, or by
    other tasks that did not inherit it, keep their real backoff. Nested blocks override the
    outer one. Retry-After waits from the server are skipped too; deadlines still apply.

    Args:
        max_attempts: also cap each request at this many attempts (``None``: the context's
            ``max_retries`` decides).

    Raises:
        TypeError: ``max_attempts`` is not an int (or ``None``).
        ValueError: ``max_attempts`` is below 1.
    """
    check_number("max_attempts", max_attempts, integer=True, minimum=1, allow_none=True)
    token = TESTING_OVERRIDES.set(TestingOverrides(max_attempts=max_attempts))
    try:
        yield
    finally:
        TESTING_OVERRIDES.reset(token)
