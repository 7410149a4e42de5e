"""Ethereum facts behind the reply fixes: what a client must never see although a provider said it.

- `Floor`: a chain's `eth_blockNumber` never goes backwards for its clients. Providers a block or two apart
  (within max_lag_blocks) would otherwise make a client see 101, 100, 101 — the classic complaint with
  several providers. An answer below the highest one already given is raised to it.
- `transaction_hash()`: the hash of a signed raw transaction (keccak-256 of its bytes). When
  eth_sendRawTransaction fails over and a later provider says "already known", an earlier attempt delivered
  the transaction: the client gets its hash, as a node that accepted it would answer.

The pipeline stages that apply these live in `livechain.pipeline.fixes`; this module only knows Ethereum.
"""

from __future__ import annotations

from typing import Any

from Crypto.Hash import keccak

from livechain.evm.events import hex_number


class Floor:
    """The highest block number given out so far; answers below it are raised to it."""

    __slots__ = ("highest",)

    def __init__(self) -> None:
        self.highest = -1

    def raise_to_floor(self, result: Any) -> str | None:
        """The number to answer instead of `result`, or None when `result` stands (it is the new floor,
        or not a block number at all)."""
        number = hex_number(result)
        if number is None:
            return None
        if number >= self.highest:
            self.highest = number
            return None
        return hex(self.highest)


def transaction_hash(params: Any) -> str | None:
    """The hash of the raw transaction in eth_sendRawTransaction's params, or None when they hold none."""
    if isinstance(params, list) and params and isinstance(params[0], str) and params[0].startswith("0x"):
        try:
            raw = bytes.fromhex(params[0][2:])
        except ValueError:
            return None
        return "0x" + keccak.new(digest_bits=256, data=raw).hexdigest()
    return None
