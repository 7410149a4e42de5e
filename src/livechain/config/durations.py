"""Durations in config: ``250ms``, ``5s``, ``10m``, ``1h``, ``1d`` or a plain number of seconds.

``parse_duration`` turns any of those into ``float`` seconds; ``format_duration`` goes back to the shortest
exact string. Error messages never echo the value (config values may carry secrets).
"""

from __future__ import annotations

import math
import re

UNITS: dict[str, float] = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

_DURATION_RE = re.compile(
    r"^\s*([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)\s*(ms|s|m|h|d)?\s*$"
)

_EXPECTED = "expected a number of seconds or a number with a unit ms|s|m|h|d (e.g. 250ms, 5s, 10m, 1h)"


def parse_duration(value: object, *, allow_zero: bool = False) -> float:
    """Parse a duration to seconds.

    Accepts an ``int``/``float`` (seconds) or a string ``<number>[ms|s|m|h|d]`` (no unit = seconds).
    Raises ``ValueError`` for anything else, for negative, non-finite or (unless ``allow_zero``) zero values.
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid duration: {_EXPECTED}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match is None:
            raise ValueError(f"invalid duration: {_EXPECTED}")
        number, unit = match.groups()
        seconds = float(number) * UNITS[unit or "s"]
    else:
        raise ValueError(f"invalid duration: {_EXPECTED}")
    if not math.isfinite(seconds):
        raise ValueError("invalid duration: must be finite")
    if seconds < 0:
        raise ValueError("invalid duration: must not be negative")
    if seconds == 0 and not allow_zero:
        raise ValueError("invalid duration: must be greater than zero")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact string for ``seconds`` that ``parse_duration`` reads back to the same float."""
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError("duration must be finite and not negative")
    for unit in ("d", "h", "m", "s", "ms"):
        factor = UNITS[unit]
        count = seconds / factor
        # Same arithmetic as parse_duration, so the string reads back to exactly this float.
        if count >= 1 and count == int(count) and float(int(count)) * factor == seconds:
            return f"{int(count)}{unit}"
    return repr(float(seconds))
