"""livechain.evm.integrity: block header hashes of real mainnet blocks of every era, and each rule of `check`
passing and failing, on hand-made answers derived from them."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livechain.evm.integrity import check, header_hash

BLOCKS = Path(__file__).parent / "fixtures" / "blocks"
FIXTURES = sorted(BLOCKS.glob("mainnet-*.json"))
LEGACY = ("parentHash", "sha3Uncles", "miner", "stateRoot", "transactionsRoot", "receiptsRoot", "logsBloom",
          "difficulty", "number", "gasLimit", "gasUsed", "timestamp", "extraData", "mixHash", "nonce")
FORKS = ("baseFeePerGas", "withdrawalsRoot", "blobGasUsed", "excessBlobGas", "parentBeaconBlockRoot", "requestsHash")
QUANTITIES = {"difficulty", "number", "gasLimit", "gasUsed", "timestamp", "baseFeePerGas", "blobGasUsed",
              "excessBlobGas"}
H = "0x" + "ab" * 32  # a block hash of the hand-made answers
TX = "0x" + "cd" * 32  # a transaction hash


def load(name: str) -> dict:
    return json.loads((BLOCKS / name).read_text())


def never(number: int) -> str | None:
    return None


def reason(method: str, params: list, result: object, canonical=never) -> str | None:
    """check(), and what every reason must be: short, and never a URL."""
    found = check(method, params, result, canonical)
    assert found is None or (isinstance(found, str) and "://" not in found and len(found) < 120)
    return found


# ---------------------------------------------------------------------------------------------- header hash


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_every_mainnet_era_hashes_to_its_block_hash(path):
    block = json.loads(path.read_text())
    assert header_hash(block) == block["hash"]
    assert reason("eth_getBlockByNumber", [block["number"], False], block) is None
    assert reason("eth_getBlockByHash", [block["hash"].upper().replace("0X", "0x"), False], block) is None
    assert reason("eth_getBlockByNumber", ["latest", False], block, lambda n: block["hash"]) is None


def test_the_fixtures_cover_every_header_layout():
    layouts = set()
    for path in FIXTURES:
        block = json.loads(path.read_text())
        layouts.add(tuple(name for name in FORKS if name in block))
    assert layouts == {FORKS[:i] for i in (0, 1, 2, 5, 6)}  # legacy, London, Shanghai, Cancun, Prague


def changed(value: str, name: str) -> str:
    """One field of a header, changed in the smallest way its kind allows."""
    if name in QUANTITIES:
        return hex(int(value, 16) + 1)
    if name == "extraData":
        return value + "00"
    return value[:-1] + ("0" if value[-1] != "0" else "1")


@pytest.mark.parametrize("name", ["mainnet-23094898-prague.json", "mainnet-2000004-homestead.json"])
def test_a_single_changed_field_of_any_kind_breaks_the_hash(name):
    block = load(name)
    fields = [f for f in (*LEGACY, *FORKS) if f in block]
    assert len(fields) in (15, 21)
    for field in fields:
        tampered = {**block, field: changed(block[field], field)}
        assert header_hash(tampered) != block["hash"], field
        assert reason("eth_getBlockByNumber", ["latest", False], tampered) == "block hash is not the hash of its header"
    # what the header does not hold is free to change
    assert header_hash({**block, "size": "0x1", "totalDifficulty": "0x2", "transactions": [H]}) == block["hash"]


def test_presence_decides_the_layout():
    prague = load("mainnet-23094898-prague.json")
    cancun = {k: v for k, v in prague.items() if k != "requestsHash"}
    assert header_hash(cancun) not in (None, prague["hash"])  # hashed as a Cancun header: another hash
    assert header_hash({**prague, "requestsHash": None}) == header_hash(cancun)  # null is absent
    for gap in ("baseFeePerGas", "withdrawalsRoot", "blobGasUsed", "parentBeaconBlockRoot"):
        assert header_hash({k: v for k, v in prague.items() if k != gap}) is None, gap  # a later one without it
    for legacy in LEGACY:
        assert header_hash({k: v for k, v in prague.items() if k != legacy}) is None, legacy
    assert header_hash({**prague, "nonce": None}) is None
    # a header field of a fork this module does not encode: cannot be checked rather than reported wrong
    assert header_hash({**prague, "slotNumber": "0x1"}) is None
    assert header_hash({**prague, "blockAccessListHash": H}) is None
    assert reason("eth_getBlockByNumber", [prague["number"], False], {**prague, "slotNumber": "0x1"}) is None


def test_hex_is_read_by_value():
    block = load("mainnet-19449567-cancun.json")
    same = {**block, "gasLimit": "0x0" + block["gasLimit"][2:], "stateRoot": block["stateRoot"].upper().replace("0X", "0x"),
            "blobGasUsed": "0x000"}
    assert block["blobGasUsed"] == "0x0" and header_hash(same) == block["hash"]  # 0 encodes as empty bytes


@pytest.mark.parametrize(("field", "value"), [
    ("parentHash", "0x" + "ab" * 31),  # a byte short
    ("parentHash", "0x" + "ab" * 33),
    ("parentHash", "0x" + "zz" * 32),
    ("parentHash", "0x" + "ab" * 31 + " a"),  # whitespace, same length
    ("parentHash", "ab" * 33),  # no 0x
    ("miner", "0x" + "11" * 32),
    ("logsBloom", "0x00"),
    ("nonce", "0x00"),
    ("extraData", "0x0"),
    ("extraData", "0x 0"),
    ("number", "0x"),
    ("number", "0x-1"),
    ("number", "0x_1"),
    ("number", "0x1 "),
    ("number", "0x1g"),
    ("number", "12"),
    ("number", 12),
    ("number", "0x1" + "0" * 64),  # above 256 bits
    ("timestamp", ["0x1"]),
])
def test_a_malformed_field_is_an_error_and_a_malformed_block(field, value):
    block = {**load("mainnet-18722845-shanghai.json"), field: value}
    with pytest.raises(ValueError):
        header_hash(block)
    assert reason("eth_getBlockByNumber", ["latest", False], block) == "malformed block"


def test_header_hash_of_a_non_object_is_an_error():
    with pytest.raises(ValueError):
        header_hash(["not", "a", "block"])  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- blocks


def test_block_by_number_is_the_one_asked_for():
    block = load("mainnet-22263623-cancun.json")
    assert reason("eth_getBlockByNumber", ["0x153b747", False], block) is None
    assert reason("eth_getBlockByNumber", ["0x0153b747", False], block) is None  # by value
    assert reason("eth_getBlockByNumber", ["0x153b746", False], block) == "block 0x153b747 is not the one asked for"
    for tag in ("latest", "safe", "finalized", "earliest", None, 7, "0xnope"):  # nothing to compare
        assert reason("eth_getBlockByNumber", [tag, False], block) is None


def test_block_by_hash_is_the_one_asked_for():
    block = load("mainnet-22263623-cancun.json")
    assert reason("eth_getBlockByHash", [block["hash"].upper().replace("0X", "0x"), False], block) is None
    assert reason("eth_getBlockByHash", [H, False], block) == f"block {block['hash']} is not the one asked for"
    assert reason("eth_getBlockByHash", ["0x1234", False], block) is None  # not a hash: nothing to compare


def test_block_on_the_canonical_chain():
    block = load("mainnet-22263623-cancun.json")
    asked: list[int] = []

    def canonical(number: int) -> str | None:
        asked.append(number)
        return H

    assert reason("eth_getBlockByNumber", ["latest", False], block, canonical) == "not the canonical block 0x153b747"
    assert asked == [0x153B747]
    assert reason("eth_getBlockByHash", [block["hash"]], block, lambda n: block["hash"].upper()) is None
    assert reason("eth_getBlockByNumber", ["pending", False], block, canonical) is None  # pending: not compared


def test_a_tampered_block_is_found_before_the_canonical_chain_is_asked():
    block = {**load("mainnet-22263623-cancun.json"), "gasUsed": "0x1"}

    def canonical(number: int) -> str:
        raise AssertionError("asked although the answer is already wrong")

    assert reason("eth_getBlockByNumber", ["latest", False], block, canonical) == "block hash is not the hash of its header"


def test_full_transactions_name_their_block():
    block = load("mainnet-14151203-london.json")
    assert len(block["transactions"]) == 12
    assert reason("eth_getBlockByNumber", [block["number"], True], block) is None
    for field, value in (("blockHash", H), ("blockNumber", "0xd7ee24"), ("blockNumber", None), ("blockHash", None)):
        tampered = copy.deepcopy(block)
        tampered["transactions"][5][field] = value
        found = reason("eth_getBlockByNumber", [block["number"], True], tampered)
        assert found == ("transaction of another block" if value else "malformed block"), (field, value)
    same = copy.deepcopy(block)
    same["transactions"][0]["blockNumber"] = "0x00d7ee23"
    same["transactions"][1]["blockHash"] = block["hash"].upper().replace("0X", "0x")
    assert reason("eth_getBlockByNumber", [block["number"], True], same) is None
    # transactions as hashes although objects were asked for: nothing to compare them with
    assert reason("eth_getBlockByNumber", [block["number"], True], {**block, "transactions": [TX]}) is None
    assert reason("eth_getBlockByNumber", [block["number"], True], {**block, "transactions": None}) == "malformed block"
    assert reason("eth_getBlockByNumber", [block["number"], True], {**block, "transactions": [1]}) == "malformed block"


def test_nothing_to_check():
    block = load("mainnet-22263623-cancun.json")
    assert reason("eth_getBlockByNumber", ["0x1", False], None) is None  # null: not found
    assert reason("eth_getBlockByNumber", ["pending", False], {**block, "hash": None, "number": None}) is None
    assert reason("eth_chainId", [], "0x1") is None  # a method not checked
    assert reason("eth_getBalance", [H, "latest"], {"odd": 1}) is None
    assert reason("eth_getBlockByNumber", None, block) is None  # type: ignore[arg-type]  # client params: lenient
    assert reason("eth_getBlockByNumber", {"x": 1}, block) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("result", [[], "0x1", 1, True, {"hash": "0x12"}, {"hash": H}, {"hash": H, "number": "x"}])
def test_a_malformed_block(result):
    for method in ("eth_getBlockByNumber", "eth_getBlockByHash"):
        assert reason(method, ["latest", False], result) == "malformed block"


# ---------------------------------------------------------------------------------------------- transactions


def transaction(**fields) -> dict:
    return {"hash": TX, "blockHash": H, "blockNumber": "0x10", "transactionIndex": "0x0", "from": "0x" + "11" * 20,
            **fields}


def test_transaction_is_the_one_asked_for():
    assert reason("eth_getTransactionByHash", [TX.upper().replace("0X", "0x")], transaction()) is None
    other = "0x" + "ef" * 32
    assert reason("eth_getTransactionByHash", [other], transaction()) == f"transaction {TX} is not the one asked for"
    assert reason("eth_getTransactionByHash", [TX], transaction(), lambda n: H if n == 0x10 else None) is None
    assert reason("eth_getTransactionByHash", [TX], transaction(), lambda n: TX) == "not the canonical block 0x10"


def test_a_pending_transaction_is_not_held_to_a_block():
    pending = transaction(blockHash=None, blockNumber=None, transactionIndex=None)

    def canonical(number: int) -> str:
        raise AssertionError("a pending transaction has no block to compare")

    assert reason("eth_getTransactionByHash", [TX], pending, canonical) is None


@pytest.mark.parametrize("result", [[], "0x1", {"hash": 1}, transaction(hash="0x12"), transaction(blockNumber="0xg"),
                                    transaction(blockHash="0x12"), transaction(blockNumber=None)])
def test_a_malformed_transaction(result):
    assert reason("eth_getTransactionByHash", [TX], result) == "malformed transaction"


# ---------------------------------------------------------------------------------------------- receipts


def log(index: int, *, tx: str = TX, block: str = H, number: str = "0x10", **fields) -> dict:
    return {"address": "0x" + "33" * 20, "topics": [], "data": "0x", "blockHash": block, "blockNumber": number,
            "transactionHash": tx, "transactionIndex": "0x0", "logIndex": hex(index), "removed": False, **fields}


def receipt(tx: str = TX, logs: int = 2, **fields) -> dict:
    return {"transactionHash": tx, "blockHash": H, "blockNumber": "0x10", "transactionIndex": "0x0", "status": "0x1",
            "logs": [log(i, tx=tx) for i in range(logs)], **fields}


def test_receipt_of_the_transaction_asked_for():
    assert reason("eth_getTransactionReceipt", [TX], receipt()) is None
    assert reason("eth_getTransactionReceipt", ["0x" + "ef" * 32], receipt()) == "receipt of another transaction"
    assert reason("eth_getTransactionReceipt", [TX], receipt(), lambda n: H.upper().replace("0X", "0x")) is None
    assert reason("eth_getTransactionReceipt", [TX], receipt(), lambda n: TX) == "not the canonical block 0x10"


def test_receipt_logs_name_its_transaction_and_block():
    for tampered, expected in (
        ({"transactionHash": "0x" + "ef" * 32}, "log of another transaction"),
        ({"blockHash": "0x" + "ef" * 32}, "log of another block"),
        ({"blockNumber": "0x11"}, "log of another block"),
        ({"blockNumber": "0x010"}, None),  # the same number
        ({"blockHash": H.upper().replace("0X", "0x")}, None),
        ({"blockNumber": "ten"}, "malformed receipt"),
        ({"transactionHash": None}, "malformed receipt"),
    ):
        answer = receipt()
        answer["logs"][1].update(tampered)
        assert reason("eth_getTransactionReceipt", [TX], answer) == expected, tampered


@pytest.mark.parametrize("result", [[], receipt(transactionHash="0x1"), receipt(blockHash=None), receipt(logs=0, blockNumber=1),
                                    {**receipt(), "logs": {}}, {**receipt(), "logs": ["0x1"]}])
def test_a_malformed_receipt(result):
    assert reason("eth_getTransactionReceipt", [TX], result) == "malformed receipt"


def block_receipts(count: int = 3) -> list[dict]:
    return [receipt(f"0x{i:064x}", transactionIndex=hex(i)) for i in range(1, count + 1)]


def test_block_receipts_of_one_block_the_one_asked_for():
    answer = block_receipts()
    for asked in ("0x10", H, {"blockHash": H}, {"blockNumber": "0x10"}, "latest", None):
        assert reason("eth_getBlockReceipts", [asked], answer) is None, asked
    for asked in ("0x11", "0x" + "ef" * 32, {"blockHash": "0x" + "ef" * 32}, {"blockNumber": "0x11"}):
        assert reason("eth_getBlockReceipts", [asked], answer) == "receipts of another block", asked
    assert reason("eth_getBlockReceipts", ["0x10"], []) is None
    asked: list[int] = []
    assert reason("eth_getBlockReceipts", ["0x10"], answer, lambda n: asked.append(n) or TX) == "not the canonical block 0x10"
    assert asked == [0x10]  # once for the block, not once per receipt


def test_block_receipts_disagreeing():
    for field, value in (("blockHash", "0x" + "ef" * 32), ("blockNumber", "0x11")):
        answer = block_receipts()
        answer[2][field] = value
        assert reason("eth_getBlockReceipts", ["latest"], answer) == "receipts of different blocks"
    answer = block_receipts()
    answer[1]["logs"][0]["transactionHash"] = answer[0]["transactionHash"]
    assert reason("eth_getBlockReceipts", ["latest"], answer) == "log of another transaction"
    answer = block_receipts()
    answer[1]["logs"][1]["blockNumber"] = "0x11"
    assert reason("eth_getBlockReceipts", ["latest"], answer) == "log of another block"


@pytest.mark.parametrize("result", [{}, [1], [receipt(), 2], [receipt(blockHash="0xab")], [receipt(), receipt(transactionHash=5)]])
def test_malformed_block_receipts(result):
    assert reason("eth_getBlockReceipts", ["latest"], result) == "malformed receipts"


# ---------------------------------------------------------------------------------------------- logs


def block_hash(number: int) -> str:
    return f"0x{number:064x}"


def logs_of(*blocks: tuple[int, int]) -> list[dict]:
    """(number, count) per block, in order."""
    out = []
    for number, count in blocks:
        out += [log(i, block=block_hash(number), number=hex(number), tx=TX) for i in range(count)]
    return out


def test_logs_in_the_asked_range_and_block():
    answer = logs_of((10, 2), (12, 3), (15, 1))
    assert reason("eth_getLogs", [{"fromBlock": "0xa", "toBlock": "0xf"}], answer) is None
    assert reason("eth_getLogs", [{"fromBlock": "0xb", "toBlock": "0xf"}], answer) == "log of block 0xa, outside the range asked for"
    assert reason("eth_getLogs", [{"fromBlock": "0xa", "toBlock": "0xe"}], answer) == "log of block 0xf, outside the range asked for"
    assert reason("eth_getLogs", [{"fromBlock": "0xb"}], answer) == "log of block 0xa, outside the range asked for"
    for flt in ({"fromBlock": "earliest", "toBlock": "latest"}, {}, {"toBlock": "pending"}, "nonsense"):
        assert reason("eth_getLogs", [flt], answer) is None, flt
    assert reason("eth_getLogs", [], answer) is None
    one = logs_of((12, 3))
    assert reason("eth_getLogs", [{"blockHash": block_hash(12)}], one) is None
    assert reason("eth_getLogs", [{"blockHash": block_hash(13)}], one) == "log of another block"
    assert reason("eth_getLogs", [{"blockHash": block_hash(12), "fromBlock": "0x20"}], one) is None  # blockHash wins
    assert reason("eth_getLogs", [{}], []) is None


def test_logs_in_block_and_index_order():
    assert reason("eth_getLogs", [{}], logs_of((12, 1), (10, 1))) == "logs out of order"
    answer = logs_of((10, 3))
    answer[1], answer[2] = answer[2], answer[1]
    assert reason("eth_getLogs", [{}], answer) == "logs out of order"
    answer = logs_of((10, 3))
    answer[2]["logIndex"] = answer[1]["logIndex"]  # non-decreasing is the rule
    assert reason("eth_getLogs", [{}], answer) is None
    answer = logs_of((10, 2), (11, 2))
    answer[2]["logIndex"] = "0x0"  # a new block starts its indexes again
    assert reason("eth_getLogs", [{}], answer) is None


def test_logs_of_one_number_name_one_block():
    answer = logs_of((10, 3))
    answer[2]["blockHash"] = block_hash(99)
    assert reason("eth_getLogs", [{}], answer) == "logs of two blocks numbered 0xa"
    answer = logs_of((10, 3))
    answer[1]["blockNumber"] = "0x0a"  # the same number written otherwise
    answer[2]["blockHash"] = answer[2]["blockHash"].upper().replace("0X", "0x")
    assert reason("eth_getLogs", [{}], answer) is None


def test_logs_on_the_canonical_chain_once_per_block():
    answer = logs_of((10, 3), (11, 2), (13, 4))
    asked: list[int] = []

    def canonical(number: int) -> str | None:
        asked.append(number)
        return {10: block_hash(10), 11: None, 13: block_hash(13)}[number]

    assert reason("eth_getLogs", [{}], answer, canonical) is None
    assert asked == [10, 11, 13]
    assert reason("eth_getLogs", [{}], answer, lambda n: H if n == 13 else None) == "not the canonical block 0xd"


def test_pending_logs_are_skipped():
    answer = [*logs_of((10, 1)), log(5, block=None, number=None, logIndex=None)]
    assert reason("eth_getLogs", [{"toBlock": "pending"}], answer) is None


@pytest.mark.parametrize("tamper", [
    {"logIndex": "0x1 "}, {"logIndex": "1"}, {"logIndex": "0x_1"}, {"logIndex": None}, {"logIndex": "0x"},
    {"blockNumber": "0xq"}, {"blockNumber": 10}, {"blockHash": None}, {"blockHash": 5},
])
def test_malformed_logs(tamper):
    answer = logs_of((10, 2))
    answer[1].update(tamper)
    assert reason("eth_getLogs", [{}], answer) == "malformed logs"
    assert reason("eth_getLogs", [{}], {"logs": []}) == "malformed logs"
    assert reason("eth_getLogs", [{}], ["0x1"]) == "malformed logs"


# ---------------------------------------------------------------------------------------------- never an exception

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8)
    | st.sampled_from(["0x", "0x0", "0x10", "0xab", H, TX, "latest", "0x" + "00" * 20, "0x" + "00" * 256]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["hash", "number", "blockHash", "blockNumber", "logIndex", "transactionHash", "logs",
                         "transactions", *LEGACY, *FORKS]), inner, max_size=8),
    max_leaves=30,
)
METHODS = ["eth_getBlockByNumber", "eth_getBlockByHash", "eth_getTransactionByHash", "eth_getTransactionReceipt",
           "eth_getBlockReceipts", "eth_getLogs"]


@settings(max_examples=400, deadline=None, derandomize=True)
@given(method=st.sampled_from(METHODS), params=JSON, result=JSON)
def test_whatever_the_answer_check_gives_none_or_a_reason(method, params, result):
    found = check(method, params, result, lambda n: None)  # type: ignore[arg-type]
    assert found is None or (isinstance(found, str) and "://" not in found)


def test_a_failing_canonical_lookup_is_not_hidden():
    def canonical(number: int) -> str:
        raise RuntimeError("the caller's own bug")

    with pytest.raises(RuntimeError):
        check("eth_getTransactionReceipt", [TX], receipt(), canonical)
