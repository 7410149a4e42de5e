"""The probe's WebSocket check: connect (Livechain's own upstream connection, `transport.ws.UpstreamWs`),
ask eth_chainId, subscribe to newHeads, logs and newPendingTransactions, and wait up to `wait` seconds for
each subscription's first notification.

Per kind: "delivers" (with the time to the first notification), "silent" (the provider gave a subscription
id, but nothing arrived within the wait: subscribes but silent), "unsupported" (refused as an unknown
method or kind), or the failure's kind. No unsubscribe is sent: closing the socket ends the subscriptions
(and saves calls). Calls: eth_chainId + one eth_subscribe per kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from livechain.errors import MethodUnsupported, ProviderError
from livechain.evm.events import hex_number
from livechain.probe.client import PROVIDER_ID, Calls
from livechain.transport.ws import UpstreamWs

SUBSCRIPTIONS: dict[str, list] = {
    "newHeads": ["newHeads"],
    "logs": ["logs", {}],
    "newPendingTransactions": ["newPendingTransactions"],
}
WS_CALLS = 1 + len(SUBSCRIPTIONS)


class _Notifications:
    def __init__(self) -> None:
        self.first: dict[str, int] = {}  # provider subscription id → perf_counter_ns of its first notification
        self.counts: dict[str, int] = {}
        self.arrived = asyncio.Event()

    def __call__(self, sub_id: str, _result: Any, t: int) -> None:
        if sub_id not in self.first:
            self.first[sub_id] = t
            self.arrived.set()
        self.counts[sub_id] = self.counts.get(sub_id, 0) + 1


async def check_ws(url: str, calls: Calls, *, expected_chain_id: int | None, wait: float,
                   timeout: float) -> dict[str, Any]:
    notes = _Notifications()
    opened = asyncio.Event()
    reasons: list[str] = []

    async def on_connect() -> None:
        opened.set()

    def on_disconnect(reason: str) -> None:
        reasons.append(reason)
        opened.set()

    ws = UpstreamWs(url, name=PROVIDER_ID, on_notification=notes, on_connect=on_connect,
                    on_disconnect=on_disconnect, connect_timeout=timeout, liveness=max(10.0, 2 * wait),
                    ping_interval=5.0)
    runner = asyncio.get_running_loop().create_task(ws.run(), name=f"probe/ws/{PROVIDER_ID}")
    out: dict[str, Any] = {"checked": True, "connected": False}
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(opened.wait(), timeout + 1)
        if not ws.is_open:
            out["error"] = ws.stats.get("last_error") or f"not connected ({reasons[-1] if reasons else 'timeout'})"
            return out
        out["connected"] = True
        out.update(await _chain_id(ws, calls, expected_chain_id, timeout))
        out["wait_s"] = wait
        out["subscriptions"] = await _subscriptions(ws, calls, notes, wait, timeout)
        return out
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


async def _chain_id(ws: UpstreamWs, calls: Calls, expected: int | None, timeout: float) -> dict[str, Any]:
    calls.take("ws")
    try:
        reply = await ws.request("eth_chainId", [], timeout=timeout)
    except ProviderError as exc:
        return {"chain_id": None, "chain_id_ok": None, "chain_id_error": exc.message}
    got = hex_number(reply.result) if reply.error is None else None
    return {"chain_id": got, "expected_chain_id": expected,
            "chain_id_ok": None if expected is None else got == expected}


async def _subscriptions(ws: UpstreamWs, calls: Calls, notes: _Notifications, wait: float,
                         timeout: float) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    ids: dict[str, tuple[str, int]] = {}  # kind → (subscription id, when it was subscribed)
    for kind, params in SUBSCRIPTIONS.items():
        calls.take("ws")
        try:
            sub_id = await ws.subscribe(params, timeout=timeout)
        except MethodUnsupported as exc:
            found[kind] = {"status": "unsupported", "detail": exc.message[:200]}
            continue
        except ProviderError as exc:
            found[kind] = {"status": exc.kind, "detail": exc.message[:200]}
            continue
        ids[kind] = (sub_id, time.perf_counter_ns())
    deadline = time.monotonic() + wait
    while any(sub_id not in notes.first for sub_id, _ in ids.values()):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        notes.arrived.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(notes.arrived.wait(), left)
    for kind, (sub_id, since) in ids.items():
        first = notes.first.get(sub_id)
        if first is None:
            found[kind] = {"status": "silent", "detail": f"subscribed, but no notification within {wait:g} s"}
        else:
            found[kind] = {"status": "delivers", "first_ms": round(max(0, first - since) / 1e6, 1),
                           "notifications": notes.counts.get(sub_id, 0)}
    return {kind: found[kind] for kind in SUBSCRIPTIONS}
