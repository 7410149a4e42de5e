"""Is a provider's answer the one asked for, and is it self-consistent?

Pure functions (no I/O) the request pipeline calls on provider answers:

- `header_hash(block)`: keccak256(rlp(header)) of a JSON-RPC block object, every execution-layer fork up to
  Prague (and Osaka, which added no header field).
- `check(method, params, result, canonical)`: None when the answer holds together, else a short reason.

What is checked, per method:

    eth_getBlockByNumber / ByHash   the hash is the hash of the header; the block is the one asked for (its
                                    hash, or its number when a number was asked); with full transactions
                                    (params[1] true) each one names this block (blockHash, blockNumber)
    eth_getTransactionByHash        the transaction is the one asked for
    eth_getTransactionReceipt       the receipt is the asked transaction's; its logs name its transaction
                                    and block
    eth_getBlockReceipts            all receipts name one block, the one asked for (number or hash); their
                                    logs name their transaction and block
    eth_getLogs                     every log is in the asked block (blockHash filter) or range (numeric
                                    fromBlock/toBlock); logs come in (blockNumber, logIndex) order; logs
                                    with one block number name one block hash
    all of them                     the block they name is the canonical one for its number when
                                    `canonical(number)` knows it (a pending block or transaction: skipped)

Not checked: `transactionsRoot`, `receiptsRoot`, `withdrawalsRoot` and `logsBloom` against the bodies (a
block with hashes does not carry its transactions; with full objects it would take re-encoding every
transaction type, chain-specific ones included, into a Merkle-Patricia trie: not cheap, and not correct
for every chain), nor a transaction's hash against its signed encoding.

The header rule holds where a block hash is keccak256(rlp(header)) in Ethereum's layout: verified here on
Ethereum mainnet blocks of every era and on anvil; geth-derived chains that keep that header (OP stack,
Polygon PoS, BNB Chain, Arbitrum, ...) are expected to pass it but were not tested. A chain that hashes its
blocks otherwise (extra header fields, another hash function) would fail it on every block: the caller
decides per chain whether block answers are checked.

Strictness: what a provider answers must be well-formed hex of its kind (else "malformed ..."); what the
client asked is read leniently (a tag, or a parameter that is no number or hash, is simply not compared).
Reasons name hashes and numbers only, never a URL or provider text.

Cost (bench/integrity.py): about 30 µs per block header (pyrlp's encoder about half of it, keccak a
quarter), a fraction of a µs per log or receipt. Importing the module loads pyrlp and eth-utils once
(roughly 0.05-0.1 s after the rest of Livechain is imported).
"""

from __future__ import annotations

from collections.abc import Callable

import rlp
from eth_hash.auto import keccak

# ---------------------------------------------------------------------------------------------- header

_QUANTITY = 0  # big-endian minimal bytes, 0 → empty
_BYTES = -1  # any length (extraData)

#: the 15 fields every header has, in RLP order: (JSON name, byte size or _QUANTITY / _BYTES)
_LEGACY = (
    ("parentHash", 32),
    ("sha3Uncles", 32),
    ("miner", 20),
    ("stateRoot", 32),
    ("transactionsRoot", 32),
    ("receiptsRoot", 32),
    ("logsBloom", 256),
    ("difficulty", _QUANTITY),
    ("number", _QUANTITY),
    ("gasLimit", _QUANTITY),
    ("gasUsed", _QUANTITY),
    ("timestamp", _QUANTITY),
    ("extraData", _BYTES),
    ("mixHash", 32),
    ("nonce", 8),
)
#: fields appended by later forks, each present from its fork on, in RLP order
_FORKS = (
    ("baseFeePerGas", _QUANTITY),  # London
    ("withdrawalsRoot", 32),  # Shanghai
    ("blobGasUsed", _QUANTITY),  # Cancun
    ("excessBlobGas", _QUANTITY),
    ("parentBeaconBlockRoot", 32),
    ("requestsHash", 32),  # Prague
)
#: header fields of proposed later forks (Amsterdam: EIP-7928, slot number) that this module does not encode:
#: a block carrying one cannot be checked rather than be reported wrong
_NOT_ENCODED = ("blockAccessListHash", "slotNumber")


class _Malformed(ValueError):
    pass


def _fixed(value: object, size: int) -> bytes:
    """0x-hex of exactly `size` bytes."""
    if type(value) is not str or len(value) != 2 + 2 * size or value[:2] != "0x":
        raise _Malformed
    raw = bytes.fromhex(value[2:])  # ValueError on a non-hex digit
    if len(raw) != size:  # fromhex skips whitespace
        raise _Malformed
    return raw


#: the header in RLP order: (JSON name, byte size or _QUANTITY / _BYTES, a legacy field)
_HEADER = tuple((name, kind, True) for name, kind in _LEGACY) + tuple((name, kind, False) for name, kind in _FORKS)


def header_hash(block: dict) -> str | None:
    """keccak256(rlp(header)) of a JSON-RPC block object, as 0x-hex; None when the object lacks a field the
    header needs (it cannot be checked).

    The header is the 15 legacy fields, then those later forks added, each taken when present (not null) in
    the object: baseFeePerGas (London), withdrawalsRoot (Shanghai), blobGasUsed, excessBlobGas,
    parentBeaconBlockRoot (Cancun), requestsHash (Prague). A later one present after an absent one, or a
    field of a proposed fork this module does not encode (blockAccessListHash, slotNumber), also gives
    None. Raises ValueError when `block` is not a dict or a field is not hex of its kind (a 32-byte hash,
    20-byte miner, 256-byte logsBloom, 8-byte nonce, a quantity of at most 256 bits)."""
    if type(block) is not dict:
        raise _Malformed
    fields: list[bytes] = []
    append = fields.append
    get = block.get
    fromhex = bytes.fromhex
    absent = False
    for name, kind, legacy in _HEADER:  # per field: a few length checks and one bytes.fromhex
        value = get(name)
        if value is None:
            if legacy:
                return None
            absent = True
            continue
        if absent:
            return None  # a later fork's field without an earlier one's
        if type(value) is not str or value[:2] != "0x":
            raise _Malformed
        if kind > 0:  # fixed size; fromhex skips whitespace, hence both lengths
            raw = fromhex(value[2:])  # ValueError on a non-hex digit
            if len(raw) != kind or len(value) != 2 + 2 * kind:
                raise _Malformed
        elif kind == _QUANTITY:  # big-endian minimal bytes, 0 → b""; at most 256 bits
            digits = value[2:].lstrip("0")
            if len(value) < 3 or len(digits) > 64:
                raise _Malformed
            if len(digits) & 1:
                digits = "0" + digits
            raw = fromhex(digits)
            if 2 * len(raw) != len(digits):
                raise _Malformed
        else:
            raw = fromhex(value[2:])
            if 2 * len(raw) != len(value) - 2:
                raise _Malformed
        append(raw)
    for name in _NOT_ENCODED:
        if get(name) is not None:
            return None
    return "0x" + keccak(rlp.encode(fields, infer_serializer=False)).hex()


# ---------------------------------------------------------------------------------------------- values


def _number(value: object) -> int:
    """A 0x-hex quantity of a provider's answer: strict (no sign, underscore, space or non-ASCII digit)."""
    if type(value) is str and 2 < len(value) <= 66 and value[:2] == "0x" and value.isascii() and value.isalnum():
        return int(value, 16)  # ValueError on a letter beyond f ("0x0x1" too)
    raise _Malformed


def _hash(value: object) -> str:
    """A 32-byte 0x-hex hash of a provider's answer, lower-cased."""
    _fixed(value, 32)
    return value.lower()


def _asked_number(value: object) -> int | None:
    """A block number the client asked for; None for a tag or anything else that is not a number."""
    try:
        return _number(value)
    except ValueError:
        return None


def _asked_hash(value: object) -> str | None:
    try:
        return _hash(value)
    except ValueError:
        return None


def _same(value: object, anchor: str) -> bool:
    """`value` (a provider's hash) equals `anchor` (lower-cased), ignoring case; ValueError on a non-string."""
    if value == anchor:
        return True
    if type(value) is not str:
        raise _Malformed
    return value.lower() == anchor


def _same_number(value: object, text: str, number: int) -> bool:
    """`value` (a provider's quantity) is the number `text` (already parsed as `number`)."""
    return value == text or _number(value) == number


# ---------------------------------------------------------------------------------------------- per method

#: what a checker returns: a reason, or the (number, hash) of the blocks to compare with `canonical`
_Found = str | list[tuple[int, str]]


def _first(params: list, index: int = 0) -> object:
    return params[index] if len(params) > index else None


def _check_block(params: list, block: object, by_hash: bool, header: bool = True) -> _Found:
    if type(block) is not dict:
        raise _Malformed
    block_hash = block.get("hash")
    if block_hash is None:
        return []  # a pending block has no hash yet: nothing to hold it to
    block_hash = _hash(block_hash)
    number_text = block["number"]
    number = _number(number_text)
    asked = _first(params)
    if by_hash:
        wanted = _asked_hash(asked)
        if wanted is not None and wanted != block_hash:
            return f"block {block_hash} is not the one asked for"
    else:
        wanted_number = _asked_number(asked)
        if wanted_number is not None and wanted_number != number:
            return f"block {hex(number)} is not the one asked for"
    if _first(params, 1) is True:
        transactions = block.get("transactions")
        if type(transactions) is not list:
            raise _Malformed
        for tx in transactions:
            if type(tx) is dict:
                if not _same(tx.get("blockHash"), block_hash) or not _same_number(
                    tx.get("blockNumber"), number_text, number
                ):
                    return "transaction of another block"
            elif type(tx) is not str:  # a hash where an object was asked for: nothing to compare
                raise _Malformed
    computed = header_hash(block) if header else None
    if computed is not None and computed != block_hash:
        return "block hash is not the hash of its header"
    if asked == "pending":
        return []
    return [(number, block_hash)]


def _check_block_by_number(params: list, block: object) -> _Found:
    return _check_block(params, block, by_hash=False)


def _check_block_by_hash(params: list, block: object) -> _Found:
    return _check_block(params, block, by_hash=True)


def _check_transaction(params: list, tx: object) -> _Found:
    if type(tx) is not dict:
        raise _Malformed
    tx_hash = _hash(tx.get("hash"))
    wanted = _asked_hash(_first(params))
    if wanted is not None and wanted != tx_hash:
        return f"transaction {tx_hash} is not the one asked for"
    block_hash = tx.get("blockHash")
    if block_hash is None:
        return []  # pending
    return [(_number(tx.get("blockNumber")), _hash(block_hash))]


def _check_logs_of(receipt: dict, tx_hash: str, block_hash: str, number_text: object, number: int) -> str | None:
    """The logs of a receipt name its transaction and block (a hot loop: identical strings settle it inline)."""
    logs = receipt.get("logs")
    if logs is None:
        return None
    if type(logs) is not list:
        raise _Malformed
    for log in logs:
        if type(log) is not dict:
            raise _Malformed
        value = log.get("transactionHash")
        if value != tx_hash and not _same(value, tx_hash):
            return "log of another transaction"
        value = log.get("blockHash")
        if value != block_hash and not _same(value, block_hash):
            return "log of another block"
        value = log.get("blockNumber")
        if value != number_text and _number(value) != number:
            return "log of another block"
    return None


def _check_receipt(params: list, receipt: object) -> _Found:
    if type(receipt) is not dict:
        raise _Malformed
    tx_hash = _hash(receipt.get("transactionHash"))
    wanted = _asked_hash(_first(params))
    if wanted is not None and wanted != tx_hash:
        return "receipt of another transaction"
    block_hash = _hash(receipt.get("blockHash"))
    number_text = receipt.get("blockNumber")
    number = _number(number_text)
    reason = _check_logs_of(receipt, tx_hash, block_hash, number_text, number)
    if reason is not None:
        return reason
    return [(number, block_hash)]


def _asked_block(param: object) -> tuple[str | None, int | None]:
    """(hash, number) of a block parameter: a hash, a number, or an EIP-1898 object; (None, None) for tags."""
    if type(param) is dict:
        return _asked_hash(param.get("blockHash")), _asked_number(param.get("blockNumber"))
    if type(param) is str and len(param) == 66:
        return _asked_hash(param), None
    return None, _asked_number(param)


def _check_block_receipts(params: list, receipts: object) -> _Found:
    if type(receipts) is not list:
        raise _Malformed
    if not receipts:
        return []
    first = receipts[0]
    if type(first) is not dict:
        raise _Malformed
    block_hash = _hash(first.get("blockHash"))
    number_text = first.get("blockNumber")
    number = _number(number_text)
    wanted_hash, wanted_number = _asked_block(_first(params))
    if (wanted_hash is not None and wanted_hash != block_hash) or (
        wanted_number is not None and wanted_number != number
    ):
        return "receipts of another block"
    for receipt in receipts:
        if type(receipt) is not dict:
            raise _Malformed
        if not _same(receipt.get("blockHash"), block_hash) or not _same_number(
            receipt.get("blockNumber"), number_text, number
        ):
            return "receipts of different blocks"
        reason = _check_logs_of(receipt, _hash(receipt.get("transactionHash")), block_hash, number_text, number)
        if reason is not None:
            return reason
    return [(number, block_hash)]


def _check_logs(params: list, logs: object) -> _Found:
    if type(logs) is not list:
        raise _Malformed
    flt = _first(params)
    if type(flt) is not dict:
        flt = {}
    wanted_hash = _asked_hash(flt.get("blockHash"))
    low = high = None
    if wanted_hash is None:
        low, high = _asked_number(flt.get("fromBlock")), _asked_number(flt.get("toBlock"))
    blocks: list[tuple[int, str]] = []
    last_text: object = None  # the previous log's blockNumber, as given
    last_number = -1
    last_hash = ""
    last_index = -1
    for log in logs:  # the hot loop of a large answer: _number and _same inlined
        if type(log) is not dict:
            raise _Malformed
        number_text = log.get("blockNumber")
        if number_text is None:
            continue  # a pending log (no block yet)
        if number_text != last_text:
            number = _number(number_text)
            if number != last_number:
                if number < last_number:
                    return "logs out of order"
                block_hash = _hash(log.get("blockHash"))
                if wanted_hash is not None and block_hash != wanted_hash:
                    return "log of another block"
                if (low is not None and number < low) or (high is not None and number > high):
                    return f"log of block {hex(number)}, outside the range asked for"
                blocks.append((number, block_hash))
                last_number, last_hash, last_index = number, block_hash, -1
            last_text = number_text
        value = log.get("blockHash")
        if value != last_hash and (type(value) is not str or value.lower() != last_hash):
            if type(value) is not str:
                raise _Malformed
            return f"logs of two blocks numbered {hex(last_number)}"
        value = log.get("logIndex")
        if type(value) is not str or value[:2] != "0x" or not value.isascii() or not value.isalnum() or len(value) > 66:
            raise _Malformed
        index = int(value, 16)  # ValueError on a non-hex digit, and on "0x" alone
        if index < last_index:
            return "logs out of order"
        last_index = index
    return blocks


_CHECKS: dict[str, tuple[Callable[[list, object], _Found], str]] = {
    "eth_getBlockByNumber": (_check_block_by_number, "malformed block"),
    "eth_getBlockByHash": (_check_block_by_hash, "malformed block"),
    "eth_getTransactionByHash": (_check_transaction, "malformed transaction"),
    "eth_getTransactionReceipt": (_check_receipt, "malformed receipt"),
    "eth_getBlockReceipts": (_check_block_receipts, "malformed receipts"),
    "eth_getLogs": (_check_logs, "malformed logs"),
}


def check(
    method: str, params: list, result: object, canonical: Callable[[int], str | None], *, header: bool = True
) -> str | None:
    """None when the answer is consistent (or there is nothing to check: a null, an error, a method not
    checked); else a short reason naming what is wrong, e.g. "block hash is not the hash of its header",
    "block 0x12 is not the one asked for", "receipt of another transaction", "log of another block",
    "not the canonical block 0x..": never containing a URL. `canonical(number)` is the hash Livechain knows
    for that block number on the canonical chain, or None when it does not know (then that check is skipped).

    `result` is the JSON-RPC `result` of a successful reply (an error reply has none: pass None). A result
    that is not what the method returns (not an object or list, a field that is not hex of its kind) gives
    "malformed block" / "transaction" / "receipt" / "receipts" / "logs", never an exception; `canonical` is
    called outside that guard, once per distinct block, after every other rule has passed. `header=False`
    skips the header-hash rule (a chain whose block hash is not keccak256(rlp(header)))."""
    if result is None:
        return None
    entry = _CHECKS.get(method)
    if entry is None:
        return None
    checker, malformed = entry
    if type(params) is not list:
        params = []
    try:
        if not header and method in ("eth_getBlockByNumber", "eth_getBlockByHash"):
            found = _check_block(params, result, method == "eth_getBlockByHash", header=False)
        else:
            found = checker(params, result)
    except (ValueError, KeyError, TypeError, AttributeError):
        return malformed
    if type(found) is str:
        return found
    for number, block_hash in found:
        known = canonical(number)
        if known is not None and known != block_hash and known.lower() != block_hash:
            return f"not the canonical block {hex(number)}"
    return None
