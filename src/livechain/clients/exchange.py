"""One client message answered through a chain, the same for every entry point.

    read(body, client)               parse (-32700 / -32600 for the body as a whole) and charge the client
                                     one token per request (batch items count one each)
    answer_one(chain, request, ...)  Chain.call → the reply bytes (the client's id), who answered, attempts;
                                     any Livechain error becomes its JSON-RPC error reply here
    answer_batch(chain, items, ...)  the batch limit, then every item concurrently; replies in order,
                                     invalid items answered with their error, notifications left out

`local` lets a persistent connection answer its own methods itself (eth_subscribe / eth_unsubscribe): a
`Local` names them and answers them (reply bytes, None for a notification).
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from livechain.chains.chain import Chain
from livechain.clients.access import Client
from livechain.errors import LivechainError
from livechain.jsonrpc.messages import Invalid, Request, error_body, parse_body
from livechain.pipeline import Route

Parsed = Request | Invalid | list[Request | Invalid]


class Local(Protocol):
    """A persistent connection's own methods (not sent through the chain's pipeline)."""

    methods: frozenset[str]

    async def answer_local(self, request: Request) -> bytes | None:
        """The reply bytes; None for a notification."""
        ...


def read(body: bytes, client: Client) -> Parsed:
    """The parsed message, charged to `client`. Raises ParseError / InvalidRequest (the body as a whole is
    unusable) or RateLimited."""
    parsed = parse_body(body)
    client.charge(len(parsed) if type(parsed) is list else 1)
    return parsed


async def answer_one(
    chain: Chain, request: Request, route: Route, who: str | None, fresh: bool = False, owner: str | None = None
) -> tuple[bytes, str, int, str]:
    """(reply bytes, provider id or "", attempts, what the cache did). Never raises a Livechain error: it is
    the reply."""
    try:
        answer = await chain.call(request, route, who, fresh, owner)
    except LivechainError as exc:
        return error_body(exc, request.reply_id), "", getattr(exc, "attempts", 0), "bypass"
    return answer.body, answer.provider, answer.attempts, answer.cache


async def answer_batch(
    chain: Chain, items: list[Request | Invalid], route: Route, who: str | None, local: Local | None = None,
    fresh: bool = False, owner: str | None = None,
) -> tuple[bytes | None, str, int, str]:
    """(reply bytes or None when only notifications were sent, the providers that answered joined by ",",
    attempts in all, what the cache did for the items joined by ","). Over the batch limit: one -32005
    error for the whole batch."""
    try:
        chain.check_batch(len(items))
    except LivechainError as exc:
        return error_body(exc), "", 0, "bypass"

    async def one(item: Request | Invalid) -> tuple[bytes | None, str, int, str]:
        if type(item) is Invalid:
            return error_body(item.error, item.id), "", 0, "bypass"
        request: Request = item  # type: ignore[assignment]
        if local is not None and request.method in local.methods:
            return await local.answer_local(request), "", 0, "bypass"
        body, provider, attempts, cache = await answer_one(chain, request, route, who, fresh, owner)
        return (None if request.notification else body), provider, attempts, cache

    results = await asyncio.gather(*(one(item) for item in items))
    parts = [body for body, _, _, _ in results if body is not None]
    providers = ",".join(sorted({provider for _, provider, _, _ in results if provider}))
    caches = ",".join(sorted({cache for _, _, _, cache in results}))
    attempts = sum(n for _, _, n, _ in results)
    return (b"[" + b",".join(parts) + b"]" if parts else None), providers, attempts, caches


def refusal(parsed: Parsed, exc: LivechainError) -> bytes:
    """One error per request that has an id, so a client can match (and retry) each; one with id null when
    none has."""
    if type(parsed) is not list:
        return error_body(exc, parsed.reply_id if type(parsed) is Request else parsed.id)  # type: ignore[union-attr]
    ids: list[Any] = [item.id for item in parsed if not (type(item) is Request and item.notification)]
    if ids:
        return b"[" + b",".join(error_body(exc, rid) for rid in ids) + b"]"
    return error_body(exc)
