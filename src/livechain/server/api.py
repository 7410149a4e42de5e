"""The JSON API: `GET /api/health | /api/chains | /api/events | /api/chains/{chain}[/providers | /leaderboard |
/methods | /history]`. Read-only; the views come from `chains.views`; never a provider URL.

Errors are `{"error": message}` with their HTTP status (`messages.error_response(..., api=True)`).
`/api/health` answers 503 while any chain is stalled (its body's `status` is "stalled"), else 200.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from urllib.parse import parse_qs

import orjson

from livechain.chains import views
from livechain.chains.registry import ChainRegistry
from livechain.chains.snapshots import Snapshots
from livechain.errors import BadHttpRequest, LivechainError, NoRoute, UnknownChain
from livechain.events import EventBus
from livechain.server.messages import Request, Response, error_response, json_response


class Api:
    def __init__(
        self, registry: ChainRegistry, snapshots: Snapshots, events: EventBus, restarts: Mapping[str, int]
    ) -> None:
        self.registry = registry
        self.snapshots = snapshots
        self.events = events
        self._restarts = restarts

    async def handle(self, request: Request) -> Response:
        try:
            if request.path[5:].strip("/") == "health":
                return self.health()
            return json_response(await self._view(request))
        except LivechainError as exc:
            return error_response(exc, api=True)

    def health(self) -> Response:
        """`GET /api/health`: 503 while any chain is stalled (the body's `status` is "stalled"), else 200 — so a
        load balancer or a readiness probe sees it without parsing the body."""
        body = views.health(self.registry, self._restarts)
        return json_response(body, 503 if body["status"] == "stalled" else 200)

    async def _view(self, request: Request) -> object:
        parts = request.path[5:].strip("/").split("/")
        query = {k: v[-1] for k, v in parse_qs(request.query, max_num_fields=20).items()}
        if parts == ["chains"]:
            return self.overview()
        if parts == ["events"]:
            since, limit = _int(query.get("since"), 0), _int(query.get("limit"), 200, 1000)
            return {"seq": self.events.seq, "events": self.events.since(since, limit)}
        if len(parts) >= 2 and parts[0] == "chains":
            return await self._chain_view(parts[1], parts[2:], query)
        raise NoRoute(f"no API route {request.path[:100]}")

    async def _chain_view(self, name: str, rest: list[str], query: dict[str, str]) -> object:
        chain = self.registry.resolve(name)
        if chain is None:
            raise UnknownChain(f"unknown chain {name[:64]}")
        if not rest:
            return {**chain.snapshot(), "cache": views.cache_summary(chain)}
        if rest == ["providers"]:
            return views.providers(chain)
        if rest == ["spend"]:
            return chain.spend()
        if rest == ["route"]:
            method = query.get("method")
            if not method:
                raise BadHttpRequest("method is required: /api/chains/{chain}/route?method=eth_call[&strategy=…]")
            return chain.explain(method[:128], query.get("strategy") or None)
        region = query.get("region") or None
        store = self.snapshots.store_for(chain.name, region)
        if store is None:
            raise NoRoute(f"no data for region {str(region)[:64]}")
        live = region is None or region == self.snapshots.region
        if rest == ["leaderboard"]:
            return views.leaderboard(
                chain, store, live=live, event=query.get("event", "newHeads"), method=query.get("method") or None
            )
        if rest == ["methods"]:
            return views.methods(chain, store)
        if rest == ["history"]:
            kind = query.get("kind", "rpc")
            if kind not in ("rpc", "race"):
                raise BadHttpRequest("kind must be rpc or race")
            since = _float(query.get("since"), time.time() - 3600)
            key = query.get("method") if kind == "rpc" else query.get("event")
            return await views.history(
                chain, self.snapshots, store, kind=kind, since=since, provider=query.get("provider") or None,
                key=key or None,
            )
        raise NoRoute(f"no API route for chain {chain.name}: {'/'.join(rest)[:100]}")

    # ------------------------------------------------------------------ for the live push

    def overview(self) -> dict:
        return views.overview(self.registry, self.snapshots)

    def leaderboard(self, chain_name: str) -> bytes:
        """The chain's live newHeads leaderboard, serialized ("null" for an unknown chain)."""
        chain = self.registry.resolve(chain_name)
        if chain is None:
            return b"null"
        store = self.snapshots.store_for(chain.name, None)
        if store is None:
            return b"null"
        board = views.leaderboard(chain, store, live=True, event="newHeads", method=None)
        return orjson.dumps(board, option=orjson.OPT_NON_STR_KEYS)


def _int(value: str | None, default: int, high: int | None = None) -> int:
    try:
        number = int(value) if value is not None else default
    except ValueError:
        number = default
    return min(number, high) if high is not None else number


def _float(value: str | None, default: float) -> float:
    try:
        return float(value) if value is not None else default
    except ValueError:
        return default
