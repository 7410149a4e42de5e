"""Forward one JSON-RPC request: select, then try providers in order within the deadline, failing over.

- Deadline: the whole request's budget (`chain.deadline`); each attempt gets min(attempt_timeout, what is
  left). Up to `max_attempts` providers are tried, each at most once.
- A provider's own JSON-RPC error (revert, invalid params) is the answer: returned, never failed over.
- eth_sendRawTransaction fails over too (a resent signed transaction is harmless); "already known" from a
  later provider means an earlier attempt delivered it: success with the transaction's hash.
- eth_blockNumber is monotonic per chain: an answer lower than one already given is raised to it (the
  users' classic complaint with several providers a block apart).
- When every attempt failed: the last provider's own JSON-RPC reply if one was a real answer (e.g. every
  provider says the data is unavailable), else one error saying how many attempts failed — never a URL.
- Cancellation (the client went away) propagates; it is never counted against a provider.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from Crypto.Hash import keccak

from livechain.clock import SYSTEM_CLOCK, Clock
from livechain.errors import AllAttemptsFailed, DeadlineExceeded, NoProviderAvailable, ProviderError
from livechain.events import EventBus
from livechain.evm.errors import ErrorMeaning, classify
from livechain.evm.events import hex_number
from livechain.evm.methods import SEND_RAW_TRANSACTION
from livechain.jsonrpc.messages import Request, result_response
from livechain.jsonrpc.replies import Reply
from livechain.providers.pool import ProviderPool
from livechain.providers.provider import Provider
from livechain.routing.selection import eligible
from livechain.routing.strategies import Strategy

WIRE_ID = 1
BLOCK_NUMBER = "eth_blockNumber"


@dataclass(slots=True)
class Forwarded:
    body: bytes  # the reply for the client (its own id)
    provider: str  # id of the provider whose answer this is ("" when none answered)
    attempts: int
    reply: Reply | None = None  # the decoded reply, for callers that need the value (backfill)


def _tx_hash(params: Any) -> str | None:
    if isinstance(params, list) and params and isinstance(params[0], str) and params[0].startswith("0x"):
        try:
            raw = bytes.fromhex(params[0][2:])
        except ValueError:
            return None
        return "0x" + keccak.new(digest_bits=256, data=raw).hexdigest()
    return None


class Forwarder:
    def __init__(self, pool: ProviderPool, events: EventBus, clock: Clock = SYSTEM_CLOCK) -> None:
        self.pool = pool
        self._events = events
        self._clock = clock
        self.highest_block_number = -1

    def _monotonic_block_number(self, result: object) -> str | None:
        """eth_blockNumber never goes backwards for clients of this chain: a provider a block or two behind
        (within max_lag_blocks) is answered with the highest number already returned. None = pass through."""
        number = hex_number(result)
        if number is None:
            return None
        if number >= self.highest_block_number:
            self.highest_block_number = number
            return None
        return hex(self.highest_block_number)

    def plan(self, method: str, strategy: Strategy, pinned: Provider | None = None) -> list[Provider]:
        if pinned is not None:
            return [pinned]
        order = strategy.order(eligible(self.pool, method, self._clock), method)
        return order[: self.pool.config.max_attempts]

    async def forward(self, request: Request, strategy: Strategy, pinned: Provider | None = None) -> Forwarded:
        cfg = self.pool.config
        clock = self._clock
        deadline = clock.monotonic() + cfg.deadline
        method = request.method
        plan = self.plan(method, strategy, pinned)
        if not plan:
            raise NoProviderAvailable(
                f"no provider available for {method} on {self.pool.chain} (all circuits open or excluded)"
            )
        body = request.upstream_body(WIRE_ID if request.needs_wire_id else None)
        last: ProviderError | None = None
        answered: ProviderError | None = None  # the last failure that came with the provider's own reply
        attempts = 0
        for provider in plan:
            remaining = deadline - clock.monotonic()
            if remaining <= 0:
                raise DeadlineExceeded(attempts, cfg.deadline)
            attempts += 1
            try:
                reply = await provider.attempt(body, method, min(cfg.attempt_timeout, remaining))
            except ProviderError as exc:
                last = exc
                if isinstance(exc.reply, Reply):
                    answered = exc
                if attempts < len(plan):
                    self._events.publish(
                        "failover", chain=self.pool.chain, provider=provider.id, reason=exc.kind, method=method
                    )
                continue
            if method == BLOCK_NUMBER and reply.error is None:
                clamped = self._monotonic_block_number(reply.result)
                if clamped is not None:
                    return Forwarded(result_response(request.reply_id, clamped), provider.id, attempts)
            if attempts > 1 and method == SEND_RAW_TRANSACTION and reply.error is not None:
                if classify(reply.error) is ErrorMeaning.ALREADY_KNOWN:
                    tx_hash = _tx_hash(request.params)
                    if tx_hash is not None:
                        return Forwarded(result_response(request.reply_id, tx_hash), provider.id, attempts)
            return Forwarded(reply.for_client(request.reply_id), provider.id, attempts, reply)
        if answered is not None:
            reply = answered.reply
            return Forwarded(reply.for_client(request.reply_id), answered.provider, attempts, reply)
        if clock.monotonic() >= deadline:
            raise DeadlineExceeded(attempts, cfg.deadline)
        raise AllAttemptsFailed(attempts, last)
