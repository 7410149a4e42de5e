"""What an embedding program (the demo, `livechain serve`) may plug into the web edge: more routes, more
fields in the dashboard's live push. The demo's load simulator and fault controls are such a plugin
(`livechain.demo.controls`); the edge itself knows nothing about them.

A plugin is built by a factory that receives `EdgeServices` — the few things of the edge it may use — so it
is wired through its constructor like everything else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from livechain.chains.registry import ChainRegistry
from livechain.events import EventBus
from livechain.server.admin import Admin
from livechain.server.messages import Request, Response


class Plugin(Protocol):
    async def handle(self, request: Request) -> Response | None:
        """The response for a request on one of the plugin's paths; None for any other path."""
        ...

    def live(self) -> dict[str, Any]:
        """Fields added to every tick of the dashboard's live push (cheap: called ~5 times a second)."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class EdgeServices:
    registry: ChainRegistry
    events: EventBus
    admin: Admin
    #: (host, port) the edge listens on, once it does
    address: Callable[[], tuple[str, int]]


PluginFactory = Callable[[EdgeServices], Plugin]
