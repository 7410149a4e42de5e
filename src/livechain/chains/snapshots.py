"""Keeping the chains' memory across restarts: restore at start, snapshot on a timer and at shutdown.

What a snapshot holds per chain: the benchmark store's aggregates (windows, retention totals, race and
missed counts, Prometheus counters) and each provider's selection statistics (the EWMAs the leaderboard
and fastest strategies read), so a restarted Livechain routes as it did before, not from scratch.

Snapshots of other regions found in the database (or in `persistence.compare` files) are loaded into
read-only stores, readable with `?region=` in the API and the dashboard.
"""

from __future__ import annotations

import asyncio
import logging
import time

import orjson

from livechain.chains.registry import ChainRegistry
from livechain.clock import SYSTEM_CLOCK, Clock
from livechain.config.schema import Config
from livechain.metrics.persistence import Database
from livechain.metrics.store import BenchmarkStore
from livechain.providers.stats import Entry

log = logging.getLogger("livechain.persistence")

SERIES_INTERVAL = 60.0


def provider_stats_state(chain) -> dict:
    now = chain.clock.monotonic()
    return {
        p.id: {m: [e.latency_ms, e.success, e.samples, max(0.0, now - e.last_at)] for m, e in p.stats.entries.items()}
        for p in chain.pool.providers
    }


def load_provider_stats(chain, state: dict) -> None:
    now = chain.clock.monotonic()
    for provider in chain.pool.providers:
        stats = state.get(provider.id, {})
        for method, (latency, success, samples, age) in (stats.items() if isinstance(stats, dict) else ()):
            entry = provider.stats.entries[method] = Entry()
            entry.latency_ms, entry.success, entry.samples = float(latency), float(success), int(samples)
            entry.last_at = now - float(age)


def load_spend(chain, state: dict) -> None:
    """Each provider's spend (today's and this month's only while they are still today and this month)."""
    for provider in chain.pool.providers:
        if isinstance(state.get(provider.id), dict):
            provider.spend.load_state(state[provider.id])


class Snapshots:
    def __init__(self, registry: ChainRegistry, config: Config, clock: Clock = SYSTEM_CLOCK) -> None:
        self.registry = registry
        self.config = config
        self.clock = clock
        self.db: Database | None = None
        #: region → chain → read-only store (other regions' snapshots, for comparison)
        self.regions: dict[str, dict[str, BenchmarkStore]] = {}
        self.saved = 0
        self._lock = asyncio.Lock()

    @property
    def region(self) -> str:
        return self.config.region

    async def open(self) -> None:
        """Open the database, restore this region's chains, load other regions read-only."""
        persistence = self.config.persistence
        if not persistence.enabled:
            return
        self.db = await asyncio.to_thread(Database, persistence.sqlite_path)
        rows = await self.db.run(self.db.snapshots)
        for path in persistence.compare:
            try:
                other = await asyncio.to_thread(Database, path)
                rows += [r for r in await other.run(other.snapshots) if r[0] != self.region]
                await other.run(other.close)
            except Exception as exc:
                log.error("comparison database unreadable", extra={"path": path, "error": str(exc)})
        for region, chain_name, saved_at, state in rows:
            if region == self.region:
                chain = self.registry.by_name.get(chain_name)
                if chain is not None:
                    chain.store.load_state(state)
                    load_provider_stats(chain, state.get("providers", {}))
                    load_spend(chain, state.get("spend", {}))
                    log.info("restored benchmarks", extra={"chain": chain_name, "saved_at": round(saved_at, 3)})
            else:
                store = BenchmarkStore(chain_name, region=region, clock=self.clock)
                store.load_state(state)
                store.read_only = True
                self.regions.setdefault(region, {})[chain_name] = store

    def store_for(self, chain_name: str, region: str | None) -> BenchmarkStore | None:
        if region is None or region == self.region:
            chain = self.registry.by_name.get(chain_name)
            return chain.store if chain else None
        return self.regions.get(region, {}).get(chain_name)

    def region_names(self) -> list[str]:
        return sorted({self.region, *self.regions})

    # ------------------------------------------------------------------ writing

    async def save_series(self, *, complete_only: bool = True) -> None:
        if self.db is None:
            return
        horizon = time.time() - self.config.metrics.retention
        for chain in self.registry:
            rpc, race = chain.store.minute_rows(complete_only=complete_only, take=True)
            if rpc or race:
                await self.db.run(self.db.save_series, self.region, chain.name, rpc, race, horizon)

    async def save_snapshot(self) -> None:
        if self.db is None:
            return
        async with self._lock:
            rows = []
            for chain in self.registry:
                state = chain.store.to_state()
                state["providers"] = provider_stats_state(chain)
                state["spend"] = {p.id: p.spend.to_state() for p in chain.pool.providers}
                rows.append((self.region, chain.name, state["saved_at"], state))
            blobs = await asyncio.to_thread(lambda: [(r, c, t, orjson.dumps(s)) for r, c, t, s in rows])
            await self.db.run(self.db.save_snapshots, blobs)
            self.saved += 1

    async def run(self) -> None:
        """Timer task: minute series every minute, snapshots every snapshot_interval."""
        interval = self.config.persistence.snapshot_interval
        next_series = time.monotonic() + SERIES_INTERVAL
        next_snapshot = time.monotonic() + interval
        while True:
            await asyncio.sleep(max(0.05, min(next_series, next_snapshot) - time.monotonic()))
            now = time.monotonic()
            if now >= next_series:
                next_series = now + SERIES_INTERVAL
                await self.save_series()
            if now >= next_snapshot:
                next_snapshot = now + interval
                await self.save_snapshot()

    async def close(self) -> None:
        """Final write at clean shutdown."""
        if self.db is None:
            return
        try:
            await self.save_series(complete_only=False)
            await self.save_snapshot()
        finally:
            await self.db.run(self.db.close)
            self.db = None
