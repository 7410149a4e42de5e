"""The JSON API: read-only views built from snapshots (`GET /api/...`). Never shows a provider URL."""

from __future__ import annotations

import time

from livechain.chains.chain import Chain
from livechain.chains.registry import ChainRegistry
from livechain.chains.snapshots import Snapshots
from livechain.events import EventBus
from livechain.failsafe.supervise import restarts
from livechain.metrics import leaderboard as board
from livechain.metrics.store import BenchmarkStore


def health(registry: ChainRegistry) -> dict:
    chains = {}
    status = "ok"
    for chain in registry:
        snap = chain.snapshot()
        up = sum(1 for p in snap["providers"] if p["breaker"]["http"] != "open" and p["chain_id_ok"] is not False)
        chain_status = "ok" if up == len(snap["providers"]) else ("degraded" if up else "down")
        if chain_status != "ok":
            status = "degraded"
        chains[chain.name] = {
            "status": chain_status,
            "chain_id": snap["chain_id"],
            "best_head": snap["best_head"],
            "providers_up": up,
            "providers": {
                p["id"]: {
                    "breaker": p["breaker"]["http"],
                    "head": p["head"],
                    "lag": p["lag"],
                    "chain_id_ok": p["chain_id_ok"],
                }
                for p in snap["providers"]
            },
        }
    return {"status": status, "time": round(time.time(), 3), "chains": chains, "task_restarts": dict(restarts)}


def _status(chain: Chain) -> tuple[str, int, int]:
    providers = chain.pool.providers
    up = sum(1 for p in providers if p.breaker.state.value != "open" and p.chain_id_ok is not False)
    return ("ok" if up == len(providers) else "degraded" if up else "down"), up, len(providers)


def chains(registry: ChainRegistry, snapshots: Snapshots) -> dict:
    out = []
    for c in registry:
        status, up, total = _status(c)
        rps, error_rate = c.traffic.rate()
        head_at = max((p.head_at for p in c.pool.providers if p.head == c.pool.best_head), default=None)
        out.append({
            "name": c.name,
            "chain_id": c.chain_id,
            "strategy": c.config.strategy,
            "status": status,
            "best_head": c.pool.best_head,
            "head_age_s": round(c.clock.monotonic() - head_at, 3) if head_at else None,
            "providers": [p.id for p in c.pool.providers],
            "providers_up": up,
            "providers_total": total,
            "breakers": {p.id: p.breaker.state.value for p in c.pool.providers},
            "rps": rps,
            "error_rate": error_rate,
        })
    return {"region": snapshots.region, "regions": snapshots.region_names(), "chains": out}


def leaderboard(chain: Chain, store: BenchmarkStore, *, live: bool, event: str, method: str | None) -> dict:
    providers = [p.id for p in chain.pool.providers]
    for key in (*store.rpc_stats, *store.race_stats):  # a foreign snapshot may know other providers
        if key[0] not in providers:
            providers.append(key[0])
    live_score = None
    if live:
        strategy = chain.strategies["leaderboard"]
        by_id = chain.pool.by_id
        live_score = lambda pid: strategy.score(by_id[pid], method or "*") if pid in by_id else 0.0  # noqa: E731
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


def events(bus: EventBus, since: int, limit: int) -> dict:
    return {"seq": bus.seq, "events": bus.since(since, limit)}


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
