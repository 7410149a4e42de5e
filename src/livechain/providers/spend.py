"""What a provider has cost: requests, units and money, for clients and for Livechain's own traffic, per UTC
day and month and in all; its budget and what is left of it.

Every request that reached the provider counts (an attempt that got an answer, an error or a timeout — not one
that could not connect): that is what a provider bills. A batch counts each request in it. Kept per provider,
persisted in the chain's snapshot (`to_state` / `load_state`), so a restart does not reset a day's spend.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from livechain.config.costs import BudgetConfig, CostConfig

CLIENT = "client"
OWN = "own"
_FIELDS = ("requests", "units", "money")


def _day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def _day_end(ts: float) -> float:
    """The next UTC midnight after `ts`."""
    return (int(ts) // 86_400 + 1) * 86_400.0


def _zero() -> dict[str, dict[str, float]]:
    return {CLIENT: dict.fromkeys(_FIELDS, 0.0), OWN: dict.fromkeys(_FIELDS, 0.0)}


class Spend:
    def __init__(
        self, cost: CostConfig | None, budget: BudgetConfig | None, wall: Callable[[], float],
        on_exhausted: Callable[[bool], None] | None = None,
    ) -> None:
        """`on_exhausted(exhausted)`: the budget ran out, or came back (a new day or month, a reload)."""
        self._wall = wall
        self._on_exhausted = on_exhausted
        self.exhausted_now = False
        self.configure(cost, budget)
        now = wall()
        self.day = _day(now)
        self._day_end = _day_end(now)
        self.today = _zero()
        self.this_month = _zero()
        self.total = _zero()
        self.exhausted_now = self.exhausted()  # a budget of 0: spent before the first request

    def configure(self, cost: CostConfig | None, budget: BudgetConfig | None) -> None:
        self.cost = cost
        self.budget = budget
        if hasattr(self, "today"):
            self._judge()

    # ------------------------------------------------------------------ counting

    def price(self, method: str) -> float:
        """One request of `method`: money when priced, else units (0 for a free provider)."""
        return self.cost.price_of(method) if self.cost is not None else 0.0

    def record(self, method: str, own: bool = False, n: int = 1) -> None:
        """`n` requests of `method` reached the provider (on every attempt's path: kept short)."""
        if self._wall() >= self._day_end:
            self._roll()
        cost = self.cost
        kind = OWN if own else CLIENT
        if cost is None:  # a free provider: requests only
            self.today[kind]["requests"] += n
            self.this_month[kind]["requests"] += n
            self.total[kind]["requests"] += n
            return
        units = cost.units_of(method) * n
        money = cost.price_of(method) * n if cost.priced else 0.0
        for bucket in (self.today[kind], self.this_month[kind], self.total[kind]):
            bucket["requests"] += n
            bucket["units"] += units
            bucket["money"] += money
        if self.budget is not None and not self.exhausted_now:
            self._judge()

    def _roll(self) -> None:
        now = self._wall()
        if now < self._day_end:
            return
        day = _day(now)
        self._day_end = _day_end(now)
        if day != self.day:
            if day[:7] != self.day[:7]:
                self.this_month = _zero()
            self.today = _zero()
            self.day = day
            if self.exhausted_now:
                self._judge()

    def _judge(self) -> None:
        exhausted = self.exhausted()
        if exhausted != self.exhausted_now:
            self.exhausted_now = exhausted
            if self._on_exhausted is not None:
                self._on_exhausted(exhausted)

    def check(self) -> bool:
        """Is the budget exhausted now (a new day or month may have given it back)? Cheap: for selection."""
        self._roll()
        return self.exhausted_now

    # ------------------------------------------------------------------ the budget

    def _spent(self, period: dict[str, dict[str, float]]) -> float:
        field = "money" if self.cost is not None and self.cost.priced else "units"
        return period[CLIENT][field] + period[OWN][field]

    def left(self) -> dict[str, float | None]:
        """What is left of the day's and the month's budget (None: no budget for that period)."""
        self._roll()
        budget = self.budget
        if budget is None:
            return {"day": None, "month": None}
        return {
            "day": None if budget.day is None else max(0.0, budget.day - self._spent(self.today)),
            "month": None if budget.month is None else max(0.0, budget.month - self._spent(self.this_month)),
        }

    def exhausted(self) -> bool:
        return self.budget is not None and any(value is not None and value <= 0.0 for value in self.left().values())

    # ------------------------------------------------------------------ reading and persistence

    def snapshot(self) -> dict[str, Any]:
        self._roll()
        return {"unit": "money" if self.cost is not None and self.cost.priced else "units", "day": self.day,
                "today": self.today, "month": self.this_month, "total": self.total,
                "budget_left": self.left(), "exhausted": self.exhausted()}

    def to_state(self) -> dict[str, Any]:
        return {"day": self.day, "today": self.today, "month": self.this_month, "total": self.total}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore a snapshot: today's and this month's figures only if they are still today's and this month's."""
        try:
            day = str(state["day"])
            total = state["total"]
            self.total = {k: {f: float(total[k][f]) for f in _FIELDS} for k in (CLIENT, OWN)}
            now = _day(self._wall())
            if day[:7] == now[:7]:
                month = state["month"]
                self.this_month = {k: {f: float(month[k][f]) for f in _FIELDS} for k in (CLIENT, OWN)}
            if day == now:
                today = state["today"]
                self.today = {k: {f: float(today[k][f]) for f in _FIELDS} for k in (CLIENT, OWN)}
        except (KeyError, TypeError, ValueError):
            return  # an older or damaged snapshot: spend starts from zero
        self._judge()


class OwnRate:
    """At most `rate` of Livechain's own requests per second to a provider (a token bucket, burst of one
    second's worth): health checks and probes must not burn a paid plan."""

    __slots__ = ("_clock", "_stamp", "_tokens", "rate")

    def __init__(self, rate: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self._clock = clock
        self._tokens = max(1.0, rate)
        self._stamp = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(max(1.0, self.rate), self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


def summary(providers: Iterable[Any], answered_without: Mapping[str, Mapping[str, int]]) -> dict[str, Any]:
    """Spend per provider (requests, units, money: today, this month, in all; client and own traffic; budget
    left), and what the cache and coalescing saved: `answered_without` (method → counts of "hit" and
    "coalesced") valued at the cheapest provider's price for each method — a lower bound of what they would
    have cost."""
    providers = list(providers)
    out = {p.id: {"tier": p.tier, **p.spend.snapshot()} for p in providers}
    saved = {"requests": 0, "money": 0.0, "units": 0.0}
    priced = [p.spend for p in providers if p.spend.cost is not None]
    for method, counts in answered_without.items():
        n = counts.get("hit", 0) + counts.get("coalesced", 0)
        if not n:
            continue
        saved["requests"] += n
        if priced:
            cheapest = min(priced, key=lambda s: s.price(method))
            cost = cheapest.cost
            saved["units"] += cost.units_of(method) * n  # type: ignore[union-attr]
            if cost.priced:  # type: ignore[union-attr]
                saved["money"] += cost.price_of(method) * n  # type: ignore[union-attr]
    return {"providers": out, "saved": saved}
