"""The record stage: what every finished call leaves behind — client traffic and, for a request no provider
could serve, one log line (the provider-level detail is already recorded by each attempt)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from livechain.errors import LivechainError, RoutingError
from livechain.jsonrpc.replies import Answer
from livechain.metrics.traffic import Traffic

if TYPE_CHECKING:
    from livechain.pipeline.call import Call

log = logging.getLogger("livechain.pipeline")


class Record:
    __slots__ = ("chain", "traffic")

    def __init__(self, chain: str, traffic: Traffic) -> None:
        self.chain = chain
        self.traffic = traffic

    def answered(self, call: Call, answer: Answer) -> None:
        self.traffic.record(True)

    def failed(self, call: Call, exc: LivechainError | None) -> None:
        """`exc` None: a bug (already logged with its traceback)."""
        self.traffic.record(False)
        if isinstance(exc, RoutingError):
            log.warning("request failed: %s", exc.message, extra={"chain": self.chain, "method": call.method})
