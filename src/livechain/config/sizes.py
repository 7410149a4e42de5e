"""Sizes in config: ``64MiB``, ``512KiB``, ``2GB``, ``1000000`` (bytes). Error messages never echo the value."""

from __future__ import annotations

import re

UNITS: dict[str, int] = {
    "": 1, "b": 1,
    "kb": 1000, "mb": 1000**2, "gb": 1000**3,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3,
}
_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$")
_EXPECTED = "expected a number of bytes or a number with a unit B|KB|MB|GB|KiB|MiB|GiB (e.g. 64MiB)"


def parse_size(value: object) -> int:
    """Bytes from an int or a string with a unit. Raises ValueError for anything else, zero or negative."""
    if isinstance(value, bool):
        raise ValueError(f"invalid size: {_EXPECTED}")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (match := _SIZE_RE.match(value)) and match.group(2).lower() in UNITS:
        size = int(float(match.group(1)) * UNITS[match.group(2).lower()])
    else:
        raise ValueError(f"invalid size: {_EXPECTED}")
    if size <= 0:
        raise ValueError("a size must be positive")
    return size
