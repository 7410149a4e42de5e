"""eth_subscribe parameters: validated, canonicalised into the key that lets identical subscriptions share
one provider subscription. Invalid parameters are the client's error (-32602), never sent upstream."""

from __future__ import annotations

import re
from typing import Any

import orjson

from livechain.errors import InvalidParams
from livechain.evm.events import LOGS, NEW_HEADS, PENDING

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_TOPIC = re.compile(r"^0x[0-9a-fA-F]{64}$")
_KIND = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
MAX_ADDRESSES = 1000


def _addresses(value: Any) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or len(items) > MAX_ADDRESSES:
        raise InvalidParams("logs filter: address must be an address or a non-empty list of addresses")
    out = []
    for item in items:
        if not isinstance(item, str) or not _ADDRESS.match(item):
            raise InvalidParams("logs filter: every address must be 0x followed by 40 hex digits")
        out.append(item.lower())
    return sorted(set(out))


def _topics(value: Any) -> list:
    if not isinstance(value, list) or len(value) > 4:
        raise InvalidParams("logs filter: topics must be a list of at most 4 positions")
    out: list = []
    for position in value:
        if position is None:
            out.append(None)
        elif isinstance(position, str) and _TOPIC.match(position):
            out.append(position.lower())
        elif isinstance(position, list) and all(isinstance(t, str) and _TOPIC.match(t) for t in position):
            out.append(sorted({t.lower() for t in position}) or None)
        else:
            raise InvalidParams("logs filter: each topic must be null, a 32-byte hex topic or a list of them")
    while out and out[-1] is None:
        out.pop()
    return out


def _key_bytes(value: Any) -> bytes:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except (TypeError, RecursionError):  # integers beyond 64 bits, nesting orjson refuses
        raise InvalidParams("eth_subscribe: parameters must be plain JSON (no integers beyond 64 bits)") from None


def canonical(params: Any) -> tuple[str, list, tuple]:
    """(kind, params to send upstream, sharing key)."""
    if not isinstance(params, list) or not params or not isinstance(params[0], str):
        raise InvalidParams('eth_subscribe: params must be ["newHeads"], ["logs", {filter}] or ["newPendingTransactions"]')
    kind = params[0]
    if kind == NEW_HEADS:
        if len(params) > 2 or (len(params) == 2 and params[1] not in ({}, None)):
            raise InvalidParams("eth_subscribe newHeads takes no parameters")
        return kind, [kind], (kind,)
    if kind == LOGS:
        if len(params) > 2:
            raise InvalidParams("eth_subscribe logs takes one filter object")
        raw = params[1] if len(params) == 2 else {}
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise InvalidParams("eth_subscribe logs: the filter must be an object")
        unknown = set(raw) - {"address", "topics"}
        if unknown:
            raise InvalidParams(f"eth_subscribe logs: unsupported filter field(s): {', '.join(sorted(unknown))[:100]}")
        flt: dict = {}
        if raw.get("address") is not None:
            flt["address"] = _addresses(raw["address"])
        if raw.get("topics") is not None:
            topics = _topics(raw["topics"])
            if topics:
                flt["topics"] = topics
        return kind, [kind, flt], (kind, _key_bytes(flt))
    if kind == PENDING:
        full = len(params) > 1 and params[1] is True
        if len(params) > 2 or (len(params) == 2 and not isinstance(params[1], bool)):
            raise InvalidParams("eth_subscribe newPendingTransactions takes an optional boolean")
        return kind, ([kind, True] if full else [kind]), (kind, full)
    if not _KIND.match(kind) or len(params) > 2:
        raise InvalidParams("eth_subscribe: unknown subscription kind")
    return kind, list(params), (kind, _key_bytes(params[1:]))
