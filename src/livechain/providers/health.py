"""Health checks of one provider: its chain id (at start, then every CHAIN_ID_EVERY rounds, every round while
it is wrong or unknown), its head (`eth_blockNumber` every `health_interval`), and once, for `archive: auto`,
whether it keeps old state (`eth_getBalance` at block 1).

Checks are ordinary attempts: they go through the breaker (so an idle provider whose breaker opened is
probed back to closed by its health checks, without waiting for client traffic) and feed the statistics.
A provider that is down at startup is simply a failing check: it never blocks startup.
"""

from __future__ import annotations

import asyncio

from livechain.errors import ProviderError, ProviderUnavailable
from livechain.evm.events import hex_number
from livechain.providers import log
from livechain.providers.pool import ProviderPool
from livechain.providers.provider import Provider

CHAIN_ID_EVERY = 12
CHAIN_ID_BODY = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}'
BLOCK_NUMBER_BODY = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'
STATE_PROBE_BODY = (
    b'{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["0x0000000000000000000000000000000000000000","%s"]}'
)
PROBE_WINDOW = 4096  # how far back the start probe searches a pruned provider's state depth


async def check_chain_id(pool: ProviderPool, provider: Provider, timeout: float) -> None:
    reply = await provider.attempt(CHAIN_ID_BODY, "eth_chainId", timeout, own=True)
    got = hex_number(reply.result) if reply.error is None else None
    if got is None:
        log.warning("eth_chainId gave no usable answer", extra={"chain": pool.chain, "provider": provider.id})
        return
    pool.set_chain_id_ok(provider, got == pool.config.chain_id, got)


async def check_head(pool: ProviderPool, provider: Provider, timeout: float) -> None:
    """Its head, polled: authoritative (a lower head than known replaces it, unless a newer one arrived
    while the poll was out)."""
    sent = pool.clock.monotonic()
    reply = await provider.attempt(BLOCK_NUMBER_BODY, "eth_blockNumber", timeout, own=True)
    number = hex_number(reply.result) if reply.error is None else None
    if number is not None:
        pool.observe_head(provider, number, since=sent)


async def _serves_state_at(provider: Provider, number: int, timeout: float) -> bool | None:
    """Does it answer state at block `number`? None when the attempt failed for another reason."""
    body = STATE_PROBE_BODY % hex(number).encode()
    try:
        reply = await provider.attempt(body, "eth_getBalance", timeout, own=True)
    except ProviderUnavailable:
        return False
    except ProviderError:
        return None
    return reply.error is None


async def probe_state(pool: ProviderPool, provider: Provider, timeout: float) -> bool:
    """Once, for an `archive: auto` provider: can it answer state at block 1 (as old as the chain has)? When
    not, a binary search over the last PROBE_WINDOW blocks finds how far back it can (at most ~12 requests,
    once). True when done; False while the chain is too young to tell, or the probe met another failure
    (asked again next round)."""
    best = pool.best_head
    if best is None or best < 2:
        return False
    oldest = await _serves_state_at(provider, 1, timeout)
    if oldest is None:
        return False
    if oldest:
        provider.capabilities.probed(None)
        return True
    refused, served = max(1, best - PROBE_WINDOW), best  # refused: not served; served: served (latest)
    if refused > 1 and await _serves_state_at(provider, refused, timeout):
        provider.capabilities.probed(best - refused)  # reaches at least the whole window
        return True
    while served - refused > 1:
        middle = (refused + served) // 2
        found = await _serves_state_at(provider, middle, timeout)
        if found is None:
            return False
        refused, served = (refused, middle) if found else (middle, served)
    provider.capabilities.probed(best - served)
    return True


async def health_loop(pool: ProviderPool, provider: Provider) -> None:
    """Runs until cancelled or the provider is retired. Provider failures are expected and only counted."""
    rounds = 0
    probed = provider.capabilities.archive is not None
    while not provider.retired:
        cfg = pool.config
        timeout = min(cfg.attempt_timeout, cfg.health_interval)
        try:
            if (provider.chain_id_ok is not True or rounds % CHAIN_ID_EVERY == 0) and provider.own_allowed():
                await check_chain_id(pool, provider, timeout)
            if provider.own_allowed():  # past `own_rate` a round is skipped: Livechain's own traffic is bounded
                await check_head(pool, provider, timeout)
            if not probed and provider.chain_id_ok:
                probed = await probe_state(pool, provider, timeout)
        except ProviderError:
            pass  # already recorded by the attempt (breaker, stats, last_errors)
        rounds += 1
        await asyncio.sleep(cfg.health_interval)
