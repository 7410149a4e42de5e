"""The JSON API: read-only views built from snapshots (`GET /api/...`). Never shows a provider URL."""

from __future__ import annotations

import time

from livechain.chains.chain import Chain
from livechain.chains.registry import ChainRegistry
from livechain.failsafe.supervise import restarts


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


def chains(registry: ChainRegistry) -> dict:
    return {
        "chains": [
            {
                "name": c.name,
                "chain_id": c.chain_id,
                "strategy": c.config.strategy,
                "providers": [p.id for p in c.pool.providers],
                "best_head": c.pool.best_head,
            }
            for c in registry
        ]
    }


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
