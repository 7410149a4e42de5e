"""The consistency stage: answers that agree with the chain as Livechain sees it — from a provider that has
reached the block asked about, never from behind what the client was already given, and checked.

before (routing)
    block-aware   a request naming a block (a number, a hash Livechain has placed, a log range's end) prefers
                  providers whose head has reached it
    freshness     a read at latest / pending (explicit or implied, eth_blockNumber, eth_gasPrice, …) prefers
                  providers that already delivered the chain's newest head
    sessions      for a client with a session (`Call.client`), reads at latest also prefer providers at or
                  above the highest block that client was already given (`pipeline.sessions`)
    Preferences, not bans: when no eligible provider qualifies, the others are tried. A provider whose head
    is above the best head by more than `max_head_lead` (not believed) never counts as having reached anything.

check (each provider's answer, before it is taken; a rejection fails over — `Outcome.LAGGING` does not trip
the breaker but is scored and shown, `Outcome.INVALID` counts as a failure)
    lag           a null block / transaction / receipt from a provider behind the block asked for (behind the
                  best head when the block is not known); an empty eth_getLogs from a provider below the
                  range's end; eth_blockNumber or the latest block below what the client was given;
                  `first_non_null` methods: any null (the next provider may have it)
    lie           an eth_blockNumber far above every other provider's head (`max_head_lead`)
    integrity     `evm.integrity.check` (header hash, the hash asked for, logs of the block, canonical hashes):
                  observe → counted on the provider, logged, the answer flows; enforce → discarded, the
                  provider quarantined (cooled down) for `integrity.quarantine`
    When every provider's answer lags, the last one is the client's (it is the best there is).

What each client was given (and eth_blockNumber raised to it) is the sessions stage's (`pipeline.sessions`),
which comes before the cache so that answers from the cache count too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from livechain.errors import AnswerInvalid, AnswerLagging, ProviderError
from livechain.evm.events import hex_number
from livechain.evm.requests import HEAD, SHAPES
from livechain.jsonrpc.replies import Reply
from livechain.pipeline.sessions import Sessions
from livechain.pipeline.stage import Stage

if TYPE_CHECKING:
    from livechain.pipeline.call import Call
    from livechain.providers.provider import Provider

log = logging.getLogger("livechain.pipeline")

LATEST = frozenset({"latest", "pending"})
#: refs that name a block Livechain may not have placed (by hash), or the head: an empty answer from a
#: provider behind the best head is lag
_PLACED = frozenset({"hash", "answer", "head", "tag"})
#: methods whose null result means "not there": from a provider behind the block, that is lag, not an answer
NULLABLE = frozenset({
    "eth_getBlockByNumber", "eth_getBlockByHash", "eth_getBlockReceipts", "eth_getTransactionByHash",
    "eth_getTransactionReceipt", "eth_getTransactionByBlockHashAndIndex", "eth_getTransactionByBlockNumberAndIndex",
    "eth_getBlockTransactionCountByHash", "eth_getBlockTransactionCountByNumber", "eth_getUncleByBlockHashAndIndex",
    "eth_getUncleByBlockNumberAndIndex",
})
#: methods `evm.integrity.check` verifies
VERIFIED = frozenset({
    "eth_getBlockByNumber", "eth_getBlockByHash", "eth_getTransactionByHash", "eth_getTransactionReceipt",
    "eth_getBlockReceipts", "eth_getLogs",
})
#: (method, params, result, canonical hash by number) → a reason the answer is wrong, or None
Verify = Callable[[str, Any, Any, Callable[[int], str | None]], str | None]


class ConsistencyView(Protocol):
    def best_head(self) -> int | None: ...

    def canonical_number(self, block_hash: str) -> int | None: ...

    def canonical_hash(self, number: int) -> str | None: ...

    def observed(self, provider: Provider, number: int) -> None:
        """An answer showed `provider` has reached block `number` (its head, if higher than known)."""
        ...

    def heads_known(self) -> int:
        """How many providers of the chain have reported a head."""
        ...


class Consistency(Stage):
    name = "consistency"

    def __init__(
        self, view: ConsistencyView, sessions: Sessions | None, *, lead: int = 64,
        first_non_null: frozenset[str] = frozenset(), verify: Verify | None = None, enforce: bool = False,
        quarantine: float = 30.0,
    ) -> None:
        """`sessions`: per-client floors (None: off). `lead`: `max_head_lead`, how far above the best head a
        provider's head may be and still be believed. `verify`: the integrity check (None: off); `enforce`:
        a failed check discards the answer (else it is only counted); `quarantine`: seconds an enforced
        failure keeps the provider aside."""
        self._view = view
        self._lead = lead
        # the preference of the last (need, ceiling): one function while the head stays, not one per request
        self._reached: tuple[int, int, Callable[[Provider], bool]] | None = None
        self._sessions = sessions
        self._first_non_null = first_non_null
        self._verify = verify
        self._enforce = enforce
        self._quarantine = quarantine
        self.methods = frozenset(SHAPES) | first_non_null
        #: the methods whose answers are judged (`judge`)
        self._checked = NULLABLE | VERIFIED | first_non_null | {"eth_blockNumber"}

    # ------------------------------------------------------------------ routing

    def before(self, call: Call) -> None:
        method = call.request.method
        view = self._view
        best = view.best_head()
        need: int | None = None
        latest = False
        if SHAPES.get(method) == HEAD:  # eth_blockNumber, eth_gasPrice …: about the head, whatever the params
            need, latest = best, True
        elif (ref := call.read()) is not None:
            kind = ref.kind
            if kind == "number":
                need = ref.number
            elif kind == "head":
                need, latest = best, True
            elif kind == "tag":
                if ref.tag in LATEST:
                    need, latest = best, True
            elif kind == "hash":
                need = view.canonical_number(ref.hash)  # type: ignore[arg-type]
            elif kind == "range":
                high = ref.high
                if high.kind == "number":  # type: ignore[union-attr]
                    need = high.number  # type: ignore[union-attr]
                elif high.kind == "tag" and high.tag in LATEST:  # type: ignore[union-attr]
                    need, latest = best, True
                elif high.kind == "hash":  # type: ignore[union-attr]
                    need = view.canonical_number(high.hash)  # type: ignore[union-attr]
        sessions = self._sessions
        client = call.client
        if latest and sessions is not None and client is not None:
            floor = sessions.floor(client)
            if floor is not None and (need is None or floor > need):
                need = floor
        if need is not None:
            call.need = need
            ceiling = (best if best is not None else need) + self._lead
            reached = self._reached
            if reached is None or reached[0] != need or reached[1] != ceiling:
                reached = self._reached = (need, ceiling, lambda p: p.head is not None and need <= p.head <= ceiling)
            call.narrow(reached[2])
        if method in self._checked:
            call.check = partial(self.judge, call)

    # ------------------------------------------------------------------ each provider's answer

    def judge(self, call: Call, reply: Reply, provider: Provider) -> ProviderError | None:
        if reply.error is not None:
            return None
        request = call.request
        method = request.method
        result = reply.result
        if method == "eth_blockNumber":
            return self._judge_head(call, reply, provider)
        need = call.need
        best = self._view.best_head()
        # the block the provider must have reached for an empty answer to be the truth: the one asked for (or,
        # when nobody has reached it, the best head); a block named by a hash Livechain has not placed: the head
        target = need if need is not None else (best if call.ref is not None and call.ref.kind in _PLACED else None)
        if target is not None and best is not None and target > best:
            target = best
        head = provider.head
        if result is None:
            if method in self._first_non_null:
                return AnswerLagging(f"{provider.id}: null for {method}", provider=provider.id, reply=reply)
            if method in NULLABLE and target is not None and (head is None or head < target):
                return AnswerLagging(f"{provider.id}: null for {method}, behind block {target}",
                                     provider=provider.id, reply=reply)
            return None
        if method == "eth_getLogs" and result == [] and target is not None and (head is None or head < target):
            return AnswerLagging(f"{provider.id}: no logs, head below block {target}", provider=provider.id,
                                 reply=reply)
        if method == "eth_getBlockByNumber" and type(result) is dict and _asked_latest(request.params):
            number = hex_number(result.get("number"))
            if number is not None:
                if need is not None and number < need:
                    return AnswerLagging(f"{provider.id}: latest block {number} below {need}", provider=provider.id,
                                         reply=reply)
                self._view.observed(provider, number)
        if self._verify is not None and method in VERIFIED:
            return self._judge_integrity(method, request.params, result, provider)
        return None

    def _judge_head(self, call: Call, reply: Reply, provider: Provider) -> ProviderError | None:
        number = hex_number(reply.result)
        if number is None:
            return None
        view = self._view
        best = view.best_head()
        if best is not None and number > best + self._lead and view.heads_known() >= 2:
            return AnswerInvalid(f"{provider.id}: head {number} far above every other provider's ({best})",
                                 provider=provider.id)
        need = call.need
        if need is not None and number < need and call.client is not None:
            return AnswerLagging(f"{provider.id}: head {number} below {need}, already given", provider=provider.id,
                                 reply=reply)
        if provider.head is None or number > provider.head:
            view.observed(provider, number)
        return None

    def _judge_integrity(self, method: str, params: Any, result: Any, provider: Provider) -> ProviderError | None:
        try:
            reason = self._verify(method, params, result, self._view.canonical_hash)  # type: ignore[misc]
        except Exception:  # a bug in a check must not fail the request: logged, the answer flows
            log.exception("integrity check failed to run", extra={"method": method, "provider": provider.id})
            return None
        if reason is None:
            return None
        provider.failed_check(method, reason, self._quarantine if self._enforce else None)
        if self._enforce:
            return AnswerInvalid(f"{provider.id}: {reason}", provider=provider.id)
        return None


def _asked_latest(params: Any) -> bool:
    return isinstance(params, list) and bool(params) and params[0] in LATEST
