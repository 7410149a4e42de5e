"""Exponential backoff with full jitter (AWS architecture blog's "full jitter"): sleep U(0, min(cap, base·2ⁿ)),
never below `floor`. `reset()` after a success."""

from __future__ import annotations

import random


class Backoff:
    __slots__ = ("_random", "attempt", "base", "cap", "factor", "floor")

    def __init__(
        self,
        base: float = 0.1,
        cap: float = 30.0,
        factor: float = 2.0,
        floor: float = 0.05,
        rng: random.Random | None = None,
    ) -> None:
        self.base = base
        self.cap = cap
        self.factor = factor
        self.floor = floor
        self.attempt = 0
        self._random = rng or random.Random()

    def next(self) -> float:
        ceiling = min(self.cap, self.base * self.factor**self.attempt)
        self.attempt += 1
        return max(self.floor, self._random.uniform(0, ceiling))

    def reset(self) -> None:
        self.attempt = 0
