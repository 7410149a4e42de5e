"""The cache's parts alone: request keys, the store's bound, and the rules of what is kept and for how long
(`ChainCache` over a chain whose state the test sets: best head, finalized head, canonical hashes)."""

from __future__ import annotations

import random

import pytest

from livechain.cache.chain import ChainCache
from livechain.cache.store import BLOCK, FINAL, HEAD, Entry, MemoryStore
from livechain.evm.requests import describe, plain_key

A = "0x" + "ab" * 20


class State:
    """A chain as the cache sees it: heads 0..best, hashes h<n>, finalized at `finalized`."""

    def __init__(self, best: int = 100, finalized: int | None = 90) -> None:
        self.best = best
        self.final = finalized
        self.hashes = {n: f"0x{n:064x}" for n in range(best + 1)}
        self.heads = {"up": best, "behind": best - 1}

    def best_head(self) -> int | None:
        return self.best

    def finalized(self) -> int | None:
        return self.final

    def canonical_hash(self, number: int) -> str | None:
        return self.hashes.get(number) if number > self.best - 64 else None  # the tracker remembers 64 here

    def canonical_number(self, block_hash: str) -> int | None:
        return next((n for n, h in self.hashes.items() if h == block_hash and n > self.best - 64), None)

    def provider_head(self, provider: str) -> int | None:
        return self.heads.get(provider)


def cache_for(state: State, clock=None) -> ChainCache:
    return ChainCache("c", MemoryStore(1 << 20, 1 << 16), state, clock or (lambda: 0.0))


def keep(cache: ChainCache, method: str, params: list, value, provider: str = "up", **kw) -> bool:
    described = describe(method, params)
    assert described is not None
    return cache.admit(described.key, described.ref, value, provider, cache.epoch(), **kw)


def lifetime(cache: ChainCache, method: str, params: list):
    entry = cache.lookup(describe(method, params).key)
    return None if entry is None else entry.lifetime


# ---------------------------------------------------------------------------------------------- keys


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("eth_getBalance", [A.upper().replace("0X", "0x"), "0x0a"]), ("eth_getBalance", [A, "0xA"])),
        (("eth_call", [{"to": A, "data": "0xAB", "gas": "0x0100"}]), ("eth_call", [{"gas": "0x100", "data": "0xab", "to": A}, "latest"])),
        (("eth_getLogs", [{"address": [A, "0x" + "cd" * 20], "topics": [["0x2", "0x1"], None]}]),
         ("eth_getLogs", [{"address": ["0x" + "CD" * 20, A], "topics": [["0x1", "0x2"]], "fromBlock": "latest", "toBlock": "latest"}])),
        (("eth_getStorageAt", [A, "0x00", "0x5"]), ("eth_getStorageAt", [A, "0x0", "0x05"])),
        (("eth_getBlockByNumber", ["0x01", False]), ("eth_getBlockByNumber", ["0x1", False])),
    ],
)
def test_requests_that_ask_the_same_question_share_a_key(a, b):
    assert describe(*a).key == describe(*b).key


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("eth_getBalance", [A, "0x1"]), ("eth_getBalance", [A, "0x2"])),
        (("eth_call", [{"to": A, "data": "0x00"}]), ("eth_call", [{"to": A, "data": "0x0000"}])),  # data keeps its zeros
        (("eth_getBlockByNumber", ["0x1", False]), ("eth_getBlockByNumber", ["0x1", True])),
        (("eth_getLogs", [{"topics": [None, "0x1"]}]), ("eth_getLogs", [{"topics": ["0x1"]}])),
    ],
)
def test_different_questions_never_share_a_key(a, b):
    assert describe(*a).key != describe(*b).key


def test_what_cannot_be_read_is_not_described_but_still_has_a_plain_key():
    assert describe("eth_getBalance", [A]) is None  # a node refuses it without a block: so must the cache
    assert describe("eth_getBlockByNumber", ["soon", False]) is None
    assert describe("eth_getLogs", ["not a filter"]) is None
    # what a node refuses must not share the key of what it answers ("0x1 " and "0x1_0" are not "0x1", "0x10")
    for bad in ("0x1 ", "0x1_0", "0x", "0xg"):
        assert describe("eth_getBlockByNumber", [bad, False]) is None, bad
        assert describe("eth_getBalance", [A, bad]) is None, bad
    assert describe("eth_estimateGas", [{}]) is None  # not a cached method
    assert plain_key("eth_estimateGas", [{"b": 1, "a": 2}]) == plain_key("eth_estimateGas", [{"a": 2, "b": 1}])
    assert plain_key("x", [2**70]) is None


# ---------------------------------------------------------------------------------------------- store


def test_the_store_stays_within_its_bytes_evicting_the_least_recently_used():
    store = MemoryStore(max_bytes=10_000, max_entry_bytes=2_000)
    rng = random.Random(3)
    for i in range(2_000):
        store.put(f"k{i}".encode(), Entry(b"x" * rng.randrange(1, 1_500)))
        if i % 3 == 0:
            store.get(b"k0")  # kept young (the store holds ~8 entries): never evicted
        assert store.bytes <= store.max_bytes
    assert store.get(b"k0") is not None and store.evictions > 0
    assert not store.put(b"big", Entry(b"x" * 5_000)) and store.oversized == 1
    store.configure(max_bytes=1_000, max_entry_bytes=2_000)
    assert store.bytes <= 1_000


# ---------------------------------------------------------------------------------------------- lifetimes


def test_finality_decides_lifetime():
    state = State(best=100, finalized=90)
    cache = cache_for(state)
    assert keep(cache, "eth_getBalance", [A, hex(80)], "0x1") and lifetime(cache, "eth_getBalance", [A, hex(80)]) == FINAL
    assert keep(cache, "eth_getBalance", [A, hex(95)], "0x2") and lifetime(cache, "eth_getBalance", [A, hex(95)]) == BLOCK
    assert keep(cache, "eth_getBalance", [A, "latest"], "0x3") and lifetime(cache, "eth_getBalance", [A, "latest"]) == HEAD
    assert keep(cache, "eth_chainId", [], "0x1") and lifetime(cache, "eth_chainId", []) == FINAL
    assert not keep(cache, "eth_getBalance", [A, hex(101)], "0x0")  # above the best head


def test_never_kept_null_lagging_unknown_blocks_errors_and_answers_that_raced_a_head():
    state = State(best=100, finalized=90)
    cache = cache_for(state)
    assert not keep(cache, "eth_getBlockByNumber", [hex(95), False], None)  # null: lag, not an answer
    assert not keep(cache, "eth_getBalance", [A, hex(95)], "0x1", provider="behind")
    assert not keep(cache, "eth_getBalance", [A, hex(95)], "0x1", provider="unknown")
    state.final = 20
    assert not keep(cache, "eth_getBalance", [A, hex(30)], "0x1")  # unfinalized, and its hash is not remembered
    state.final = 90
    assert not keep(cache, "eth_call", [{"to": A}, hex(95)], {"code": 3, "message": "execution reverted"}, error=True)
    assert keep(cache, "eth_call", [{"to": A}, hex(80)], {"code": 3, "message": "execution reverted"}, error=True)
    described = describe("eth_getBalance", [A, "latest"])
    epoch = cache.epoch()
    cache.new_head(101)
    assert not cache.admit(described.key, described.ref, "0x1", "up", epoch)


def test_a_head_answer_lives_until_the_next_head_or_its_ttl():
    now = [0.0]
    cache = cache_for(State(), lambda: now[0])
    assert keep(cache, "eth_blockNumber", [], "0x64", ttl=2.0)
    now[0] = 1.0
    assert lifetime(cache, "eth_blockNumber", []) == HEAD
    now[0] = 2.5
    assert lifetime(cache, "eth_blockNumber", []) is None
    assert keep(cache, "eth_gasPrice", [], "0x1")
    cache.new_head(101)
    assert lifetime(cache, "eth_gasPrice", []) is None


def test_a_reorg_drops_the_entries_of_the_orphaned_blocks_and_a_hit_rechecks_the_hash():
    state = State(best=100, finalized=90)
    cache = cache_for(state)
    for n in (93, 96, 99):
        assert keep(cache, "eth_getBlockByNumber", [hex(n), False], {"number": hex(n), "hash": state.hashes[n]})
    state.hashes[99] = "0x" + "ff" * 32  # replaced before the reorg is reported: the hit is refused anyway
    assert lifetime(cache, "eth_getBlockByNumber", [hex(99), False]) is None
    cache.reorg(fork=95)
    assert lifetime(cache, "eth_getBlockByNumber", [hex(96), False]) is None
    assert lifetime(cache, "eth_getBlockByNumber", [hex(93), False]) == BLOCK


def test_a_transaction_is_kept_by_the_block_its_answer_names():
    state = State(best=100, finalized=90)
    cache = cache_for(state)
    tx = "0x" + "12" * 32
    mined = {"hash": tx, "blockNumber": hex(95), "blockHash": state.hashes[95]}
    assert keep(cache, "eth_getTransactionByHash", [tx], mined)
    assert lifetime(cache, "eth_getTransactionByHash", [tx]) == BLOCK
    elsewhere = {"hash": tx, "blockNumber": hex(96), "blockHash": "0x" + "ee" * 32}  # a block not canonical
    assert not keep(cache, "eth_getTransactionReceipt", [tx], elsewhere)
    assert not keep(cache, "eth_getTransactionByHash", ["0x" + "34" * 32], {"hash": "0x1", "blockNumber": None})
