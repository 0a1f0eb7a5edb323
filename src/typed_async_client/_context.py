"""
``RequestContext``: the immutable description of one request and of its current attempt.

A request starts with a context and gets a new one per retry (``next_attempt()``), so an event
always holds a faithful snapshot of the attempt it reports. Inside the request's own task the
context in effect is readable with :func:`current_context`, from httpx event hooks and custom
transports alike, on asyncio and on trio.
"""

from __future__ import annotations

import dataclasses
import os
import random
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

from ._backoff import backoff_delay
from ._checks import check_number
from ._constants import (
    DEFAULT_BACKOFF_FACTOR,
    DEFAULT_BASE_DELAY,
    DEFAULT_MAX_DELAY,
    DEFAULT_MAX_RETRIES,
)

_C = TypeVar("_C", bound="RequestContext")

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _new_request_id() -> str:
    """128 random bits in hex, like ``uuid.uuid4().hex`` without the UUID object (4x cheaper)."""
    return os.urandom(16).hex()


@dataclass(frozen=True, slots=True)
class RequestContext:
    """
    The settings and the attempt counter of one request.

    Every field has a default, so subclasses may add fields of their own (with defaults) and
    methods, as ``@dataclass(frozen=True) class ApiRequestContext(RequestContext)`` does.

    Attributes:
        max_retries: retries allowed after the first attempt (``0`` disables retrying).
        current_attempt: zero-based index of the attempt this context describes: ``0`` for the
            first try, ``n`` for the ``n``-th retry.
        base_delay: ceiling of the first backoff sleep, in seconds.
        backoff_factor: growth of the ceiling between retries (``>= 1``).
        max_delay: cap of every backoff sleep, in seconds.
        request_id: the key of the request's result; a random hex id when not given.
        metadata: free-form, read-only data carried to events and results.
        started_at: ``time.monotonic()`` when the request started; the client sets it when the
            request is submitted.
        total_timeout: seconds the whole request may take, every attempt and backoff sleep
            included; ``None`` for no limit of its own.
        inherit_deadline: whether the request also ends at the effective deadline of the code
            that submits it (``anyio.fail_after``, ``trio.move_on_after``...).
        idempotent: ``True`` marks the request as safe to send twice (like an
            ``Idempotency-Key`` header does), ``False`` forbids resending it once it may have
            reached the server; ``None`` decides by method.

    Raises:
        ValueError: a count or a duration is negative, NaN or infinite, ``backoff_factor < 1``,
            ``base_delay > max_delay`` or ``request_id`` is empty (the message names the field).
        TypeError: a field has the wrong type.
    """

    max_retries: int = DEFAULT_MAX_RETRIES
    current_attempt: int = 0
    base_delay: float = DEFAULT_BASE_DELAY
    backoff_factor: float = DEFAULT_BACKOFF_FACTOR
    max_delay: float = DEFAULT_MAX_DELAY
    request_id: str = field(default_factory=_new_request_id)
    metadata: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, hash=False)
    started_at: float = field(default_factory=time.monotonic, compare=False)
    total_timeout: float | None = None
    inherit_deadline: bool = True
    idempotent: bool | None = None

    def __post_init__(self) -> None:
        check_number("max_retries", self.max_retries, integer=True, minimum=0)
        check_number("current_attempt", self.current_attempt, integer=True, minimum=0)
        check_number("base_delay", self.base_delay, minimum=0)
        check_number("backoff_factor", self.backoff_factor, minimum=1)
        check_number("max_delay", self.max_delay, minimum=0)
        if self.base_delay > self.max_delay:
            raise ValueError(
                f"base_delay must be <= max_delay, got base_delay={self.base_delay} "
                f"and max_delay={self.max_delay}"
            )
        check_number("total_timeout", self.total_timeout, minimum=0, above=True, allow_none=True)
        if not isinstance(self.inherit_deadline, bool):
            raise TypeError(
                f"inherit_deadline must be a bool, got {type(self.inherit_deadline).__name__}"
            )
        if self.idempotent is not None and not isinstance(self.idempotent, bool):
            raise TypeError(
                f"idempotent must be a bool or None, got {type(self.idempotent).__name__}"
            )
        if not isinstance(self.request_id, str):
            raise TypeError(f"request_id must be a str, got {type(self.request_id).__name__}")
        if not self.request_id:
            raise ValueError("request_id must be a non-empty string")
        if not isinstance(self.metadata, Mapping):
            raise TypeError(f"metadata must be a mapping, got {type(self.metadata).__name__}")
        if self.metadata is not _EMPTY:
            # Copy, so that later changes to the caller's mapping (even one seen through a
            # proxy) do not leak into the snapshot.
            object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    @property
    def attempt_number(self) -> int:
        """The one-based number of this attempt (``current_attempt + 1``)."""
        return self.current_attempt + 1

    @property
    def remaining_retries(self) -> int:
        """Retries still allowed after this attempt, never negative."""
        return max(0, self.max_retries - self.current_attempt)

    @property
    def can_retry(self) -> bool:
        """Whether another attempt is allowed after this one."""
        return self.current_attempt < self.max_retries

    @property
    def elapsed_time(self) -> float:
        """Seconds since the request started."""
        return time.monotonic() - self.started_at

    def clone(self: _C, **changes: Any) -> _C:
        """
        Return a copy with ``changes`` applied, validated like a new context.

        Subclasses keep their type and their own fields.
        """
        return dataclasses.replace(self, **changes)

    def _renewed(self: _C, started_at: float, request_id: str | None = None) -> _C:
        """
        A copy for a new submission: ``started_at`` (and ``request_id``) changed.

        Like ``clone()``, without validating again the fields this context already validated:
        the hot path of every request. Subclasses go through ``clone()`` (their own
        ``__post_init__`` may derive fields from these).
        """
        if type(self) is not RequestContext:
            if request_id is None:
                return self.clone(started_at=started_at)
            return self.clone(started_at=started_at, request_id=request_id)
        new = object.__new__(RequestContext)
        put = object.__setattr__
        put(new, "max_retries", self.max_retries)
        put(new, "current_attempt", self.current_attempt)
        put(new, "base_delay", self.base_delay)
        put(new, "backoff_factor", self.backoff_factor)
        put(new, "max_delay", self.max_delay)
        put(new, "request_id", self.request_id if request_id is None else request_id)
        put(new, "metadata", self.metadata)
        put(new, "started_at", started_at)
        put(new, "total_timeout", self.total_timeout)
        put(new, "inherit_deadline", self.inherit_deadline)
        put(new, "idempotent", self.idempotent)
        return new  # type: ignore[return-value]

    def next_attempt(self: _C) -> _C:
        """
        Return the context of the next attempt: the same request, ``current_attempt + 1``.

        Raises:
            ValueError: no retry is left (``current_attempt == max_retries``).
        """
        if not self.can_retry:
            raise ValueError(
                f"request {self.request_id!r} has no retry left "
                f"(max_retries={self.max_retries}, current_attempt={self.current_attempt})"
            )
        return dataclasses.replace(self, current_attempt=self.current_attempt + 1)

    def backoff_delay(self, rand: Callable[[], float] = random.random) -> float:
        """
        Return the full-jitter sleep before the next attempt, in seconds.

        ``uniform(0, min(max_delay, base_delay * backoff_factor ** current_attempt))``.
        """
        return backoff_delay(
            self.current_attempt + 1,
            self.base_delay,
            self.backoff_factor,
            self.max_delay,
            rand=rand,
        )


_current: ContextVar[RequestContext | None] = ContextVar("typed_async_client_context", default=None)


def current_context() -> RequestContext | None:
    """
    Return the context of the request running in the current task, or ``None`` outside one.

    It is set by the client inside each request's own task, so httpx event hooks and custom
    transports called for that request see the context of the attempt in progress.
    """
    return _current.get()
