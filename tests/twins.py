"""`Twins`: anvil nodes that serve the same chain (identical block hashes), for tests whose providers differ
in what they keep (a pruned-state node beside an archive one) or in how far they are (a lagging node).

Every node starts from the same genesis (`--timestamp`, chain id), mines only on demand (`--no-mining`,
FIFO mempool) and is fed the same blocks: block k has the timestamp `timestamp + interval * k` and the
same signed raw transactions, sent in the same order. `Twins` keeps that log of blocks, so a node that
was left behind can be replayed to exactly the same chain; every block a node mines is checked against
the hash the first node got for it.

    async with Twins(2, extra_args={1: ("--prune-history", "4")}) as twins:
        address = await twins.deploy_emitter()
        await twins.emit(address)
        async with twins.lagging(1):
            await twins.mine(3)          # node 1 stays 3 blocks behind
        await twins.check_same()         # caught up: one head hash on every node

Transactions are signed with anvil's dev key by `sign()`, which counts the nonce itself: send the dev
account's transactions through `sign()` only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from eth_utils import keccak, to_checksum_address

from livechain.devnet import Anvil
from tests.evm_helpers import DEV_KEY, contract_init_code

__all__ = ["Block", "Twins"]


@dataclass
class Block:
    """One block of the shared chain as `Twins` feeds it to every node."""

    number: int
    timestamp: int
    txs: list[str] = field(default_factory=list)  # signed raw transactions, in sending order
    hash: str | None = None  # as the first node to mine it got it


class Twins:
    """`n` anvil nodes on one chain. `extra_args` maps a node's index to extra anvil arguments."""

    def __init__(
        self,
        n: int = 2,
        *,
        extra_args: Mapping[int, Sequence[str]] | None = None,
        timestamp: int = 1_700_000_000,
        interval: int = 12,
        chain_id: int = 31337,
        gas_price: int = 10**10,
    ) -> None:
        extra_args = extra_args or {}
        common = ("--timestamp", str(timestamp), "--no-mining", "--order", "fifo")
        self.nodes = [
            Anvil(block_time=None, chain_id=chain_id, extra_args=(*common, *extra_args.get(i, ()))) for i in range(n)
        ]
        self.timestamp = timestamp
        self.interval = interval
        self.chain_id = chain_id
        self.gas_price = gas_price
        #: blocks[k - 1] is block k (genesis, block 0, is the same everywhere by construction)
        self.blocks: list[Block] = []
        #: how many blocks of the log each node has mined
        self.heights = [0] * n
        #: signed transactions for the next block
        self.pending: list[str] = []
        #: the dev account's next nonce (see `sign`)
        self.nonce = 0
        self.account = Account.from_key(DEV_KEY)
        self._in_pool: list[set[str]] = [set() for _ in range(n)]  # raw txs already sent to node i
        self._paused: set[int] = set()

    def __getitem__(self, i: int) -> Anvil:
        return self.nodes[i]

    def __len__(self) -> int:
        return len(self.nodes)

    @property
    def head(self) -> int:
        """The number of the newest block in the log (the head of the nodes that are not behind)."""
        return len(self.blocks)

    def behind(self, i: int) -> int:
        """How many blocks node i lacks."""
        return self.head - self.heights[i]

    # ---- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> Twins:
        try:
            await _all(node.start() for node in self.nodes)
        except BaseException:
            await self.stop()
            raise
        return self

    async def stop(self) -> None:
        await asyncio.gather(*(node.stop() for node in self.nodes))

    async def __aenter__(self) -> Twins:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- transactions and blocks ------------------------------------------------------------------

    def sign(self, **tx: Any) -> str:
        """A legacy transaction from the dev account, signed, as 0x-hex; the nonce is counted here."""
        tx = {"nonce": self.nonce, "gas": 200_000, "gasPrice": self.gas_price, "chainId": self.chain_id, **tx}
        if tx.get("to"):
            tx["to"] = to_checksum_address(tx["to"])
        raw = self.account.sign_transaction(tx).raw_transaction
        self.nonce = tx["nonce"] + 1
        return "0x" + raw.hex().removeprefix("0x")

    async def send_raw(self, raw: str) -> str:
        """Queue a signed transaction for the next block and send it to every node at the head that is not
        held back (the others get it when they catch up); returns its hash. It is mined by `mine`."""
        self.pending.append(raw)
        targets = [i for i in range(len(self)) if self.behind(i) == 0 and i not in self._paused]
        await _all(self._send(i, raw) for i in targets)
        return "0x" + keccak(hexstr=raw).hex()

    async def mine(self, n: int = 1, only: Iterable[int] | None = None) -> int:
        """Mine n blocks (the pending transactions go in the first) on the nodes `only` names, by default
        every node not held back by `lagging`; returns the new head number. The nodes must be at the head."""
        targets = sorted(only) if only is not None else [i for i in range(len(self)) if i not in self._paused]
        late = [i for i in targets if self.behind(i)]
        if late:
            raise ValueError(f"nodes {late} are behind the head: catch_up() first")
        for _ in range(n):
            number = self.head + 1
            block = Block(number, self.timestamp + self.interval * number, self.pending)
            self.pending = []
            self.blocks.append(block)
            await _all(self._apply(i, block) for i in targets)
        return self.head

    async def catch_up(self, only: Iterable[int] | None = None) -> None:
        """Replay the blocks each node lacks (all nodes, or `only`), then hand it the pending transactions."""
        targets = sorted(only) if only is not None else range(len(self))

        async def replay(i: int) -> None:
            for block in self.blocks[self.heights[i] :]:
                await self._apply(i, block)
            for raw in self.pending:
                await self._send(i, raw)

        await _all(replay(i) for i in targets)

    @contextlib.asynccontextmanager
    async def lagging(self, *indexes: int) -> AsyncIterator[None]:
        """Inside: `mine()` and `send_raw()` leave these nodes out, so they fall behind. At exit they catch up."""
        self._paused.update(indexes)
        try:
            yield
        finally:
            self._paused.difference_update(indexes)
        await self.catch_up(indexes)

    async def check_same(self) -> str:
        """Assert that every node's head is the log's head block, with one hash; returns that hash."""
        heads = await asyncio.gather(*(node.rpc("eth_getBlockByNumber", ["latest", False]) for node in self.nodes))
        seen = [(int(h["number"], 16), h["hash"]) for h in heads]  # type: ignore[index]
        expected = (self.head, self.blocks[-1].hash if self.blocks else seen[0][1])
        assert all(s == expected for s in seen), f"heads differ: {seen}, log head {expected}"
        return expected[1]

    # ---- the log-emitting contract ----------------------------------------------------------------

    async def deploy_emitter(self) -> str:
        """Deploy tests.evm_helpers' contract in a new block on every node; returns its address."""
        await self.send_raw(self.sign(data=contract_init_code()))
        await self.mine()
        return await self._created_address()

    async def emit(self, address: str, count: int = 1, *, mine: bool = True) -> list[str]:
        """`count` calls to the contract (one log each), mined in one new block unless `mine` is False;
        returns the transaction hashes."""
        hashes = [await self.send_raw(self.sign(to=address, data="0x")) for _ in range(count)]
        if mine:
            await self.mine()
        return hashes

    # ---- internals --------------------------------------------------------------------------------

    async def _send(self, i: int, raw: str) -> None:
        if raw not in self._in_pool[i]:
            await self.nodes[i].rpc("eth_sendRawTransaction", [raw])
            self._in_pool[i].add(raw)

    async def _apply(self, i: int, block: Block) -> None:
        """Mine `block` on node i (the next block it lacks) and check it against the log."""
        assert self.heights[i] == block.number - 1, (i, self.heights[i], block.number)
        node = self.nodes[i]
        for raw in block.txs:
            await self._send(i, raw)
        await node.rpc("evm_mine", [block.timestamp])
        self._in_pool[i].difference_update(block.txs)
        mined: Any = await node.rpc("eth_getBlockByNumber", [hex(block.number), False])
        assert len(mined["transactions"]) == len(block.txs), f"node {i} block {block.number}: {mined}"
        if block.hash is None:
            block.hash = mined["hash"]
        assert mined["hash"] == block.hash, f"node {i} mined block {block.number} as {mined['hash']}, not {block.hash}"
        self.heights[i] += 1

    async def _created_address(self) -> str:
        node = self.nodes[next(i for i in range(len(self)) if self.behind(i) == 0)]
        tx_hash = "0x" + keccak(hexstr=self.blocks[-1].txs[-1]).hex()
        receipt: Any = await node.rpc("eth_getTransactionReceipt", [tx_hash])
        return receipt["contractAddress"]


async def _all(coros: Iterable[Coroutine[Any, Any, Any]]) -> None:
    """Run the coroutines concurrently, let every one finish, then raise the first failure if any."""
    results = await asyncio.gather(*coros, return_exceptions=True)
    failure = next((r for r in results if isinstance(r, BaseException)), None)
    if failure is not None:
        raise failure
