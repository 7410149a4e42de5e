"""Block numbers and tags as providers take them."""

from __future__ import annotations

from typing import Any

TAGS = frozenset({"latest", "pending", "safe", "finalized", "earliest"})


def block_number(value: Any, best_head: int | None) -> int | None:
    """A block parameter as a number: hex quantity, "earliest" = 0, "latest"/"pending"/"safe"/"finalized"
    = the best known head (an upper bound), None when unknown or not a block parameter."""
    if value is None:
        return best_head  # eth_getLogs: an absent fromBlock/toBlock means "latest"
    if isinstance(value, str):
        if value.startswith(("0x", "0X")):
            try:
                return int(value, 16)
            except ValueError:
                return None
        if value == "earliest":
            return 0
        if value in TAGS:
            return best_head
    return None


def logs_range(params: Any, best_head: int | None) -> int | None:
    """How many blocks an eth_getLogs filter spans, or None when it cannot be told (blockHash, tags
    without a known head)."""
    if not isinstance(params, list) or not params or not isinstance(params[0], dict):
        return None
    flt = params[0]
    if "blockHash" in flt:
        return 1
    start = block_number(flt.get("fromBlock"), best_head)
    end = block_number(flt.get("toBlock"), best_head)
    if start is None or end is None:
        return None
    return max(0, end - start + 1)
