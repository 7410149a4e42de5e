"""What a provider's JSON-RPC error means for routing.

A provider's error is usually the answer (execution reverted, invalid params): returned verbatim, not
failed over, a success for the breaker. Some errors say something about the provider instead:

- RATE_LIMITED: it is throttling us (fail over, cool the provider down, not a breaker failure);
- UNSUPPORTED: it does not serve this method (fail over, not a breaker failure);
- UNAVAILABLE: it lacks the data right now — lagging or pruned (fail over, not a breaker failure);
- ALREADY_KNOWN: a resent transaction it already has (success, for eth_sendRawTransaction failover);
- LOGS_RANGE: an eth_getLogs wider than it accepts ("block range too large", "up to a 1000 block range",
  "limited to a 10,000 range" …; `logs_limit()` reads the number when the message has one);
- TOO_MANY_RESULTS: an eth_getLogs with more results than it returns ("query returned more than 10000
  results"): the range must be split (fail over; the pipeline's logs stage splits).

A range or result-count refusal is the provider's limit, not the client's error: Livechain splits the range
(`livechain.pipeline.logs`); the client-facing `max_block_range` stays the guard against abusive queries.
The unknown case is the main path: anything unrecognised is VERBATIM.
"""

from __future__ import annotations

import re
from enum import Enum

from livechain.errors import (
    LogsRangeRefused,
    MethodUnsupported,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
)


class ErrorMeaning(Enum):
    VERBATIM = "verbatim"
    RATE_LIMITED = "rate_limited"
    UNSUPPORTED = "unsupported"
    UNAVAILABLE = "unavailable"
    ALREADY_KNOWN = "already_known"
    LOGS_RANGE = "logs_range"
    TOO_MANY_RESULTS = "too_many_results"


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
    r"header not found|missing trie node|unknown block|block not found|pruned|not synced|syncing"
    r"|state (is )?not available|state histor(y|ical) .*not available|BlockOutOfRange"
    r"|block height is \d+ but requested was",
    re.IGNORECASE,
)
_LOGS_RANGE = re.compile(
    r"block range|range (is )?too (large|wide|big)|exceed\w* (the )?max\w* (block )?range"
    r"|limited to an? [\d,]+\s*[kK]? ?(blocks? )?range|max(imum)? (block )?range|range limit",
    re.IGNORECASE,
)
_TOO_MANY = re.compile(
    r"more than [\d,]+ results|too many (results|logs)|response size (exceeded|is too (large|big))"
    r"|returned more than|result (set|limit) exceeded",
    re.IGNORECASE,
)
_LIMIT_NUMBER = re.compile(
    r"(?:up to an? |max(?:imum)?(?: block)?(?: range)?[:\s]*(?:is |of )?|limited to an? |limit(?: is| of)?[:\s]*"
    r"|range of )(\d[\d,]*)\s*([kK])?",
    re.IGNORECASE,
)
_KNOWN = re.compile(r"already known|known transaction|already imported|already exists|alreadyknown", re.IGNORECASE)


def classify(error: dict, method: str = "") -> ErrorMeaning:
    """What the error means; `method` lets the eth_getLogs range and result-count refusals be told apart from
    an answer (they mean nothing for other methods)."""
    code = error.get("code")
    message = error.get("message") or ""
    if method == "eth_getLogs":
        if _LOGS_RANGE.search(message):
            return ErrorMeaning.LOGS_RANGE
        if _TOO_MANY.search(message):
            return ErrorMeaning.TOO_MANY_RESULTS
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


def logs_limit(message: str) -> int | None:
    """The block range a refusal says the provider accepts ("up to a 2K block range" → 2000), if it says."""
    found = _LIMIT_NUMBER.search(message)
    if found is None:
        return None
    number = int(found.group(1).replace(",", "")) * (1000 if found.group(2) else 1)
    return number if 0 < number <= 100_000_000 else None


def provider_error(
    error: dict, provider: str, *, reply: object = None, what: str = "", method: str = ""
) -> ProviderError | None:
    """The ProviderError that a provider's JSON-RPC error stands for, or None when the error is the answer
    (VERBATIM, ALREADY_KNOWN). The one place a reply's error is classified, for HTTP attempts and WebSocket
    requests alike; `what` prefixes the message ("eth_subscribe: ")."""
    meaning = classify(error, method)
    if meaning is ErrorMeaning.LOGS_RANGE or meaning is ErrorMeaning.TOO_MANY_RESULTS:
        too_many = meaning is ErrorMeaning.TOO_MANY_RESULTS
        limit = None if too_many else logs_limit(str(error.get("message") or ""))
        return LogsRangeRefused(f"{provider}: {what}eth_getLogs {'results' if too_many else 'range'} over its limit",
                                provider=provider, reply=reply, limit=limit, too_many_results=too_many)
    found = _ERRORS.get(meaning)
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
