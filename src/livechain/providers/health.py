"""Health checks of one provider: its chain id (at start, then every CHAIN_ID_EVERY rounds, every round while
it is wrong or unknown) and its head (`eth_blockNumber` every `health_interval`).

Checks are ordinary attempts: they go through the breaker (so an idle provider whose breaker opened is
probed back to closed by its health checks, without waiting for client traffic) and feed the statistics.
A provider that is down at startup is simply a failing check: it never blocks startup.
"""

from __future__ import annotations

import asyncio

from livechain.errors import ProviderError
from livechain.evm.events import hex_number
from livechain.providers import log
from livechain.providers.pool import ProviderPool
from livechain.providers.provider import Provider

CHAIN_ID_EVERY = 12
CHAIN_ID_BODY = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}'
BLOCK_NUMBER_BODY = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'


async def check_chain_id(pool: ProviderPool, provider: Provider, timeout: float) -> None:
    reply = await provider.attempt(CHAIN_ID_BODY, "eth_chainId", timeout)
    got = hex_number(reply.result) if reply.error is None else None
    if got is None:
        log.warning("eth_chainId gave no usable answer", extra={"chain": pool.chain, "provider": provider.id})
        return
    pool.set_chain_id_ok(provider, got == pool.config.chain_id, got)


async def check_head(pool: ProviderPool, provider: Provider, timeout: float) -> None:
    reply = await provider.attempt(BLOCK_NUMBER_BODY, "eth_blockNumber", timeout)
    number = hex_number(reply.result) if reply.error is None else None
    if number is not None:
        pool.observe_head(provider, number)


async def health_loop(pool: ProviderPool, provider: Provider) -> None:
    """Runs until cancelled or the provider is retired. Provider failures are expected and only counted."""
    rounds = 0
    while not provider.retired:
        cfg = pool.config
        timeout = min(cfg.attempt_timeout, cfg.health_interval)
        try:
            if provider.chain_id_ok is not True or rounds % CHAIN_ID_EVERY == 0:
                await check_chain_id(pool, provider, timeout)
            await check_head(pool, provider, timeout)
        except ProviderError:
            pass  # already recorded by the attempt (breaker, stats, last_errors)
        rounds += 1
        await asyncio.sleep(cfg.health_interval)
