"""All chains, by name and by decimal chain id, reconciled with the config on every reload.

The lookup tables are replaced as a whole (one assignment each), so a request resolves a chain against
either the old or the new tables, never a half-updated one; a removed chain keeps serving the requests
that already hold it and is closed after the longest deadline.
"""

from __future__ import annotations

import asyncio

from livechain.cache.store import CacheBackend
from livechain.chains.chain import Chain
from livechain.clock import SYSTEM_CLOCK, Clock
from livechain.config.schema import Config
from livechain.events import EventBus
from livechain.failsafe import Supervisor, TaskSet


class ChainRegistry:
    def __init__(
        self, config: Config, *, events: EventBus, supervisor: Supervisor, clock: Clock = SYSTEM_CLOCK,
        cache_store: CacheBackend | None = None,
    ) -> None:
        self.events = events
        self._supervisor = supervisor
        self._cache_store = cache_store
        self._clock = clock
        self.config = config
        self.by_name: dict[str, Chain] = {}
        self.by_key: dict[str, Chain] = {}
        self.tasks = TaskSet("registry")
        self._started = False
        for name, cfg in config.chains.items():
            self.by_name[name] = self._new(cfg, config)
        self._index()

    def _new(self, cfg, config: Config) -> Chain:
        return Chain(
            cfg, region=config.region, metrics=config.metrics, events=self.events, supervisor=self._supervisor,
            clock=self._clock, cache_store=self._cache_store,
        )

    def _index(self) -> None:
        by_key = dict(self.by_name)
        for chain in self.by_name.values():
            by_key[str(chain.chain_id)] = chain
        self.by_key = by_key

    def resolve(self, key: str) -> Chain | None:
        """A chain by name or decimal chain id."""
        return self.by_key.get(key)

    def __iter__(self):
        return iter(list(self.by_name.values()))

    def start(self) -> None:
        self._started = True
        for chain in self.by_name.values():
            chain.start()

    def apply(self, config: Config) -> None:
        """Reconcile chains with `config` (after a successful reload)."""
        self.config = config
        chains = dict(self.by_name)
        for name in [n for n in chains if n not in config.chains]:
            old = chains.pop(name)
            self.tasks.spawn(f"retire/{name}", self._retire(old, old.config.deadline + 1))
        for name, cfg in config.chains.items():
            chain = chains.get(name)
            if chain is None or chain.chain_id != cfg.chain_id:
                if chain is not None:
                    self.tasks.spawn(f"retire/{name}", self._retire(chain, chain.config.deadline + 1))
                chain = chains[name] = self._new(cfg, config)
                if self._started:
                    chain.start()
            else:
                chain.reconfigure(cfg)
        self.by_name = chains
        self._index()

    @staticmethod
    async def _retire(chain: Chain, grace: float) -> None:
        await asyncio.sleep(grace)
        await chain.close()

    async def close(self) -> None:
        await self.tasks.close(timeout=5)
        await asyncio.gather(*(c.close() for c in self.by_name.values()), return_exceptions=True)
