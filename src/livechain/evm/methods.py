"""Which JSON-RPC methods Livechain serves, and how they behave when routed.

Default policy: the standard read methods and `eth_sendRawTransaction` are allowed; everything else
(signing, admin, debug, dev-node and unknown methods) is denied with -32601 unless the chain's
`methods.allow` names it. A chain's `methods.deny` always wins.

    allowed(m) = (m in DEFAULT_ALLOWED or m matches chain.allow) and not m matches chain.deny

The filter methods (`FILTER_METHODS`) are in the default set: Livechain serves them itself (never a
provider), so they are allowed whatever `allow` says; only a `deny` glob naming them refuses them.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

DEFAULT_ALLOWED: frozenset[str] = frozenset(
    {
        "eth_accounts",
        "eth_blobBaseFee",
        "eth_blockNumber",
        "eth_call",
        "eth_chainId",
        "eth_createAccessList",
        "eth_estimateGas",
        "eth_feeHistory",
        "eth_gasPrice",
        "eth_getBalance",
        "eth_getBlockByHash",
        "eth_getBlockByNumber",
        "eth_getBlockReceipts",
        "eth_getBlockTransactionCountByHash",
        "eth_getBlockTransactionCountByNumber",
        "eth_getCode",
        "eth_getLogs",
        "eth_getProof",
        "eth_getStorageAt",
        "eth_getTransactionByBlockHashAndIndex",
        "eth_getTransactionByBlockNumberAndIndex",
        "eth_getTransactionByHash",
        "eth_getTransactionCount",
        "eth_getTransactionReceipt",
        "eth_getUncleByBlockHashAndIndex",
        "eth_getUncleByBlockNumberAndIndex",
        "eth_getUncleCountByBlockHash",
        "eth_getUncleCountByBlockNumber",
        "eth_maxPriorityFeePerGas",
        "eth_protocolVersion",
        "eth_sendRawTransaction",
        "eth_simulateV1",
        "eth_syncing",
        "net_listening",
        "net_peerCount",
        "net_version",
        "web3_clientVersion",
        "web3_sha3",
    }
)

#: methods that only make sense on a WebSocket connection
SUBSCRIPTION_METHODS: frozenset[str] = frozenset({"eth_subscribe", "eth_unsubscribe"})

#: stateful filters: served by Livechain itself from its raced feeds (`livechain.pipeline.filters`), never by a
#: provider (a provider's filter would be lost on failover)
FILTER_METHODS: frozenset[str] = frozenset(
    {
        "eth_newFilter",
        "eth_newBlockFilter",
        "eth_newPendingTransactionFilter",
        "eth_getFilterChanges",
        "eth_getFilterLogs",
        "eth_uninstallFilter",
    }
)

#: a resent signed transaction is harmless; "already known" from a later provider means it was accepted
SEND_RAW_TRANSACTION = "eth_sendRawTransaction"

#: methods whose cost is set by the client's arguments: their timeouts are the client's cost, not the provider's
EXPENSIVE: frozenset[str] = frozenset(
    {"eth_getLogs", "eth_call", "eth_estimateGas", "eth_createAccessList", "eth_simulateV1", "eth_getProof"}
)

_CACHE_LIMIT = 4096


class MethodPolicy:
    """allow/deny globs over a base set. Sync, cached; hostile method names cannot grow the cache unbounded."""

    __slots__ = ("_allow", "_base", "_cache", "_deny")

    def __init__(
        self,
        allow: tuple[str, ...] | list[str] = (),
        deny: tuple[str, ...] | list[str] = (),
        base: frozenset[str] = DEFAULT_ALLOWED,
    ) -> None:
        self._allow = tuple(allow)
        self._deny = tuple(deny)
        self._base = base
        self._cache: dict[str, bool] = {}

    @property
    def denies_subscriptions(self) -> bool:
        """eth_subscribe is served on WebSockets unless a deny glob names it."""
        return any(fnmatchcase("eth_subscribe", g) for g in self._deny)

    def allows(self, method: str) -> bool:
        hit = self._cache.get(method)
        if hit is not None:
            return hit
        allowed = (
            method in self._base or method in FILTER_METHODS or any(fnmatchcase(method, g) for g in self._allow)
        ) and not any(
            fnmatchcase(method, g) for g in self._deny
        )
        if len(self._cache) < _CACHE_LIMIT:
            self._cache[method] = allowed
        return allowed


def denial_message(method: str, chain: str) -> str:
    """Why `method` is not served, for the -32601 error the client gets."""
    if method in SUBSCRIPTION_METHODS:
        return f"{method} is only available over WebSocket: connect to /ws/rpc/{chain}"
    if method in FILTER_METHODS:
        return f"{method} is denied on this chain"
    return f"the method {method} does not exist/is not available"
