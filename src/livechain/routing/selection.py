"""Which providers may serve a request right now, before a strategy orders them.

    eligible = serves the method (its policy, and not learned unsupported) ∧ right chain id (or not yet
               known) ∧ breaker closed/probe-able ∧ budget not spent ∧ not cooling down after a 429
               ∧ lag ≤ max_lag_blocks behind the best head

A provider whose budget is spent is left out (`on_exhausted: exclude`) or kept as a last resort: used only
when nobody else is eligible (`last_resort`).

If that leaves nothing, the soft filters (lag, cooldown, unknown chain id) are dropped rather than failing
closed. Two filters are never dropped: a provider serving the *wrong* chain id answers for another chain,
and an open breaker is how a dead provider fails fast (all breakers open → a quick, clear error; health
checks probe them back through half-open).

The answer is cached per method until the pool's state version changes (a breaker transition, a 429
cooldown, a chain id verdict, a new head, a reload) or CACHE_TTL passes (time-based changes: cooldowns
ending, open breakers reaching half-open) — a pick is on every request's path, its inputs change a few
times a second at most.
"""

from __future__ import annotations

from livechain.clock import Clock
from livechain.providers.pool import ProviderPool
from livechain.providers.provider import Provider

CACHE_TTL = 0.05
CACHE_LIMIT = 512


def eligible(pool: ProviderPool, method: str, clock: Clock) -> list[Provider]:
    now = clock.monotonic()
    cache = pool.eligible_cache
    hit = cache.get(method)
    if hit is not None and hit[0] == pool.version and hit[1] > now:
        return hit[2]
    result = _eligible(pool, method, now)
    if len(cache) >= CACHE_LIMIT:
        cache.clear()
    cache[method] = (pool.version, now + CACHE_TTL, result)
    return result


def _eligible(pool: ProviderPool, method: str, now: float) -> list[Provider]:
    best = pool.best_head
    max_lag = pool.config.max_lag_blocks
    strict: list[Provider] = []
    fallback: list[Provider] = []
    last_resort: list[Provider] = []
    for p in pool.providers:
        if p.chain_id_ok is False or not p.serves(method) or not p.breaker.available():
            continue
        if p.spend.budget is not None and p.spend.check():  # its budget is spent
            if p.spend.budget.on_exhausted == "last_resort":
                last_resort.append(p)
            continue
        fallback.append(p)
        if p.cooldown_until > now:
            continue
        if best is not None and (p.head is None or best - p.head > max_lag):
            continue
        if p.chain_id_ok is None:
            continue
        strict.append(p)
    return strict or fallback or last_resort
