"""
``CircuitBreaker``: stop calling an origin that keeps failing, then probe it back.

One circuit per origin (scheme, host, port), a small state machine::

              N consecutive failures, or failure rate over the window
    CLOSED ──────────────────────────────────────────────────────────> OPEN
      ^                                                                  │
      │ a probe succeeds                          recovery_time passed   │
      │                                                                  v
      └───────────────────────────── HALF_OPEN <─────────────────────────┘
                                        │ a probe fails: OPEN again
                                        v

While OPEN, attempts fail fast with ``CircuitOpenError`` without touching the network. In
HALF_OPEN at most ``half_open_probes`` attempts are let through at a time; the others fail
fast. An attempt fails when it raises or gets a 5xx response.
"""

from __future__ import annotations

import enum
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ._checks import check_number

Origin = tuple[str, str, int]


class CircuitState(str, enum.Enum):
    """The state of one origin's circuit."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"

    def __str__(self) -> str:
        return self.value


@dataclass(slots=True)
class _Circuit:
    window: int
    state: CircuitState = CircuitState.CLOSED
    consecutive_failures: int = 0
    outcomes: deque[bool] = field(default_factory=deque)
    opened_at: float = -math.inf
    probes: int = 0

    def __post_init__(self) -> None:
        self.outcomes = deque(maxlen=self.window)


class CircuitBreaker:
    """
    Per-origin circuits shared by every request of a client.

    Args:
        failure_threshold: consecutive failures that open the circuit.
        failure_rate: also open when the share of failures among the last ``window`` attempts
            reaches this (``None`` disables it); only once ``window`` attempts were seen.
        window: attempts remembered for ``failure_rate``.
        recovery_time: seconds the circuit stays open before letting a probe through.
        half_open_probes: attempts let through at a time while half-open.
        clock: a monotonic clock in seconds (for tests).

    Raises:
        ValueError: a value out of range (the message names it).
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        failure_rate: float | None = None,
        window: int = 20,
        recovery_time: float = 30.0,
        half_open_probes: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_number("failure_threshold", failure_threshold, integer=True, minimum=1)
        check_number("window", window, integer=True, minimum=1)
        check_number("recovery_time", recovery_time, minimum=0, above=True)
        check_number("half_open_probes", half_open_probes, integer=True, minimum=1)
        check_number(
            "failure_rate", failure_rate, minimum=0, above=True, maximum=1, allow_none=True
        )
        self.failure_threshold = failure_threshold
        self.failure_rate = failure_rate
        self.window = window
        self.recovery_time = float(recovery_time)
        self.half_open_probes = half_open_probes
        self._clock = clock
        self._circuits: dict[Origin, _Circuit] = {}
        self.rejected = 0

    def state(self, origin: Origin) -> CircuitState:
        """The state of an origin's circuit (``CLOSED`` if never seen)."""
        circuit = self._circuits.get(origin)
        return CircuitState.CLOSED if circuit is None else circuit.state

    def states(self) -> dict[Origin, CircuitState]:
        """Every known origin's state."""
        return {origin: circuit.state for origin, circuit in self._circuits.items()}

    def _circuit(self, origin: Origin) -> _Circuit:
        circuit = self._circuits.get(origin)
        if circuit is None:
            circuit = self._circuits[origin] = _Circuit(window=self.window)
        return circuit

    def acquire(self, origin: Origin) -> tuple[bool, CircuitState | None, float]:
        """
        Ask to send an attempt to ``origin``.

        Returns:
            ``(allowed, new_state, retry_in)``: whether the attempt may go, the state the
            circuit moved to (``None`` if unchanged), and when refused, the seconds until a
            probe may go.
        """
        circuit = self._circuit(origin)
        if circuit.state is CircuitState.CLOSED:
            return True, None, 0.0
        changed: CircuitState | None = None
        if circuit.state is CircuitState.OPEN:
            wait = circuit.opened_at + self.recovery_time - self._clock()
            if wait > 0:
                self.rejected += 1
                return False, None, wait
            circuit.state = changed = CircuitState.HALF_OPEN
            circuit.probes = 0
        if circuit.probes >= self.half_open_probes:
            self.rejected += 1
            return False, changed, 0.0
        circuit.probes += 1
        return True, changed, 0.0

    def abandon(self, origin: Origin) -> None:
        """A probe ended without an outcome (it was cancelled): free its slot."""
        circuit = self._circuit(origin)
        if circuit.state is CircuitState.HALF_OPEN:
            circuit.probes = max(0, circuit.probes - 1)

    def record(self, origin: Origin, *, failed: bool, probe: bool) -> CircuitState | None:
        """Record an attempt's outcome; return the state the circuit moved to, if it moved."""
        circuit = self._circuit(origin)
        if circuit.state is CircuitState.HALF_OPEN and probe:
            circuit.probes = max(0, circuit.probes - 1)
            if failed:
                return self._open(circuit)
            circuit.state = CircuitState.CLOSED
            circuit.consecutive_failures = 0
            circuit.outcomes.clear()
            return CircuitState.CLOSED
        if circuit.state is not CircuitState.CLOSED:
            return None
        circuit.outcomes.append(failed)
        circuit.consecutive_failures = circuit.consecutive_failures + 1 if failed else 0
        if circuit.consecutive_failures >= self.failure_threshold:
            return self._open(circuit)
        if (
            self.failure_rate is not None
            and len(circuit.outcomes) == self.window
            and sum(circuit.outcomes) / self.window >= self.failure_rate
        ):
            return self._open(circuit)
        return None

    def _open(self, circuit: _Circuit) -> CircuitState:
        circuit.state = CircuitState.OPEN
        circuit.opened_at = self._clock()
        circuit.probes = 0
        circuit.consecutive_failures = 0
        circuit.outcomes.clear()
        return CircuitState.OPEN
