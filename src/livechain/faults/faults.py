"""The `Fault` value: what a `FaultProxy` does to the traffic it carries.

A fault is a frozen value; a proxy holds exactly one at a time and `FaultProxy.set()` swaps it.
`Fault.from_dict()` is the strict decoder used by the control port: unknown fields, wrong types and
out-of-range values raise `FaultError` with a message that names the field and says what is allowed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = [
    "CONNECTION_MODES",
    "FREEZE_MODES",
    "HTTP_MODES",
    "LIES",
    "MODES",
    "REQUEST_MODES",
    "REWRITE_MODES",
    "Fault",
    "FaultError",
]

#: Every mode a fault can have.
MODES: tuple[str, ...] = (
    "none",
    "refuse",
    "reset",
    "reset_mid_response",
    "blackhole",
    "silent",
    "stall",
    "http_status",
    "garbage",
    "lie",
)
#: Modes that answer HTTP requests themselves instead of forwarding them.
HTTP_MODES = frozenset({"http_status", "garbage"})
#: Modes that forward HTTP requests and rewrite the JSON-RPC answers (see lies.py).
REWRITE_MODES = frozenset({"lie"})
#: Modes that need an HTTP-aware connection and are drawn per HTTP request.
REQUEST_MODES = HTTP_MODES | REWRITE_MODES
#: What mode `lie` does to the answers (`Fault.lie`); see `livechain.faults` for each.
LIES: tuple[str, ...] = ("block_hash", "null_receipt", "empty_logs", "stale_head", "future_head")
#: Modes that freeze connections; leaving them aborts the frozen connections (clients must reconnect).
FREEZE_MODES = frozenset({"blackhole", "silent", "stall"})
#: Modes decided once per connection (as opposed to per HTTP request).
CONNECTION_MODES = frozenset(MODES) - REQUEST_MODES - {"none"}


class FaultError(ValueError):
    """An invalid fault description; the message says which field is wrong and why."""


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise FaultError(f"{name} must be finite, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class Fault:
    """What a proxy does to its traffic.

    mode          one of `MODES` (see `livechain.faults` for the semantics of each)
    latency_ms    one-way delay added to every chunk flowing provider→client, order-preserving
    jitter_ms     uniform random ±jitter added to `latency_ms` (the total is never negative)
    status        HTTP status sent by mode `http_status` (100..599)
    retry_after   seconds sent as a `Retry-After` header by the HTTP modes when not None
    probability   chance that the fault applies, drawn per connection (per request for the HTTP modes
                  and `lie`)
    lie           what mode `lie` rewrites: one of `LIES` (ignored by the other modes)
    lie_blocks    how many blocks the `stale_head` / `future_head` lies move the head (>= 1)
    """

    mode: str = "none"
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    status: int = 502
    retry_after: float | None = None
    probability: float = 1.0
    lie: str = "block_hash"
    lie_blocks: int = 1000

    def __post_init__(self) -> None:
        if not isinstance(self.mode, str) or self.mode not in MODES:
            raise FaultError(f"mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        for name in ("latency_ms", "jitter_ms"):
            if _number(name, getattr(self, name)) < 0:
                raise FaultError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if isinstance(self.status, bool) or not isinstance(self.status, int):
            raise FaultError(f"status must be an integer HTTP status, got {self.status!r}")
        if not 100 <= self.status <= 599:
            raise FaultError(f"status must be between 100 and 599, got {self.status}")
        if self.retry_after is not None and _number("retry_after", self.retry_after) < 0:
            raise FaultError(f"retry_after must be >= 0 seconds or null, got {self.retry_after!r}")
        if not 0.0 <= _number("probability", self.probability) <= 1.0:
            raise FaultError(f"probability must be between 0 and 1, got {self.probability!r}")
        if not isinstance(self.lie, str) or self.lie not in LIES:
            raise FaultError(f"lie must be one of {', '.join(LIES)}; got {self.lie!r}")
        if isinstance(self.lie_blocks, bool) or not isinstance(self.lie_blocks, int):
            raise FaultError(f"lie_blocks must be an integer number of blocks, got {self.lie_blocks!r}")
        if self.lie_blocks < 1:
            raise FaultError(f"lie_blocks must be >= 1, got {self.lie_blocks}")

    @property
    def active(self) -> bool:
        """True when the fault changes anything at all (a mode or some latency)."""
        return self.mode != "none" or self.latency_ms > 0 or self.jitter_ms > 0

    def delay_s(self, uniform: Any) -> float:
        """One draw of the provider→client delay in seconds; `uniform(a, b)` is the random source."""
        if self.jitter_ms <= 0:
            return self.latency_ms / 1000.0
        return max(0.0, self.latency_ms + uniform(-self.jitter_ms, self.jitter_ms)) / 1000.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Fault:
        """Strictly decode a JSON object; missing fields take their defaults."""
        if not isinstance(data, dict):
            raise FaultError(f"a fault must be a JSON object, got {type(data).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise FaultError(
                f"unknown field(s) {', '.join(map(repr, unknown))}; expected some of {', '.join(known)}"
            )
        for name in ("mode", "lie"):
            if name in data and not isinstance(data[name], str):
                raise FaultError(f"{name} must be a string, got {data[name]!r}")
        return cls(**data)
