"""What travels the pipeline: a `Call` (one client request, where it may go, who sent it) and its `Route`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
    """One client request on its way through a chain's pipeline.

    `client` names who sent it (an API key's name, else the client's address; None in-process) for stages
    that keep per-client state; `fresh` is the client's `Cache-Control: no-cache` (answer from a provider, and
    refresh the cache with it). The cache stage notes what it learned for the stages after it: `key` (the
    normalized request, also what coalescing shares by), `ref` (the block the request is about) and `epoch`
    (the chain's head and reorg counters when the call started). Stages that know some providers cannot
    answer it narrow where it goes: `accept` (only providers it is true of) and `prefer` (those first)."""

    __slots__ = ("accept", "client", "epoch", "fresh", "key", "plan", "prefer", "ref", "request", "route")

    def __init__(self, request: Request, route: Route, client: str | None = None, fresh: bool = False) -> None:
        self.request = request
        self.route = route
        self.client = client
        self.fresh = fresh
        self.key: bytes | None = None
        self.ref: Any = None
        self.epoch: Any = None
        self.accept: Callable[[Provider], bool] | None = None
        self.prefer: Callable[[Provider], bool] | None = None
        self.plan: Any = None  # the pipeline's compiled hooks for this method (Pipeline.begin)

    @property
    def method(self) -> str:
        return self.request.method
