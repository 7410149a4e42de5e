"""The state stage (archive routing): a request about state older than some providers keep goes to those that
keep it first.

A state query (eth_getBalance, eth_call, eth_getStorageAt, … at a block) `age` blocks behind the best head
prefers providers whose state reaches that far (`Provider.capabilities`: archive, or a learned state depth);
a block named by a hash nobody has placed (EIP-1898 `{"blockHash": …}` of unknown age) prefers archive
providers. It is a preference, not a ban: when none of those is eligible the others are tried — a pruned-state
refusal fails over (it is `ProviderUnavailable`) and teaches that provider its depth.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from livechain.pipeline.stage import Stage
from livechain.providers.capabilities import STATE_METHODS, state_block

if TYPE_CHECKING:
    from livechain.pipeline.call import Call


class StateView(Protocol):
    def best_head(self) -> int | None: ...

    def state_preference(self, age: int | None) -> Callable[[Any], bool]: ...


class StateDepth(Stage):
    name = "state_depth"
    methods = frozenset(STATE_METHODS)

    def __init__(self, view: StateView) -> None:
        self._view = view

    def before(self, call: Call) -> None:
        request = call.request
        _, age = state_block(request.method, request.params, self._view.best_head())
        if age != 0:
            call.narrow(self._view.state_preference(age))
