"""What travels the pipeline: a `Call` (one client request, where it may go, who sent it) and its `Route`."""

from __future__ import annotations

from dataclasses import dataclass

from livechain.jsonrpc.messages import Request
from livechain.providers.provider import Provider
from livechain.routing.strategies import Strategy


@dataclass(frozen=True, slots=True)
class Route:
    """How a call picks providers: a strategy orders the eligible ones, or one provider is pinned
    (`/rpc/provider/{id}/{chain}`). Resolved once per HTTP request or per WebSocket connection."""

    strategy: Strategy
    pinned: Provider | None = None


class Call:
    """One client request on its way through a chain's pipeline. `client` names who sent it (an API key's
    name, else the client's address; None in-process) for stages that keep per-client state."""

    __slots__ = ("client", "request", "route")

    def __init__(self, request: Request, route: Route, client: str | None = None) -> None:
        self.request = request
        self.route = route
        self.client = client

    @property
    def method(self) -> str:
        return self.request.method
