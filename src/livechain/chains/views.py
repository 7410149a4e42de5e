"""Read-only views of the chains, for the JSON API, Prometheus and the dashboard. Plain data, never a URL.

These are the chains package's public reading surface: the web edge serializes them and never reaches
into a chain's pool, store or subscriptions itself.

    stall(chain)                          are its heads (and each provider's) stalled now (chains.stall)
    status(chain, stalled)                ("ok" | "degraded" | "stalled" | "down", providers up, providers)
    health(registry, restarts)            GET /api/health (its "status" is "stalled" when a chain is: HTTP 503)
    overview(registry, snapshots)         GET /api/chains
    providers(chain)                      GET /api/chains/{chain}/providers
    leaderboard(chain, store, ...)        GET /api/chains/{chain}/leaderboard
    methods(chain, store)                 GET /api/chains/{chain}/methods
    history(chain, snapshots, store, ...) GET /api/chains/{chain}/history
    samples(chain)                        what /metrics exports for one chain
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from livechain.chains.chain import Chain
from livechain.chains.registry import ChainRegistry
from livechain.chains.snapshots import Snapshots
from livechain.chains.stall import StallState
from livechain.metrics import leaderboard as board
from livechain.metrics.store import PROM_BUCKETS_MS, BenchmarkStore


def _up(chain: Chain) -> int:
    return sum(1 for p in chain.pool.providers if p.breaker.state.value != "open" and p.chain_id_ok is not False)


def stall(chain: Chain) -> StallState:
    """Whether the chain's heads (and each provider's) have stopped, now (`chains.stall`)."""
    return chain.stall.state(chain.clock.monotonic())


def status(chain: Chain, stalled: StallState) -> tuple[str, int, int]:
    """down: no provider is up; stalled: its heads stopped; degraded: some provider is down; else ok."""
    up, total = _up(chain), len(chain.pool.providers)
    word = "down" if not up else "stalled" if stalled.stalled else "ok" if up == total else "degraded"
    return word, up, total


def health(registry: ChainRegistry, restarts: dict[str, int]) -> dict:
    """`status`: "stalled" when any chain's heads stopped (the endpoint answers 503 then), "degraded" when a
    chain is not ok otherwise, else "ok"."""
    chains = {}
    overall = "ok"
    for chain in registry:
        stalled = stall(chain)
        chain_status, up, _ = status(chain, stalled)
        if stalled.stalled:
            overall = "stalled"
        elif chain_status != "ok" and overall == "ok":
            overall = "degraded"
        best = chain.pool.best_head
        chains[chain.name] = {
            "status": chain_status,
            "chain_id": chain.chain_id,
            "best_head": best,
            **stalled.summary(),
            "providers_up": up,
            "providers": {
                p.id: {
                    "breaker": p.breaker.state.value,
                    "head": p.head,
                    "lag": (best - p.head) if best is not None and p.head is not None else None,
                    "chain_id_ok": p.chain_id_ok,
                    "stalled": stalled.providers.get(p.id, False),
                }
                for p in chain.pool.providers
            },
        }
    return {"status": overall, "time": round(time.time(), 3), "chains": chains, "task_restarts": dict(restarts)}


def overview(registry: ChainRegistry, snapshots: Snapshots) -> dict:
    out = []
    for c in registry:
        stalled = stall(c)
        chain_status, up, total = status(c, stalled)
        rps, error_rate = c.traffic.rate()
        providers = c.pool.providers
        head_at = max((p.head_at for p in providers if p.head == c.pool.best_head), default=None)
        out.append({
            "name": c.name,
            "chain_id": c.chain_id,
            "strategy": c.config.strategy,
            "status": chain_status,
            "best_head": c.pool.best_head,
            "head_age_s": round(c.clock.monotonic() - head_at, 3) if head_at else None,
            **stalled.summary(),
            "providers_stalled": [pid for pid, s in stalled.providers.items() if s],
            "providers": [p.id for p in providers],
            "providers_up": up,
            "providers_total": total,
            "breakers": {p.id: p.breaker.state.value for p in providers},
            "rps": rps,
            "error_rate": error_rate,
            "cache": cache_summary(c),
        })
    return {"region": snapshots.region, "regions": snapshots.region_names(), "chains": out}


def cache_summary(chain: Chain) -> dict:
    """What the cache and coalescing did for a chain since start: requests answered from the cache (hits),
    sent upstream (misses), sharing another's attempt (coalesced), not consulted (bypass); entries kept; the
    upstream requests saved (hits + coalesced) and the hit ratio among the requests the cache could answer."""
    totals = chain.cache_counts.totals()
    hits, misses, coalesced = totals.get("hit", 0), totals.get("miss", 0), totals.get("coalesced", 0)
    asked = hits + misses + coalesced
    return {
        "enabled": chain.cache is not None and chain.config.cache.enabled,
        "hits": hits, "misses": misses, "coalesced": coalesced, "bypass": totals.get("bypass", 0),
        "kept": totals.get("kept", 0), "saved": hits + coalesced,
        "hit_ratio": round((hits + coalesced) / asked, 4) if asked else None,
        "finalized": chain.finalized(),
    }


def leaderboard(chain: Chain, store: BenchmarkStore, *, live: bool, event: str, method: str | None) -> dict:
    providers = [p.id for p in chain.pool.providers]
    for key in (*store.rpc_stats, *store.race_stats):  # a foreign snapshot may know other providers
        if key[0] not in providers:
            providers.append(key[0])
    live_score = None
    if live:
        strategy = chain.strategies["leaderboard"]
        by_id = chain.pool.by_id
        live_score = lambda pid: strategy.score(by_id[pid], method or "*") if pid in by_id else 0.0  # type: ignore[attr-defined]  # noqa: E731
    ranked = board.rank(store, providers, event=event, method=method, live_score=live_score)
    return {"chain": chain.name, "region": store.region, "event": event, "method": method, "ranked": ranked}


def methods(chain: Chain, store: BenchmarkStore) -> dict:
    rpc = store.rpc()
    providers = [p.id for p in chain.pool.providers] + sorted(set(rpc) - set(chain.pool.by_id))
    names = sorted({m for per in rpc.values() for m in per})
    cells = {
        p: {m: {k: v[k] for k in ("p50_ms", "p90_ms", "p99_ms", "success_rate", "count")} for m, v in rpc.get(p, {}).items()}
        for p in providers
    }
    return {"chain": chain.name, "region": store.region, "providers": providers, "methods": names, "cells": cells}


def providers(chain: Chain) -> dict:
    snap = chain.snapshot()
    rpc_now = chain.store.rpc()
    rpc_total = chain.store.rpc(window=False)
    races = chain.store.races()
    for p in snap["providers"]:
        pid = p["id"]
        p["methods"] = rpc_now.get(pid, {})
        p["totals"] = {m: {k: v[k] for k in ("count", "successes", "failures", "success_rate")}
                       for m, v in rpc_total.get(pid, {}).items()}
        p["races"] = races.get(pid, {})
    return snap


async def history(
    chain: Chain, snapshots: Snapshots, store: BenchmarkStore, *, kind: str, since: float,
    provider: str | None, key: str | None,
) -> dict:
    """Minute series from SQLite plus the minutes still in memory (not yet persisted)."""
    rows: dict[tuple, list] = {}
    if snapshots.db is not None:
        for row in await snapshots.db.run(snapshots.db.series, kind, store.region, chain.name, since, provider, key):
            rows[tuple(row[:3])] = list(row)
    rpc_rows, race_rows = store.minute_rows(complete_only=False, take=False)
    for row in rpc_rows if kind == "rpc" else race_rows:
        ts, p, k = row[:3]
        if ts < since or (provider and p != provider) or (key and k != key):
            continue
        old = rows.get((ts, p, k))
        if old is None:
            rows[(ts, p, k)] = list(row)
        elif kind == "rpc":  # persisted part + in-memory part of the same minute
            old[3] += row[3]
            old[4] += row[4]
            old[5], old[6], old[7] = row[5] or old[5], row[6] or old[6], max(row[7] or 0, old[7] or 0) or None
        else:
            old[3] += row[3]
            old[4] += row[4]
            old[5] += row[5]
    points = []
    for row in sorted(rows.values(), key=lambda r: (r[0], r[1], r[2])):
        if kind == "rpc":
            ts, p, m, count, errors, mean, p50, p99 = row
            points.append({"ts": ts, "provider": p, "method": m, "count": count, "errors": errors,
                           "mean_ms": mean, "p50_ms": p50, "p99_ms": p99})
        else:
            ts, p, e, races, wins, margin_sum = row
            losses = races - wins
            points.append({"ts": ts, "provider": p, "event": e, "races": races, "wins": wins,
                           "win_rate": round(wins / races, 4) if races else None,
                           "avg_margin_ms": round(margin_sum / losses, 3) if losses else 0.0})
    return {"chain": chain.name, "region": store.region, "kind": kind, "bucket_s": 60, "points": points}


# ---------------------------------------------------------------------------------------------- Prometheus


@dataclass(frozen=True, slots=True)
class ProviderSample:
    id: str
    breakers: dict[str, str]  # transport → state
    head: int | None
    lag: int | None
    ws_connected: bool | None  # None: no ws_url
    stalled: bool  # its head has not changed for its stall threshold
    integrity_failures: dict[str, int]  # method → answers that failed an integrity check
    disagreements: dict[str, int]  # method → quorum votes lost


@dataclass(frozen=True, slots=True)
class Samples:
    """One chain's exported numbers at scrape time (cumulative counters and gauges)."""

    chain: str
    latency: list[tuple[str, str, list[tuple[str, int]], float]]  # provider, method, cumulative buckets, sum
    attempts: list[tuple[str, str, str, int]]  # provider, method, outcome, count
    races: list[tuple[str, str, int, int, float]]  # provider, event, races, wins, loss margin sum
    missed: list[tuple[str, str, int]]  # provider, event, count
    providers: list[ProviderSample]
    clients: dict[str, int]  # subscription kind → client subscriptions
    cache: dict[str, dict[str, int]]  # method → {hit, miss, coalesced, bypass, kept: count}
    head_delay: list[tuple[str, str, float | None, float | None]]  # provider, event, p50 ms, p90 ms (wins as 0)
    stalled: bool  # the chain's heads stopped
    block_time: float | None  # the observed block time, seconds (None: not known yet)
    stall_after: float  # the chain's stall threshold now, seconds
    chain_stalls: int  # ok → stalled transitions of the chain since start
    provider_stalls: dict[str, int]  # provider → its ok → stalled transitions since start


def samples(chain: Chain) -> Samples:
    store = chain.store
    store.fold()
    latency = []
    bounds = (*map(str, PROM_BUCKETS_MS), "+Inf")
    for (provider, method), hist in list(store.prom.items()):
        cumulative: list[tuple[str, int]] = []
        running = 0
        for bound, n in zip(bounds, hist.buckets, strict=True):
            running += n
            cumulative.append((bound, running))
        latency.append((provider, method, cumulative, hist.sum))
    best = chain.pool.best_head
    stalled = stall(chain)
    return Samples(
        chain=chain.name,
        latency=latency,
        attempts=[(p, m, o, n) for (p, m, o), n in list(store.rpc_counts.items())],
        races=[(p, e, total, won, margin) for (p, e), (total, won, margin) in list(store.race_counts.items())],
        missed=[(p, e, n) for (p, e), n in list(store.missed.items())],
        providers=[
            ProviderSample(
                p.id,
                {transport: b.state.value for transport, b in p.breakers().items()},
                p.head,
                (best - p.head) if best is not None and p.head is not None else None,
                chain.subscriptions.ws_connected(p.id),
                stalled.providers.get(p.id, False),
                dict(p.integrity_failures),
                dict(p.disagreements),
            )
            for p in chain.pool.providers
        ],
        clients=chain.subscriptions.clients_by_kind(),
        cache={method: dict(counts) for method, counts in chain.cache_counts.by_method.items()},
        head_delay=[(p, e, r.get("delay_p50_ms"), r.get("delay_p90_ms"))
                    for p, events in store.races().items() for e, r in events.items()],
        stalled=stalled.stalled,
        block_time=stalled.block_time_s,
        stall_after=stalled.stall_after_s,
        chain_stalls=chain.stall.chain_stalls,
        provider_stalls=dict(chain.stall.provider_stalls),
    )
