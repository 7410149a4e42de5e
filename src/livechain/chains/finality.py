"""A chain's finalized head: the newest block that can no longer be reorganized away.

    depth mode  (`finality_depth: N`)   the best head minus N; no request
    tag mode    (the default)           `eth_getBlockByNumber("finalized")` through the chain's own routing, every
                                        `health_interval` (one request per chain, Livechain's own traffic)

In tag mode a provider that does not know the tag (it answers an error) switches the chain to depth mode with
FALLBACK_DEPTH blocks, with a log line — a chain without the tag is still served, just more conservatively;
a `null` (nothing finalized yet) is asked again. The finalized head never passes the best head and never
goes backwards.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from livechain.errors import LivechainError
from livechain.evm.events import hex_number
from livechain.jsonrpc.replies import Reply

log = logging.getLogger("livechain.chains")

FALLBACK_DEPTH = 64  # a post-merge Ethereum epoch pair; generous for most L2s' batch finality as seen by an RPC

Ask = Callable[[str, list], Awaitable[Reply]]  # the chain's own request: a provider's reply, or raises


class Finality:
    def __init__(self, chain: str, depth: int | None, best_head: Callable[[], int | None], ask: Ask) -> None:
        self.chain = chain
        self.depth = depth
        self._best_head = best_head
        self._ask = ask
        self._tagged: int | None = None

    def current(self) -> int | None:
        best = self._best_head()
        if best is None:
            return None
        if self.depth is not None:
            return max(-1, best - self.depth)
        return None if self._tagged is None else min(self._tagged, best)

    async def poll(self) -> None:
        """One look at the providers' `finalized` tag (tag mode only)."""
        if self.depth is not None:
            return
        try:
            reply = await self._ask("eth_getBlockByNumber", ["finalized", False])
        except LivechainError:
            return  # no provider answered: the next round tries again
        if reply.error is not None:
            self._fall_back(str(reply.error.get("message", "")))
            return
        number = hex_number(reply.result.get("number")) if isinstance(reply.result, dict) else None
        if number is None:
            return  # nothing finalized yet
        if self._tagged is None or number > self._tagged:
            self._tagged = number

    def _fall_back(self, why: str) -> None:
        log.warning(
            "providers give no finalized block: finality is %d blocks behind the best head", FALLBACK_DEPTH,
            extra={"chain": self.chain, "reason": why[:200]},
        )
        self.depth = FALLBACK_DEPTH

    def configure(self, depth: int | None) -> None:
        """A reload: depth mode with `depth`, or tag mode (None)."""
        self.depth = depth

    async def run(self, interval: Callable[[], float], needed: Callable[[], bool]) -> None:
        """Poll every `interval()` seconds while in tag mode and `needed()` (something reads the finalized head:
        a chain with its cache off asks providers nothing for it)."""
        while True:
            if needed():
                await self.poll()
            await asyncio.sleep(interval())
