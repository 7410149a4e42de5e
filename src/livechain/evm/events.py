"""Event identity: the deterministic key that tells two providers' notifications are the same event.

    newHeads                → block hash
    logs                    → (blockHash, logIndex, removed)   (tx hash would merge several logs of one tx;
                                                                 ignoring `removed` would drop reorg removals)
    newPendingTransactions  → transaction hash (or the full transaction's hash)
    anything else           → a digest of the canonical JSON of `result`
A malformed notification falls back to the digest: it is still deduplicated, never a crash.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

NEW_HEADS = "newHeads"
LOGS = "logs"
PENDING = "newPendingTransactions"


def digest(result: Any) -> bytes:
    return hashlib.blake2b(orjson.dumps(result, option=orjson.OPT_SORT_KEYS), digest_size=16).digest()


def event_key(kind: str, result: Any) -> Any:
    try:
        if kind == NEW_HEADS:
            key = result["hash"]
            if isinstance(key, str):
                return key
        elif kind == LOGS:
            return (result["blockHash"], result["logIndex"], bool(result.get("removed", False)))
        elif kind == PENDING:
            if isinstance(result, str):
                return result
            return result["hash"]
    except (KeyError, TypeError):
        pass
    return digest(result)


def hex_number(value: Any) -> int | None:
    if isinstance(value, str) and value.startswith("0x"):
        try:
            return int(value, 16)
        except ValueError:
            return None
    return None


#: fields of a full block that a newHeads notification does not carry
_NOT_HEADER = ("transactions", "uncles", "size", "totalDifficulty", "withdrawals")


def header_of(block: dict) -> dict:
    """A block from eth_getBlockByNumber reduced to what newHeads delivers."""
    return {k: v for k, v in block.items() if k not in _NOT_HEADER}
