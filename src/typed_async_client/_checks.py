"""
Argument checks at the API boundary, with one message format.

Every number a user hands in passes through :func:`check_number`, so every bad one is refused
the same way, naming the argument and the rule::

    TypeError:  max_retries must be an int, got str
    ValueError: max_retries must be an int >= 0, got -1
    ValueError: jitter_max must be a finite number >= 0 or None, got nan

``bool`` is refused where a number is asked for, although it is an ``int`` subclass: ``True``
as a retry count is a bug at the call site, not a 1.
"""

from __future__ import annotations

import math
from typing import Literal, overload

__all__ = ["check_number"]


@overload
def check_number(
    name: str,
    value: object,
    *,
    integer: bool = ...,
    minimum: float | None = ...,
    above: bool = ...,
    maximum: float | None = ...,
    allow_none: Literal[False] = ...,
) -> float: ...


@overload
def check_number(
    name: str,
    value: object,
    *,
    integer: bool = ...,
    minimum: float | None = ...,
    above: bool = ...,
    maximum: float | None = ...,
    allow_none: bool,
) -> float | None: ...


def check_number(
    name: str,
    value: object,
    *,
    integer: bool = False,
    minimum: float | None = None,
    above: bool = False,
    maximum: float | None = None,
    allow_none: bool = False,
) -> float | None:
    """
    Check that ``value`` is a number within bounds, and return it.

    Args:
        name: the argument's name, as the caller wrote it.
        value: what the caller passed.
        integer: an ``int`` is required (otherwise an ``int`` or a finite ``float``).
        minimum: the smallest value allowed (``None``: no lower bound).
        above: the bound is strict (``> minimum`` rather than ``>= minimum``).
        maximum: the largest value allowed (``None``: no upper bound).
        allow_none: ``None`` is accepted, and returned as is.

    Returns:
        ``value`` unchanged (an ``int`` stays an ``int``), or ``None``.

    Raises:
        TypeError: ``value`` is not a number (or not an ``int`` where one is required).
        ValueError: ``value`` is NaN, infinite, or out of bounds.
    """
    if value is None and allow_none:
        return None
    kinds: tuple[type, ...] = (int,) if integer else (int, float)
    or_none = " or None" if allow_none else ""
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "an int" if integer else "a number"
        raise TypeError(f"{name} must be {kind}{or_none}, got {type(value).__name__}")
    number: float = value  # type: ignore[assignment]  # narrowed by the isinstance above
    too_low = minimum is not None and (number <= minimum if above else number < minimum)
    too_high = maximum is not None and number > maximum
    if not math.isfinite(number) or too_low or too_high:
        rule = "an int" if integer else "a finite number"
        if minimum is not None:
            rule += f" {'>' if above else '>='} {_show(minimum)}"
        if maximum is not None:
            rule += f"{' and' if minimum is not None else ''} <= {_show(maximum)}"
        raise ValueError(f"{name} must be {rule}{or_none}, got {value!r}")
    return number


def _show(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)
