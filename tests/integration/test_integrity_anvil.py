"""livechain.evm.integrity on real answers: anvil nodes of ten hardforks (Frontier to anvil's default), blocks
with transactions and logs (the log-emitting contract of tests/evm_helpers.py), every answer passing `check`,
each block's computed header hash equal to the hash anvil gave it; and the same answers, given for another
request or altered, failing it."""

from __future__ import annotations

from itertools import pairwise

import pytest

from livechain.devnet import Anvil
from livechain.evm.integrity import check, header_hash
from tests.evm_helpers import DEV_ADDRESS, contract_init_code, receipt

LONDON = ("baseFeePerGas",)
SHANGHAI = (*LONDON, "withdrawalsRoot")
CANCUN = (*SHANGHAI, "blobGasUsed", "excessBlobGas", "parentBeaconBlockRoot")
PRAGUE = (*CANCUN, "requestsHash")
ALL_FORK_FIELDS = PRAGUE
#: --hardfork value (None: anvil's default, "Bpo1" in anvil 1.7) → the header fields after the 15 legacy ones
#: that fork adds (anvil also writes blobGasUsed/excessBlobGas into some headers of earlier forks: its genesis
#: block, after London without withdrawalsRoot: a gap, which header_hash cannot check)
HARDFORKS = {
    "frontier": (),
    "byzantium": (),
    "berlin": (),
    "london": LONDON,
    "paris": LONDON,
    "shanghai": SHANGHAI,
    "cancun": CANCUN,
    "prague": PRAGUE,
    "osaka": PRAGUE,
    None: PRAGUE,
}


def must_pass(method: str, params: list, result: object, canonical) -> None:
    found = check(method, params, result, canonical)
    assert found is None, (method, params, found)


def has_gap(block: dict) -> bool:
    """A fork field absent while a later one is present."""
    present = [block.get(name) is not None for name in ALL_FORK_FIELDS]
    return any(not earlier and later for earlier, later in pairwise(present))


class Sender:
    """Transactions from anvil's unlocked dev account: legacy (gasPrice) before London, EIP-1559 after."""

    def __init__(self, node: Anvil, legacy: bool) -> None:
        self.node = node
        self.fee = {"gasPrice": "0x3b9aca00"} if legacy else {}

    async def send(self, **fields: str) -> str:
        return await self.node.rpc("eth_sendTransaction", [{"from": DEV_ADDRESS, "gas": "0x30000", **self.fee, **fields}])

    async def deploy_emitter(self) -> str:
        """The contract of tests/evm_helpers.py: every call emits LOG1."""
        return (await receipt(self.node, await self.send(data=contract_init_code())))["contractAddress"]

    async def emit(self, address: str) -> str:
        return await self.send(to=address, data="0x")

    async def transfer(self) -> str:
        return await self.send(to="0x" + "42" * 20, value="0x1")


@pytest.mark.parametrize("hardfork", list(HARDFORKS), ids=lambda h: h or "default")
async def test_every_answer_of_anvil_passes(hardfork):
    extra = () if hardfork is None else ("--hardfork", hardfork)
    async with Anvil(block_time=None, extra_args=extra) as node:
        info = await node.rpc("anvil_nodeInfo", [])
        if hardfork is not None:
            assert info["hardFork"].lower() == hardfork
        sender = Sender(node, legacy=not HARDFORKS[hardfork])
        address = await sender.deploy_emitter()  # a block of its own (automine)
        first = await sender.emit(address)
        await receipt(node, first)
        await node.rpc("evm_setAutomine", [False])  # then one block of four transactions, three with a log
        batch = [await sender.emit(address), await sender.transfer(), await sender.emit(address),
                 await sender.emit(address)]
        await node.rpc("evm_mine", [])
        await node.rpc("evm_setAutomine", [True])
        transactions = [first, *batch]
        head = int(await node.rpc("eth_blockNumber"), 16)
        assert head == 3

        blocks: dict[int, dict] = {}
        for number in range(head + 1):
            for full in (False, True):
                block = await node.rpc("eth_getBlockByNumber", [hex(number), full])
                if number == 0 and has_gap(block):  # anvil's genesis of a pre-Cancun fork
                    assert header_hash(block) is None
                else:
                    assert header_hash(block) == block["hash"], (hardfork, number)
                if number:  # the fork's own header fields are there (and checked)
                    fork_fields = tuple(name for name in ALL_FORK_FIELDS if name in block)
                    assert fork_fields[: len(HARDFORKS[hardfork])] == HARDFORKS[hardfork], (hardfork, fork_fields)
                blocks[number] = block
        canonical = {n: b["hash"] for n, b in blocks.items()}.get
        assert len(blocks[head]["transactions"]) == 4

        for number, block in blocks.items():
            must_pass("eth_getBlockByNumber", [hex(number), True], block, canonical)
            must_pass("eth_getBlockByHash", [block["hash"], False],
                      await node.rpc("eth_getBlockByHash", [block["hash"], False]), canonical)
        for tag in ("latest", "earliest", "safe", "finalized", "pending"):
            for full in (False, True):
                must_pass("eth_getBlockByNumber", [tag, full], await node.rpc("eth_getBlockByNumber", [tag, full]),
                          canonical)

        for tx in transactions:
            must_pass("eth_getTransactionByHash", [tx], await node.rpc("eth_getTransactionByHash", [tx]), canonical)
            must_pass("eth_getTransactionReceipt", [tx], await node.rpc("eth_getTransactionReceipt", [tx]), canonical)
        for number, block in blocks.items():
            for asked in (hex(number), block["hash"]):
                must_pass("eth_getBlockReceipts", [asked], await node.rpc("eth_getBlockReceipts", [asked]), canonical)

        every = {"fromBlock": "0x0", "toBlock": "latest", "address": address}
        logs = await node.rpc("eth_getLogs", [every])
        assert len(logs) == 4 and len({log["blockNumber"] for log in logs}) == 2
        must_pass("eth_getLogs", [every], logs, canonical)
        for flt in ({"fromBlock": hex(head), "toBlock": hex(head)}, {"blockHash": blocks[head]["hash"]},
                    {"fromBlock": "0x2", "toBlock": "0x3", "topics": [None]}):
            must_pass("eth_getLogs", [flt], await node.rpc("eth_getLogs", [flt]), canonical)

        # the same real answers, given for another request or altered, do not pass
        latest = blocks[head]
        assert check("eth_getBlockByNumber", [hex(head - 1), False], latest, canonical) == (
            f"block {hex(head)} is not the one asked for")
        assert check("eth_getBlockByHash", [blocks[1]["hash"], False], latest, canonical) == (
            f"block {latest['hash']} is not the one asked for")
        assert check("eth_getBlockByNumber", ["latest", False], {**latest, "gasUsed": "0x1"}, canonical) == (
            "block hash is not the hash of its header")
        assert check("eth_getBlockByNumber", ["latest", False], latest, lambda n: blocks[1]["hash"]) == (
            f"not the canonical block {hex(head)}")
        answer = await node.rpc("eth_getTransactionReceipt", [batch[0]])
        assert check("eth_getTransactionReceipt", [batch[2]], answer, canonical) == "receipt of another transaction"
        assert check("eth_getLogs", [{"blockHash": blocks[2]["hash"]}], logs, canonical) == "log of another block"
        assert check("eth_getLogs", [every], logs[::-1], canonical) == "logs out of order"
        assert check("eth_getLogs", [{"fromBlock": hex(head), "toBlock": "latest"}], logs, canonical) == (
            "log of block 0x2, outside the range asked for")
        receipts = await node.rpc("eth_getBlockReceipts", [hex(head)])
        assert check("eth_getBlockReceipts", ["0x2"], receipts, canonical) == "receipts of another block"
