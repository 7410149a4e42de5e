"""The record stage: what every finished call leaves behind — client traffic and, for a request no provider
could serve, one log line (the provider-level detail is already recorded by each attempt)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from livechain.errors import LivechainError, RoutingError
from livechain.metrics.traffic import Traffic

if TYPE_CHECKING:
    from livechain.pipeline.call import Call

log = logging.getLogger("livechain.pipeline")


class Record:
    __slots__ = ("chain", "ok", "traffic")

    def __init__(self, chain: str, traffic: Traffic) -> None:
        self.chain = chain
        self.traffic = traffic
        #: the pipeline calls `ok(True)` for every answered call (Traffic.record itself: one call less)
        self.ok = traffic.record

    def failed(self, call: Call, exc: LivechainError | None) -> None:
        """`exc` None: a bug (already logged with its traceback)."""
        self.traffic.record(False)
        if isinstance(exc, RoutingError):
            log.warning("request failed: %s", exc.message, extra={"chain": self.chain, "method": call.method})
