"""The request pipeline: the one path of a JSON-RPC request, whatever the entry point.

    edge (HTTP | WebSocket | in-process) → access (key, rate, per-address: `livechain.clients`) →
    Chain.call(request, route) → Pipeline.run(call):

      stage      module               does                                              methods
      policy     pipeline.policy      refuses what the chain does not serve (-32601)    every method
      limits     pipeline.limits      refuses what is too big (the eth_getLogs range)    eth_getLogs
      (cache, coalescing, consistency: the stages to come, between limits and forward)
      forward    routing.forwarder    eligible providers → strategy → attempts within the deadline,
                                      hedging, failover (the terminal: not a stage)
      fixes      pipeline.fixes       what a client must never see: eth_blockNumber    eth_blockNumber,
                                      going backwards, "already known" for a resent     eth_sendRawTransaction
                                      transaction
      record     pipeline.record      client traffic (requests/s, error share), a log
                                      line for a request no provider could serve         every method

A stage is a small unit (`pipeline.stage.Stage`): `before(call)` may refuse (raise a `ClientError`) or
answer (return an `Answer`, and the request is not forwarded); `after(call, answer)` may replace the answer;
`methods` names the methods it concerns (None: all). The pipeline compiles, per method, the ordered hooks
that apply (cached), so a request pays only for the stages that concern it. Onion order: `after` hooks run
in reverse order of the stages; when a stage's `before` answers, only the `after` hooks of the stages before
it run.

Errors leave as `livechain.errors` classes and become JSON-RPC or HTTP once, at the edge. A bug inside a stage
is logged with its traceback and leaves as `InternalError` — the client sees "internal error", never a
traceback.
"""

from livechain.pipeline.call import Call, Route
from livechain.pipeline.pipeline import Pipeline
from livechain.pipeline.stage import Stage

__all__ = ["Call", "Pipeline", "Route", "Stage"]
