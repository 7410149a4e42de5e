"""The providers of one chain, kept in priority order, with the best known head.

On reload `reconcile()` keeps a Provider (its warm connections, breaker and statistics) whenever its
connection settings are unchanged, adopts new ones and retires removed ones. A retired provider keeps
serving the attempts already running on it and is closed when they finish (`drain()`), so a reload never
fails an in-flight request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from livechain.clock import SYSTEM_CLOCK, Clock
from livechain.config.schema import ChainConfig, ProviderConfig
from livechain.events import EventBus
from livechain.metrics.store import BenchmarkStore
from livechain.providers import log
from livechain.providers.provider import Provider


def _same_connection(a: ProviderConfig, b: ProviderConfig) -> bool:
    return (a.http_url, a.ws_url, a.headers, a.max_connections) == (b.http_url, b.ws_url, b.headers, b.max_connections)


class ProviderPool:
    def __init__(
        self,
        config: ChainConfig,
        *,
        store: BenchmarkStore,
        events: EventBus,
        clock: Clock = SYSTEM_CLOCK,
        on_best_head: Callable[[int], None] | None = None,
    ) -> None:
        """`on_best_head(number)`: called whenever the best head advances (the chain tells its subscriptions)."""
        self.chain = config.name
        self.config = config
        self._store = store
        self._events = events
        self.clock = clock
        self.providers: tuple[Provider, ...] = ()
        self.by_id: dict[str, Provider] = {}
        self.best_head: int | None = None
        #: bumped whenever something selection depends on changes (routing caches compare it)
        self.version = 0
        self.eligible_cache: dict[str, tuple[int, float, list[Provider]]] = {}
        self._on_best_head = on_best_head
        self.reconcile(config)

    def _new(self, cfg: ProviderConfig, chain: ChainConfig) -> Provider:
        return Provider(
            self.chain, cfg, chain.breaker, store=self._store, events=self._events, clock=self.clock,
            on_change=self.changed,
        )

    def changed(self) -> None:
        """Selection inputs changed: invalidate routing caches."""
        self.version += 1

    def reconcile(self, config: ChainConfig) -> tuple[list[Provider], list[Provider]]:
        """Adopt `config`'s providers. Returns (added, retired)."""
        self.config = config
        added: list[Provider] = []
        kept: dict[str, Provider] = {}
        for cfg in config.providers:
            old = self.by_id.get(cfg.id)
            if old is not None and _same_connection(old.config, cfg):
                old.reconfigure(cfg, config.breaker)
                kept[cfg.id] = old
            else:
                kept[cfg.id] = provider = self._new(cfg, config)
                added.append(provider)
        retired = [p for pid, p in self.by_id.items() if kept.get(pid) is not p]
        self.by_id = kept
        self.providers = tuple(sorted(kept.values(), key=lambda p: (p.priority, p.config.position)))
        self._recompute_best()
        self.changed()
        return added, retired

    # ------------------------------------------------------------------ heads

    def observe_head(self, provider: Provider, number: int, since: float | None = None) -> None:
        """A head `provider` reported (`since`: when the poll that got it was sent; None for a pushed head)."""
        if not provider.observe_head(number, since):
            return
        self.version += 1  # lag changed
        before = self.best_head
        self._recompute_best()
        best = self.best_head
        if best is not None and (before is None or best > before) and self._on_best_head is not None:
            self._on_best_head(best)

    def _recompute_best(self) -> None:
        """The best head is the highest *trusted* head: one that another provider confirms within
        `max_head_lead` blocks (a lone provider, or one alone with a head, is trusted). A provider reporting a
        head far ahead of every other — bogus, or on another fork — raises neither the best head nor, through
        it, the lag of the honest ones; once another provider comes within reach it is trusted."""
        heads = sorted((p.head for p in self.providers if p.head is not None and p.chain_id_ok is not False),
                       reverse=True)
        if len(heads) < 2:
            self.best_head = heads[0] if heads else None
            return
        lead = self.config.max_head_lead
        for i, head in enumerate(heads):
            # the next lower head is the closest other one (an equal head at i+1 confirms it outright)
            if i + 1 < len(heads) and heads[i + 1] >= head - lead:
                self.best_head = head
                return
        self.best_head = heads[-1]  # no two heads within reach of each other: the lowest (the least claim)

    def untrusted(self, provider: Provider) -> bool:
        """Its head is above the best head by more than `max_head_lead`: not believed."""
        best = self.best_head
        return best is not None and provider.head is not None and provider.head > best + self.config.max_head_lead

    def set_chain_id_ok(self, provider: Provider, ok: bool, got: int | None = None) -> None:
        if provider.chain_id_ok == ok:
            return
        provider.chain_id_ok = ok
        self.changed()
        if not ok:
            log.error(
                "provider serves the wrong chain: excluded",
                extra={"chain": self.chain, "provider": provider.id, "expected": self.config.chain_id, "got": got},
            )
            self._events.publish(
                "chain_id_mismatch", chain=self.chain, provider=provider.id, expected=self.config.chain_id, got=got
            )
        else:
            log.info("provider chain id confirmed", extra={"chain": self.chain, "provider": provider.id})
        self._recompute_best()

    # ------------------------------------------------------------------ retirement

    @staticmethod
    async def drain(provider: Provider, limit: float) -> None:
        """Close `provider` once its running attempts have finished (or after `limit` seconds)."""
        provider.retired = True
        waited = 0.0
        while provider.inflight and waited < limit:
            await asyncio.sleep(0.05)
            waited += 0.05
        await provider.close()

    async def close(self) -> None:
        await asyncio.gather(*(p.close() for p in self.providers), return_exceptions=True)
