"""The limits stage: requests too big to send anywhere are refused before they cost a provider anything.

    eth_getLogs   a block range over the chain's `max_block_range` → -32005 with the limit and the span
                  (tags count from the best known head; a blockHash query is one block)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from livechain.errors import LimitExceeded
from livechain.evm.blocks import logs_range
from livechain.pipeline.stage import Stage

if TYPE_CHECKING:
    from livechain.pipeline.call import Call


class LogsRange(Stage):
    name = "limits"
    methods = frozenset({"eth_getLogs"})

    def __init__(self, limit: int, best_head: Callable[[], int | None]) -> None:
        self.limit = limit  # 0 = no limit
        self._best_head = best_head

    def before(self, call: Call) -> None:
        limit = self.limit
        if not limit:
            return
        span = logs_range(call.request.params, self._best_head())
        if span is not None and span > limit:
            raise LimitExceeded(
                f"eth_getLogs range of {span} blocks exceeds this chain's limit of {limit}",
                data={"limit": limit, "requested": span},
            )
