"""What one attempt against one provider came to: the `Outcome`, and what each outcome means for handling.

Every attempt ends in exactly one outcome. The outcome carries its handling, so no module compares names:

    outcome          answered  breaker   scored  fails over   meaning
    ok               yes       success   yes     no           a result
    rpc_error        yes       success   yes     no           the provider's own JSON-RPC error (a revert)
    connect          no        failure   yes     yes          nothing was sent (refused, TLS, DNS)
    transport        no        failure   yes     yes          the connection failed mid-attempt
    timeout          no        failure   yes     yes          no reply within the attempt timeout
    bad_response     no        failure   yes     yes          5xx, garbage, oversized, wrong shape
    rate_limited     no        success   no      yes          429 / rate-limit error: cool down
    unsupported      no        success   no      yes          the provider does not serve the method
    unavailable      no        success   yes     yes          lagging / pruned: lacks the data now
    client_timeout   no        release   no      yes          the client's heavy query timed out
    saturated        no        release   no      yes          Livechain's own connection queue was full
    lagging          no        success   yes     yes          an answer from behind the chain: a null for a block
                                                              it has not reached, empty logs above its head
    invalid          no        failure   yes     yes          an answer that fails an integrity check (enforce)

- breaker: `success` resets the failure count, `failure` counts towards opening, `release` gives the permit
  back with no verdict (neither the provider's fault nor evidence of health).
- scored: the outcome counts in success rates and routing scores; the unscored ones are the client's cost
  or the provider's policy, and a provider must not look worse for them.

The order of the members is the order of the benchmark store's outcome columns (persisted in snapshots):
append new outcomes at the end.
"""

from __future__ import annotations

from enum import Enum, StrEnum


class Verdict(Enum):
    """What an outcome tells the provider's circuit breaker."""

    SUCCESS = "success"
    FAILURE = "failure"
    RELEASE = "release"


class Outcome(StrEnum):
    OK = "ok"
    RPC_ERROR = "rpc_error"
    CONNECT = "connect"
    TRANSPORT = "transport"
    TIMEOUT = "timeout"
    BAD_RESPONSE = "bad_response"
    RATE_LIMITED = "rate_limited"
    UNSUPPORTED = "unsupported"
    UNAVAILABLE = "unavailable"
    CLIENT_TIMEOUT = "client_timeout"
    SATURATED = "saturated"
    LAGGING = "lagging"
    INVALID = "invalid"

    # set below, per member (an Enum cannot take them as constructor arguments and stay a StrEnum)
    index: int
    answered: bool
    verdict: Verdict
    scored: bool

    @property
    def fails_over(self) -> bool:
        return not self.answered


_HANDLING: dict[Outcome, tuple[bool, Verdict, bool]] = {
    Outcome.OK: (True, Verdict.SUCCESS, True),
    Outcome.RPC_ERROR: (True, Verdict.SUCCESS, True),
    Outcome.CONNECT: (False, Verdict.FAILURE, True),
    Outcome.TRANSPORT: (False, Verdict.FAILURE, True),
    Outcome.TIMEOUT: (False, Verdict.FAILURE, True),
    Outcome.BAD_RESPONSE: (False, Verdict.FAILURE, True),
    Outcome.RATE_LIMITED: (False, Verdict.SUCCESS, False),
    Outcome.UNSUPPORTED: (False, Verdict.SUCCESS, False),
    Outcome.UNAVAILABLE: (False, Verdict.SUCCESS, True),
    Outcome.CLIENT_TIMEOUT: (False, Verdict.RELEASE, False),
    Outcome.SATURATED: (False, Verdict.RELEASE, False),
    Outcome.LAGGING: (False, Verdict.SUCCESS, True),
    Outcome.INVALID: (False, Verdict.FAILURE, True),
}
for _i, _outcome in enumerate(Outcome):
    _outcome.index = _i
    _outcome.answered, _outcome.verdict, _outcome.scored = _HANDLING[_outcome]

#: by column index (the benchmark store's arrays)
BY_INDEX: tuple[Outcome, ...] = tuple(Outcome)
