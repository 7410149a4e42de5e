"""The HTTP JSON-RPC edge: `POST /rpc/{chain}`, `/rpc/{strategy}/{chain}`, `/rpc/provider/{id}/{chain}`
(each with an optional `/{key}`).

Framing only: the path names the chain and the route, `clients.exchange` reads the body (charged to the
client) and answers it through `Chain.call` — single requests with the client's own bytes forwarded, batch
items concurrently and in order. JSON-RPC errors travel with HTTP 200; what the edge refuses as a whole (an
unknown chain, a rate limit, a body that is not JSON-RPC) goes through `messages.error_response`.
Responses carry `X-Livechain-Provider` (who answered; for a batch, every provider that did),
`X-Livechain-Attempts` and `X-Livechain-Cache` (hit | miss | coalesced | bypass; for a batch, each that
occurred). `Cache-Control: no-cache` on the request: answered by a provider, and the cache refreshed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

from livechain.chains.chain import Chain
from livechain.chains.registry import ChainRegistry
from livechain.clients.access import OPEN, Client
from livechain.clients.exchange import answer_batch, read
from livechain.config.schema import STRATEGY_NAMES
from livechain.errors import LivechainError, UnknownChain
from livechain.jsonrpc.messages import NO_ID, Invalid, Request, error_body, parse_body
from livechain.jsonrpc.replies import Answer
from livechain.pipeline import Call, Route
from livechain.server.messages import Response, error_response

_ATTEMPTS = tuple(str(n) for n in range(16))
MAX_SESSION = 128  # characters of an X-Livechain-Session value that name the session


def rpc_headers(provider: str, attempts: int, cache: str) -> list[tuple[str, str]]:
    count = _ATTEMPTS[attempts] if 0 <= attempts < 16 else str(attempts)
    if provider:
        return [("x-livechain-attempts", count), ("x-livechain-provider", provider), ("x-livechain-cache", cache)]
    return [("x-livechain-attempts", count), ("x-livechain-cache", cache)]


def rpc_route(parts: list[str]) -> tuple[str, str | None, str | None, str | None] | None:
    """(chain, strategy, provider, key) of /rpc/… path segments:
    {chain}[/{key}], {strategy}/{chain}[/{key}], provider/{id}/{chain}[/{key}]."""
    if not parts or not parts[0]:
        return None
    if parts[0] == "provider" and len(parts) in (3, 4):
        return parts[2], None, parts[1], parts[3] if len(parts) == 4 else None
    if parts[0] in STRATEGY_NAMES and len(parts) in (2, 3):
        return parts[1], parts[0], None, parts[2] if len(parts) == 3 else None
    if len(parts) in (1, 2):
        return parts[0], None, None, parts[1] if len(parts) == 2 else None
    return None


class RpcEndpoint:
    def __init__(self, registry: ChainRegistry) -> None:
        self.registry = registry

    def resolve(self, chain_key: str) -> Chain:
        chain = self.registry.resolve(chain_key)
        if chain is None:
            raise UnknownChain(f"unknown chain: {chain_key[:64]}")
        return chain

    def handle_now(
        self,
        chain_key: str,
        body: bytes,
        *,
        strategy: str | None = None,
        provider_id: str | None = None,
        client: Client = OPEN,
        fresh: bool = False,
        session: str | None = None,
        peer: str = "",
        explain: bool = False,
    ) -> Response | Later:
        """As far as the request goes without waiting: the response when nothing is left to wait for (a cache
        hit, a refusal, a body that is not JSON-RPC), else a function whose awaitable is the rest. `session`:
        the X-Livechain-Session header — the client the consistency stages key by (scoped by its API key).
        `peer`: the connection's address — with the key's name, who owns the filters the request creates.
        `explain`: the client sent `X-Livechain-Explain: 1` — the response says how it was routed (single
        requests)."""
        try:
            chain = self.resolve(chain_key)
            if client is OPEN and strategy is None and provider_id is None:  # the common case, inlined
                route, who = chain.default_route, None
                parsed = parse_body(body)
            else:
                route, who = chain.route(strategy, provider_id), client.identity
                parsed = read(body, client)
        except LivechainError as exc:
            return error_response(exc)
        if session:
            who = f"{who or ''}/{session[:MAX_SESSION]}"
        owner = client.name or client.address or peer
        if type(parsed) is Request:
            try:
                call, answer = chain.begin(parsed, route, who, fresh, owner)
            except LivechainError as exc:
                return _single(parsed, None, exc)
            if explain:
                call.trail = []
            if answer is not None:
                response = _single(parsed, answer, None)
                if explain:
                    response.headers.append(("x-livechain-explain", _ascii(chain.explain_header(call, answer))))
                return response
            return partial(_finish, chain, call, parsed)
        if type(parsed) is Invalid:
            return Response(200, error_body(parsed.error, parsed.id))
        return partial(_batch, chain, parsed, route, who, fresh, owner)


Later = Callable[[], Awaitable[Response]]


def _single(request: Request, answer: Answer | None, exc: LivechainError | None) -> Response:
    if exc is not None:
        reply, provider, attempts, cache = error_body(exc, request.reply_id), "", getattr(exc, "attempts", 0), "bypass"
    else:
        reply, provider, attempts, cache = answer.body, answer.provider, answer.attempts, answer.cache  # type: ignore[union-attr]
    headers = rpc_headers(provider, attempts, cache)
    if request.id is NO_ID:  # a notification
        return Response(204, headers=headers)
    return Response(200, reply, headers=headers)


async def _finish(chain: Chain, call: Call, request: Request) -> Response:
    try:
        answer = await chain.finish(call)
    except LivechainError as exc:
        response, answer = _single(request, None, exc), None
    else:
        response = _single(request, answer, None)
    if call.trail is not None:
        response.headers.append(("x-livechain-explain", _ascii(chain.explain_header(call, answer))))
    return response


def _ascii(text: str) -> str:
    """A header value: printable ASCII only."""
    return "".join(c if " " <= c <= "~" else "?" for c in text)


async def _batch(chain: Chain, parsed: list, route: Route, who: str | None, fresh: bool, owner: str) -> Response:
    batch, providers, attempts, cache = await answer_batch(chain, parsed, route, who, fresh=fresh, owner=owner)
    headers = rpc_headers(providers, attempts, cache)
    return Response(204, headers=headers) if batch is None else Response(200, batch, headers=headers)
