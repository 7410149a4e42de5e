"""The policy stage: the chain's method policy (`methods.allow` / `methods.deny` over the default read set)
and the subscription methods, which are not requests (`eth_subscribe` lives on a WebSocket or on
`Livechain.subscribe()`). A refused method gets -32601 with a message saying why.

The verdict depends on the method alone, so it is taken when the pipeline compiles a method's plan: the
stage applies only to the methods it refuses, and an allowed method's requests pay nothing for it (the
pipeline, and with it every plan, is rebuilt when a reload changes the policy)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from livechain.errors import MethodNotFound
from livechain.evm.methods import SUBSCRIPTION_METHODS, MethodPolicy, denial_message
from livechain.pipeline.stage import Stage

if TYPE_CHECKING:
    from livechain.pipeline.call import Call


class Policy(Stage):
    name = "policy"

    def __init__(self, chain: str, policy: MethodPolicy) -> None:
        self.chain = chain
        self.policy = policy

    def applies(self, method: str) -> bool:
        return method in SUBSCRIPTION_METHODS or not self.policy.allows(method)

    def before(self, call: Call) -> None:
        """Only ever called for a refused method (see `applies`)."""
        raise MethodNotFound(denial_message(call.request.method, self.chain))
