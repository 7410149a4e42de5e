"""JSON-RPC over HTTP: `POST /rpc/{chain}`, `/rpc/{strategy}/{chain}`, `/rpc/provider/{id}/{chain}`.

This is where Livechain errors become JSON-RPC error objects (with HTTP 200, except an unknown chain:
404, and an oversized body: 413 — done by the HTTP edge). Single requests forward the client's own bytes;
batch items are routed independently and concurrently, answered in order, notifications left out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from livechain.chains.chain import Chain
from livechain.chains.registry import ChainRegistry
from livechain.errors import (
    InvalidRequest,
    LimitExceeded,
    LivechainError,
    MethodNotFound,
    RoutingError,
    UnknownChain,
)
from livechain.evm.blocks import logs_range
from livechain.evm.methods import SUBSCRIPTION_METHODS, denial_message
from livechain.jsonrpc.messages import NO_ID, Invalid, Request, error_body, parse_body
from livechain.providers.provider import Provider
from livechain.routing.strategies import Strategy
from livechain.server.http import Response

log = logging.getLogger("livechain.server")

INTERNAL = {"code": -32603, "message": "internal error"}


def check_request(chain: Chain, request: Request, *, over_http: bool) -> None:
    """Policy and limits for one request. Raises a ClientError."""
    method = request.method
    if (over_http and method in SUBSCRIPTION_METHODS) or not chain.policy.allows(method):
        raise MethodNotFound(denial_message(method, chain.name))
    if method == "eth_getLogs":
        limit = chain.config.max_block_range
        if limit:
            span = logs_range(request.params, chain.pool.best_head)
            if span is not None and span > limit:
                raise LimitExceeded(
                    f"eth_getLogs range of {span} blocks exceeds this chain's limit of {limit}",
                    data={"limit": limit, "requested": span},
                )


class Outcome:
    """What one request produced: reply bytes, who answered, how many attempts."""

    __slots__ = ("attempts", "body", "provider")

    def __init__(self, body: bytes, provider: str = "", attempts: int = 0) -> None:
        self.body = body
        self.provider = provider
        self.attempts = attempts


async def run_one(chain: Chain, request: Request, strategy: Strategy, pinned: Provider | None, *, over_http: bool) -> Outcome:
    """Check and forward one request; every failure becomes its JSON-RPC error reply."""
    try:
        check_request(chain, request, over_http=over_http)
        done = await chain.forwarder.forward(request, strategy, pinned)
        chain.traffic.record(True)
        return Outcome(done.body, done.provider, done.attempts)
    except LivechainError as exc:
        chain.traffic.record(False)
        attempts = getattr(exc, "attempts", 0)
        if isinstance(exc, RoutingError):
            log.warning(
                "request failed: %s", exc.message, extra={"chain": chain.name, "method": request.method}
            )
        return Outcome(error_body(exc, request.reply_id), "", attempts)
    except Exception:
        log.exception("unexpected error while forwarding", extra={"chain": chain.name, "method": request.method})
        return Outcome(error_body(_Internal(), request.reply_id))


class _Internal(LivechainError):
    def __init__(self) -> None:
        super().__init__("internal error")


_ATTEMPTS = tuple(str(n) for n in range(16))


def rpc_headers(provider: str, attempts: int) -> list[tuple[str, str]]:
    count = _ATTEMPTS[attempts] if 0 <= attempts < 16 else str(attempts)
    if provider:
        return [("x-livechain-attempts", count), ("x-livechain-provider", provider)]
    return [("x-livechain-attempts", count)]


class RpcEndpoint:
    def __init__(self, registry: ChainRegistry) -> None:
        self.registry = registry

    def resolve(self, chain_key: str) -> Chain:
        chain = self.registry.resolve(chain_key)
        if chain is None:
            raise UnknownChain(f"unknown chain: {chain_key[:64]}")
        return chain

    async def handle(
        self,
        chain_key: str,
        body: bytes,
        *,
        strategy: str | None = None,
        provider_id: str | None = None,
        charge: Callable[[int], None] | None = None,
    ) -> Response:
        """`charge(n)` takes n rate-limit tokens (one per request of the body) or raises LimitExceeded."""
        try:
            chain = self.resolve(chain_key)
            pinned = None
            if provider_id is not None:
                pinned = chain.provider(provider_id)
                if pinned is None:
                    raise UnknownChain(f"unknown provider {provider_id[:64]} on chain {chain.name}")
            parsed = parse_body(body)
            if charge is not None:
                charge(len(parsed) if isinstance(parsed, list) else 1)
        except LivechainError as exc:
            response = Response(exc.http_status, error_body(exc))
            if isinstance(exc.data, dict) and "retry_after" in exc.data:
                response.headers.append(("retry-after", str(exc.data["retry_after"])))
            return response
        chosen = chain.strategies[strategy] if strategy else chain.strategy
        if type(parsed) is Request:  # the common case, answered here: one coroutine less per request
            outcome = await run_one(chain, parsed, chosen, pinned, over_http=True)
            headers = rpc_headers(outcome.provider, outcome.attempts)
            if parsed.id is NO_ID:  # a notification
                return Response(204, headers=headers)
            return Response(200, outcome.body, headers=headers)
        if isinstance(parsed, Request):
            return await self._single(chain, parsed, chosen, pinned)
        if isinstance(parsed, Invalid):
            return Response(200, error_body(parsed.error, parsed.id))
        return await self._batch(chain, parsed, chosen, pinned)

    async def _single(self, chain: Chain, request: Request, strategy: Strategy, pinned: Provider | None) -> Response:
        outcome = await run_one(chain, request, strategy, pinned, over_http=True)
        if request.notification:
            return Response(204, headers=rpc_headers(outcome.provider, outcome.attempts))
        return Response(200, outcome.body, headers=rpc_headers(outcome.provider, outcome.attempts))

    async def _batch(
        self, chain: Chain, items: list[Request | Invalid], strategy: Strategy, pinned: Provider | None
    ) -> Response:
        limit = chain.config.batch_limit
        if len(items) > limit:
            exc = LimitExceeded(f"batch of {len(items)} requests exceeds this chain's limit of {limit}")
            return Response(200, error_body(exc))
        slots: list[Any] = []
        jobs = []
        for item in items:
            if isinstance(item, Invalid):
                slots.append(error_body(item.error, item.id))
            else:
                slots.append(len(jobs))
                jobs.append(run_one(chain, item, strategy, pinned, over_http=True))
        outcomes: list[Outcome] = list(await asyncio.gather(*jobs)) if jobs else []
        parts: list[bytes] = []
        job = 0
        for item, slot in zip(items, slots, strict=True):
            if isinstance(slot, bytes):
                parts.append(slot)
                continue
            outcome = outcomes[job]
            job += 1
            if not item.notification:  # type: ignore[union-attr]
                parts.append(outcome.body)
        providers = ",".join(sorted({o.provider for o in outcomes if o.provider}))
        headers = rpc_headers(providers, sum(o.attempts for o in outcomes))
        if not parts:
            return Response(204, headers=headers)
        return Response(200, b"[" + b",".join(parts) + b"]", headers=headers)


def invalid_route() -> bytes:
    return error_body(InvalidRequest("invalid request: JSON-RPC is served at POST /rpc/{chain}"))
