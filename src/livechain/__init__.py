"""Livechain: an RPC-provider orchestration proxy for EVM chains — a server (`livechain serve`) and a Python
library (`from livechain import Livechain`, see `livechain.library`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from livechain.library import Livechain

__all__ = ["Livechain"]


def __getattr__(name: str) -> Any:
    # imported on first use: `import livechain.errors` (and every other module) must not load the whole proxy
    if name == "Livechain":
        from livechain.library import Livechain

        return Livechain
    raise AttributeError(f"module 'livechain' has no attribute {name!r}")
