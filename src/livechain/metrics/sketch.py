"""A fixed-size log-bucket latency histogram (a DDSketch without the collapsing): quantiles within ±7%.

Bucket i holds latencies in [MIN·γ^i, MIN·γ^(i+1)) with γ = 1.15 and MIN = 20 µs, so 100 buckets reach
~23 s; anything above lands in the last bucket. 100 counters as an `array('I')` = 400 bytes, mergeable by
addition — so windows are rings of these, and the store's memory is known in advance.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable

GAMMA = 1.15
MIN_MS = 0.02
BUCKETS = 100
_LOG_GAMMA = math.log(GAMMA)
_LOG_MIN = math.log(MIN_MS)
_ZEROS = array("I", bytes(4 * BUCKETS))


def bucket_of(latency_ms: float) -> int:
    if latency_ms <= MIN_MS:
        return 0
    index = int((math.log(latency_ms) - _LOG_MIN) / _LOG_GAMMA)
    return index if index < BUCKETS else BUCKETS - 1


def bucket_value(index: int) -> float:
    """A representative latency for bucket `index` (its geometric middle)."""
    return MIN_MS * GAMMA ** (index + 0.5)


def new_histogram() -> array:
    return array("I", _ZEROS)


def merge_into(target: array, source: array) -> None:
    for i, n in enumerate(source):
        if n:
            target[i] += n


def quantiles(hist: array, qs: Iterable[float]) -> list[float | None]:
    """Latency (ms) at each quantile q ∈ [0, 1]; None when the histogram is empty."""
    total = sum(hist)
    wanted = list(qs)
    if total == 0:
        return [None] * len(wanted)
    out: list[float | None] = []
    for q in wanted:
        rank = max(1, math.ceil(q * total))
        seen = 0
        for i, n in enumerate(hist):
            seen += n
            if seen >= rank:
                out.append(round(bucket_value(i), 3))
                break
    return out
