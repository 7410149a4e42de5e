"""What a provider can answer, configured and learned while running — routing reads it so that a request goes
only where it can be answered (no failover round trip for each such request).

    logs_limit     the eth_getLogs block range it accepts: `max_logs_range`, or learned from a refusal (the
                   number the refusal names, else half the range it refused); None: not known to be limited
    split_logs     may a wider range be split into several requests to it (`split_logs`; false for a
                   pay-per-request plan: it then only gets ranges it accepts)
    archive        True: state of any block; False: recent state only (`state_depth` blocks back, learned
                   from "missing trie node" / pruned-state refusals, 128 until then — geth's default); None
                   ("auto" not settled yet): assumed to serve what it is asked, until a refusal or the probe says

    methods        the methods it was seen not to serve ("method not found / not supported"), each with when;
                   routing leaves it out for them (`serves`) until `UNSUPPORTED_RETRY` has passed, then tries
                   it once more (a plan upgrade, a node restarted with the namespace on)
    subscriptions  eth_subscribe kinds its WebSocket refused, with when
    batch          does it take JSON-RPC batches (None: not tried), and the largest size it took

The provider's attempt feeds the refusals in (`refused_logs_range`, `refused_old_state`, `refused_method`);
the health loop
probes an "auto" provider once at start (`probed`): state at block 1, then — when that is refused — a binary
search of the recent blocks for how far back its state reaches.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson

from livechain.config.schema import ProviderConfig
from livechain.evm.blocks import block_number, logs_range

#: how long a method a provider refused is kept from it before it is tried again
UNSUPPORTED_RETRY = 600.0
#: how far back a non-archive node keeps state by default (geth keeps the last 128 blocks' state)
DEFAULT_STATE_DEPTH = 128
#: methods whose answer is state at a block, with the position of that block parameter
STATE_METHODS: dict[str, int] = {
    "eth_getBalance": 1, "eth_getCode": 1, "eth_getTransactionCount": 1, "eth_getStorageAt": 2, "eth_getProof": 2,
    "eth_call": 1, "eth_estimateGas": 1, "eth_createAccessList": 1,
}


class Capabilities:
    def __init__(
        self, config: ProviderConfig, head: Callable[[], int | None], clock: Callable[[], float] | None = None,
        wall: Callable[[], float] | None = None,
    ) -> None:
        """`clock`: monotonic seconds (when a refusal expires); `wall`: timestamps shown in the API."""
        self._head = head
        self._clock = clock or time.monotonic
        self._wall = wall or time.time
        #: method → (monotonic time it was refused, wall time) — left out until UNSUPPORTED_RETRY has passed
        self.unsupported: dict[str, tuple[float, float]] = {}
        #: eth_subscribe kind → wall time its WebSocket refused it
        self.refused_subscriptions: dict[str, float] = {}
        self.batch: bool | None = None
        self.batch_limit: int | None = None
        self.learned_logs_limit: int | None = None
        self.state_depth: int | None = None  # learned: the oldest state age it was seen to refuse, minus one
        self.configure(config)

    def configure(self, config: ProviderConfig) -> None:
        self.configured_logs_limit = config.max_logs_range
        self.split_logs = config.split_logs
        self.archive: bool | None = None if config.archive == "auto" else config.archive

    # ------------------------------------------------------------------ eth_getLogs

    @property
    def logs_limit(self) -> int | None:
        if self.configured_logs_limit is not None:
            return self.configured_logs_limit
        return self.learned_logs_limit

    def accepts_logs(self, span: int) -> bool:
        limit = self.logs_limit
        return limit is None or span <= limit

    def refused_logs_range(self, limit: int | None, body: bytes) -> None:
        """An eth_getLogs of `body` was refused as too wide; `limit`: what the refusal said it accepts."""
        if limit is None:
            span = _span(body, self._head())
            if span is None or span < 2:
                return
            limit = span // 2
        if self.learned_logs_limit is None or limit < self.learned_logs_limit:
            self.learned_logs_limit = limit

    # ------------------------------------------------------------------ methods

    def refused_method(self, method: str) -> bool:
        """It answered "method not found / not supported" for `method`; True when that is news."""
        new = method not in self.unsupported
        self.unsupported[method] = (self._clock(), self._wall())
        return new

    def supports(self, method: str) -> bool:
        """False while a refusal of `method` is recent (then it is tried again)."""
        refused = self.unsupported.get(method)
        if refused is None:
            return True
        if self._clock() - refused[0] >= UNSUPPORTED_RETRY:
            del self.unsupported[method]
            return True
        return False

    def refused_subscription(self, kind: str) -> None:
        self.refused_subscriptions[kind] = self._wall()

    def batched(self, size: int, ok: bool) -> None:
        """A batch of `size` requests was taken (ok) or refused."""
        if ok:
            self.batch = True
            self.batch_limit = max(self.batch_limit or 0, size)
        elif self.batch_limit is None or size <= self.batch_limit:
            self.batch = False if size <= 1 or self.batch_limit is None else self.batch
            self.batch_limit = None if self.batch is False else max(1, size - 1)
        else:
            self.batch_limit = max(1, min(self.batch_limit, size - 1))

    # ------------------------------------------------------------------ state depth

    def serves_state(self, age: int | None) -> bool:
        """Can it answer state `age` blocks behind its chain's best head (None: a block of unknown age)?"""
        if self.archive is True:
            return True
        if age is None:
            return False  # a block named by a hash nobody has placed: only an archive provider for sure
        if self.archive is False:
            return age <= (self.state_depth if self.state_depth is not None else DEFAULT_STATE_DEPTH)
        return self.state_depth is None or age <= self.state_depth

    def refused_old_state(self, age: int) -> None:
        if age < 1:
            return  # a block above its own head: lag, not pruning
        self.archive = False
        depth = age - 1
        if self.state_depth is None or depth < self.state_depth:
            self.state_depth = depth

    def probed(self, depth: int | None) -> None:
        """The start probe's finding: state served `depth` blocks back at most (None: even block 1's)."""
        if depth is None:  # the chain's whole history; a node that prunes later teaches so by refusing
            if self.archive is None:
                self.archive = True
            return
        self.archive = False
        self.state_depth = depth

    def snapshot(self) -> dict[str, Any]:
        return {"logs_limit": self.logs_limit, "logs_limit_learned": self.learned_logs_limit is not None
                and self.configured_logs_limit is None, "split_logs": self.split_logs,
                "archive": self.archive, "state_depth": self.state_depth,
                "unsupported": {m: round(wall, 3) for m, (_, wall) in sorted(self.unsupported.items())},
                "namespaces_unsupported": sorted({m.split("_", 1)[0] for m in self.unsupported
                                                  if m.startswith(("debug_", "trace_"))}),
                "subscriptions_refused": {k: round(v, 3) for k, v in sorted(self.refused_subscriptions.items())},
                "batch": self.batch, "batch_limit": self.batch_limit}


def _span(body: bytes, head: int | None) -> int | None:
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return logs_range(message.get("params"), head) if isinstance(message, dict) else None


def state_block(method: str, params: Any, best_head: int | None) -> tuple[bool, int | None]:
    """(is this a state query, its block's age behind `best_head`: None when unknown, e.g. a block hash)."""
    position = STATE_METHODS.get(method)
    if position is None:
        return False, None
    if not isinstance(params, list) or len(params) <= position:
        return True, 0  # defaulted to latest
    value = params[position]
    if isinstance(value, dict):  # EIP-1898
        value = value.get("blockNumber", value.get("blockHash"))
    if isinstance(value, str) and len(value) == 66:
        return True, None  # a block hash: its age is not known here
    number = block_number(value, best_head)
    if number is None or best_head is None:
        return True, 0 if value in (None, "latest", "pending", "safe") else None
    return True, max(0, best_head - number)
