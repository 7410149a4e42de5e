"""What a provider's JSON-RPC error means for routing.

A provider's error is usually the answer (execution reverted, invalid params): returned verbatim, not
failed over, a success for the breaker. Some errors say something about the provider instead:

- RATE_LIMITED: it is throttling us (fail over, cool the provider down, not a breaker failure);
- UNSUPPORTED: it does not serve this method (fail over, not a breaker failure);
- UNAVAILABLE: it lacks the data right now — lagging or pruned (fail over, not a breaker failure);
- ALREADY_KNOWN: a resent transaction it already has (success, for eth_sendRawTransaction failover).

A query that is too big ("more than 10000 results", "block range too large") is the client's cost and stays
VERBATIM. The unknown case is the main path: anything unrecognised is VERBATIM.
"""

from __future__ import annotations

import re
from enum import Enum

from livechain.errors import MethodUnsupported, ProviderError, ProviderRateLimited, ProviderUnavailable


class ErrorMeaning(Enum):
    VERBATIM = "verbatim"
    RATE_LIMITED = "rate_limited"
    UNSUPPORTED = "unsupported"
    UNAVAILABLE = "unavailable"
    ALREADY_KNOWN = "already_known"


_RATE = re.compile(
    r"rate.?limit|too many requests|request limit|exceeded .*(capacity|quota|throughput|compute units)"
    r"|daily limit|credits",
    re.IGNORECASE,
)
_UNSUPPORTED = re.compile(
    r"method .*(not found|not supported|not available|does not exist|is not whitelisted|disabled)"
    r"|unsupported method|not supported",
    re.IGNORECASE,
)
_UNAVAILABLE = re.compile(
    r"header not found|missing trie node|unknown block|block not found|pruned|not synced|syncing",
    re.IGNORECASE,
)
_KNOWN = re.compile(r"already known|known transaction|already imported|already exists|alreadyknown", re.IGNORECASE)


def classify(error: dict) -> ErrorMeaning:
    code = error.get("code")
    message = error.get("message") or ""
    if code == 429 or _RATE.search(message):
        return ErrorMeaning.RATE_LIMITED
    if code == -32601 or _UNSUPPORTED.search(message):
        return ErrorMeaning.UNSUPPORTED
    if _KNOWN.search(message):
        return ErrorMeaning.ALREADY_KNOWN
    if _UNAVAILABLE.search(message):
        return ErrorMeaning.UNAVAILABLE
    return ErrorMeaning.VERBATIM


_ERRORS: dict[ErrorMeaning, tuple[type[ProviderError], str]] = {
    ErrorMeaning.RATE_LIMITED: (ProviderRateLimited, "rate limited"),
    ErrorMeaning.UNSUPPORTED: (MethodUnsupported, "method unsupported"),
    ErrorMeaning.UNAVAILABLE: (ProviderUnavailable, "data unavailable"),
}


def provider_error(error: dict, provider: str, *, reply: object = None, what: str = "") -> ProviderError | None:
    """The ProviderError that a provider's JSON-RPC error stands for, or None when the error is the answer
    (VERBATIM, ALREADY_KNOWN). The one place a reply's error is classified, for HTTP attempts and WebSocket
    requests alike; `what` prefixes the message ("eth_subscribe: ")."""
    found = _ERRORS.get(classify(error))
    if found is None:
        return None
    cls, label = found
    return cls(f"{provider}: {what}{label}", provider=provider, reply=reply)


_REVERT = re.compile(r"execution reverted|\brevert(ed)?\b|invalid opcode|out of gas", re.IGNORECASE)
#: methods whose answer is a pure function of the block's state: an error about a final block is an answer
_DETERMINISTIC_METHODS = frozenset({"eth_call", "eth_estimateGas", "eth_createAccessList"})


def deterministic_error(method: str, error: dict) -> bool:
    """Is this error the same answer every time it is asked (an eth_call revert), as opposed to a condition of
    the moment (a timeout, a rate limit, a lagging node)? Only such errors, about a final block, are cached."""
    if method not in _DETERMINISTIC_METHODS:
        return False
    if error.get("code") == 3:  # EIP-1474 / geth: execution reverted, with the revert data
        return True
    return classify(error) is ErrorMeaning.VERBATIM and bool(_REVERT.search(str(error.get("message") or "")))
