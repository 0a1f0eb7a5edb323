"""
``FaultMix``: the configuration of the ``/mix`` routes, checked when it is built.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import ClassVar, Final

from .._checks import check_number

#: The longest ``delay_seconds`` of a mix, and the longest ``/delay/{seconds}`` wait.
MAX_DELAY: Final[float] = 60.0


@dataclass(frozen=True)
class FaultMix:
    """
    A seeded random mix of faults for the ``/mix`` routes of a :class:`LocalServer`.

    Each field but ``seed`` and ``delay_seconds`` is the probability that a request gets that
    fault; the rest of the time (``1 - total``) it gets a normal answer, counted as ``"ok"``.
    The server draws one fault per request from ``random.Random(seed)``, in the order the
    requests reach it: for a given seed, the ``n``-th request to a ``/mix`` route always gets
    the ``n``-th fault of :meth:`draws`, whatever its path, method or connection. Only the
    order in which concurrent requests arrive can vary, not the sequence.

    Attributes:
        seed: the seed of the server's random generator.
        reset: abort the connection with a RST, no response byte (``/reset``).
        drop: close the connection with a FIN, no response byte (``/drop``).
        truncate: announce the echo's length plus 100 bytes, send half of the echo, then close
            (an incomplete body).
        status_500: answer ``500 Internal Server Error``.
        status_503: answer ``503 Service Unavailable``.
        status_429: answer ``429 Too Many Requests`` (no ``Retry-After``).
        delay: wait ``delay_seconds``, then answer normally.
        close: answer normally, then close the connection (``Connection: close``).
        delay_seconds: the wait of the ``delay`` fault, in seconds (at most 60).

    Raises:
        ValueError: a probability outside ``[0, 1]`` or NaN, probabilities adding up to more
            than 1, or a negative, NaN or too long ``delay_seconds``.
        TypeError: a field of the wrong type.
    """

    #: The fault kinds, in the order the draw walks them; ``"ok"`` is a normal answer.
    KINDS: ClassVar[tuple[str, ...]] = (
        "reset",
        "drop",
        "truncate",
        "status_500",
        "status_503",
        "status_429",
        "delay",
        "close",
    )

    seed: int = 0
    reset: float = 0.0
    drop: float = 0.0
    truncate: float = 0.0
    status_500: float = 0.0
    status_503: float = 0.0
    status_429: float = 0.0
    delay: float = 0.0
    close: float = 0.0
    delay_seconds: float = 0.05

    def __post_init__(self) -> None:
        check_number("seed", self.seed, integer=True)
        for kind in self.KINDS:
            check_number(kind, getattr(self, kind), minimum=0, maximum=1)
        if self.total > 1.0 + 1e-9:
            raise ValueError(f"the probabilities add up to {self.total!r}, more than 1")
        check_number("delay_seconds", self.delay_seconds, minimum=0, maximum=MAX_DELAY)

    @property
    def total(self) -> float:
        """The probability that a request gets some fault (``"close"`` and ``"delay"`` count)."""
        return math.fsum(getattr(self, kind) for kind in self.KINDS)

    def draw(self, rng: random.Random) -> str:
        """The next fault kind (one of :attr:`KINDS`, or ``"ok"``), using one ``rng.random()``."""
        point = rng.random()
        threshold = 0.0
        for kind in self.KINDS:
            probability: float = getattr(self, kind)
            threshold += probability
            if probability and point < threshold:
                return kind
        return "ok"

    def draws(self, count: int) -> list[str]:
        """The faults the first ``count`` requests to a ``/mix`` route get, in order."""
        check_number("count", count, integer=True, minimum=0)
        rng = random.Random(self.seed)
        return [self.draw(rng) for _ in range(count)]
