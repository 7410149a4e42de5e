"""Routing that explains itself: for one method and strategy, the providers a request would try, in order, with
each one's score components, and every provider left out with its reasons — the same rules as
`routing.selection` (read, not re-decided: the order is the strategy's own on the real eligible list).

    route(pool, strategy, method, clock)     → {"order": [...], "excluded": [...], "soft": bool}
    header(plan, trail, answer_provider)     → the compact `X-Livechain-Explain` response header

Reasons: wrong chain id, method denied by its policy, method unsupported (learned, with when), breaker
open/half-open, over budget (exclude | last resort), cooling down after a 429, quarantined (an integrity
failure), lagging by N blocks, chain id not confirmed yet. `soft`: nothing passed every filter, so the soft
ones (lag, cooldown, unconfirmed chain id) were dropped, as selection does. Missing the SLO is not an
exclusion: `cheapest` orders such providers last (shown in their components).
"""

from __future__ import annotations

from typing import Any

from livechain.clock import Clock
from livechain.providers.pool import ProviderPool
from livechain.providers.provider import Provider
from livechain.routing.selection import eligible
from livechain.routing.strategies import Cheapest, Fastest, Leaderboard, Strategy, rpc_score

#: a quarantine is the cooldown an integrity failure set within this many seconds
QUARANTINE_WINDOW = 300.0


def reasons(pool: ProviderPool, provider: Provider, method: str, now: float, wall: float) -> tuple[list[str], bool]:
    """(why `provider` is out for `method`, whether every reason is a soft one)."""
    out: list[str] = []
    soft = True
    p = provider
    if p.chain_id_ok is False:
        out.append("wrong chain id")
        soft = False
    if not p.config.serves(method):
        out.append("method denied by its policy")
        soft = False
    elif not p.serves(method):
        refused = p.capabilities.unsupported.get(method)
        out.append(f"method unsupported (learned at {refused[1]:.0f})" if refused else "method unsupported")
        soft = False
    if not p.breaker.available():
        out.append(f"breaker {p.breaker.state.value}")
        soft = False
    if p.spend.budget is not None and p.spend.check():
        out.append(f"over budget ({p.spend.budget.on_exhausted.replace('_', ' ')})")
        soft = False
    if p.cooldown_until > now:
        failure = p.last_integrity_failure
        if failure is not None and wall - failure["ts"] < QUARANTINE_WINDOW:
            out.append(f"quarantined: {failure['reason']}"[:160])
        else:
            out.append(f"cooling down after 429 ({p.cooldown_until - now:.1f} s left)")
    best = pool.best_head
    if best is not None and (p.head is None or best - p.head > pool.config.max_lag_blocks):
        out.append("head unknown" if p.head is None else f"lagging by {best - p.head} blocks")
    if p.chain_id_ok is None:
        out.append("chain id not confirmed yet")
    return out, soft


def components(strategy: Strategy, provider: Provider, method: str) -> dict[str, Any]:
    """What the strategy orders `provider` by."""
    if isinstance(strategy, Cheapest):
        misses, _, price = strategy.key(provider, method)
        return {"price": price, "unit": "money" if provider.spend.cost is not None and provider.spend.cost.priced
                else "units", "tier": provider.tier, "misses_slo": misses}
    if isinstance(strategy, Leaderboard):
        rpc = rpc_score(provider, method)
        factor = strategy.race_factor(provider.id) if strategy.race_factor is not None else 1.0
        return {"rpc_score": round(rpc, 4), "race_factor": round(factor, 4), "score": round(rpc * factor, 4)}
    if isinstance(strategy, Fastest):
        entry = provider.stats.entries.get(method)
        return {"latency_ms": round(entry.latency_ms, 3) if entry is not None and entry.samples else None}
    return {"priority": provider.priority}


def route(pool: ProviderPool, strategy: Strategy, method: str, clock: Clock) -> dict[str, Any]:
    now, wall = clock.monotonic(), clock.wall()
    chosen = eligible(pool, method, clock)
    order = strategy.order(chosen, method)
    ids = {p.id for p in chosen}
    excluded = []
    all_soft_dropped = False
    for p in pool.providers:
        why, _ = reasons(pool, p, method, now, wall)
        if p.id in ids:
            if why:
                all_soft_dropped = True  # it is in only because nothing passed every filter
            continue
        excluded.append({"id": p.id, "reasons": why or ["not eligible"]})
    return {
        "method": method,
        "strategy": strategy.name,
        "order": [{"id": p.id, **components(strategy, p, method)} for p in order],
        "excluded": excluded,
        "soft": all_soft_dropped,
    }


def header(plan: dict[str, Any], trail: list[tuple[str, str]], cache: str) -> str:
    """`X-Livechain-Explain`: `order=a,b,c; tried=a:timeout,b:ok; first=a (price=0.0001 tier=paid)`; a cache
    hit says so; at most 512 characters."""
    if cache == "hit":
        return "cache=hit"
    parts = [f"strategy={plan['strategy']}", "order=" + ",".join(p["id"] for p in plan["order"])]
    if trail:
        parts.append("tried=" + ",".join(f"{pid}:{outcome}" for pid, outcome in trail))
    if plan["order"]:
        first = plan["order"][0]
        why = " ".join(f"{k}={v}" for k, v in first.items() if k != "id")
        parts.append(f"first={first['id']} ({why})")
    if plan["excluded"]:
        parts.append("excluded=" + ",".join(f"{e['id']}:{e['reasons'][0]}" for e in plan["excluded"]))
    if cache == "coalesced":
        parts.append("cache=coalesced")
    return "; ".join(parts)[:512]
