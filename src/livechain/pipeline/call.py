"""What travels the pipeline: a `Call` (one client request, where it may go, who sent it) and its `Route`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from livechain.evm.requests import Ref, describe
from livechain.jsonrpc.messages import Request
from livechain.providers.provider import Check, Provider
from livechain.routing.strategies import Strategy


@dataclass(frozen=True, slots=True)
class Route:
    """How a call picks providers: a strategy orders the eligible ones, or one provider is pinned
    (`/rpc/provider/{id}/{chain}`). Resolved once per HTTP request or per WebSocket connection."""

    strategy: Strategy
    pinned: Provider | None = None


class Call:
    """One client request on its way through a chain's pipeline.

    `client` names the client for stages that keep per-client state (the consistency stage's sessions): an
    X-Livechain-Session value, a WebSocket connection, an API key's name or the client's address; None when
    nothing names it. `fresh` is the client's `Cache-Control: no-cache` (answer from a provider, and refresh
    the cache with it). `read()` gives what the request is about — `key` (the normalized request, also what
    coalescing shares by) and `ref` (the block it is about) — worked out once, for every stage that asks;
    the cache stage adds `epoch` (the chain's head and reorg counters when the call started). Stages that
    know some providers cannot answer it narrow where it goes: `accept` (only providers it is true of) and
    `prefer` (those first; `narrow` adds a condition); `check` judges each provider's answer before it is
    taken (a lagging or invalid one fails over); `need` is the block the answering provider must have
    reached. `owner` is who owns what the call creates (a filter): the API key's name, else the client's
    address; None for an in-process caller. `own`: a request of Livechain's own (a feed's backfill), counted
    apart from client traffic in spend. `trail`: when the client asked for an explanation, each attempt's
    (provider, outcome)."""

    __slots__ = ("accept", "check", "client", "epoch", "fresh", "key", "need", "own", "owner", "plan", "prefer",
                 "read_done", "ref", "request", "route", "trail")

    def __init__(
        self, request: Request, route: Route, client: str | None = None, fresh: bool = False, owner: str | None = None
    ) -> None:
        self.request = request
        self.route = route
        self.client = client
        self.fresh = fresh
        self.owner = owner
        self.own = False
        self.trail: list[tuple[str, str]] | None = None
        self.key: bytes | None = None
        self.ref: Any = None
        self.epoch: Any = None
        self.accept: Callable[[Provider], bool] | None = None
        self.prefer: Callable[[Provider], bool] | None = None
        self.check: Check | None = None
        self.need: int | None = None
        self.read_done = False
        self.plan: Any = None  # the pipeline's compiled hooks for this method (Pipeline.begin)

    def read(self) -> Ref | None:
        """The block the request is about (and its `key`), None when its params cannot be read."""
        if not self.read_done:
            self.read_done = True
            described = describe(self.request.method, self.request.params)
            if described is not None:
                self.key, self.ref = described.key, described.ref
        return self.ref

    def narrow(self, prefer: Callable[[Provider], bool]) -> None:
        """Prefer providers `prefer` is true of, as well as those an earlier stage preferred."""
        earlier = self.prefer
        self.prefer = prefer if earlier is None else (lambda p: earlier(p) and prefer(p))

    @property
    def method(self) -> str:
        return self.request.method
