"""Livechain's error tree. Each class carries what drives its handling.

    LivechainError
    ├── ClientError                 the client's fault: never failed over, never blamed on a provider
    │   ├── ParseError              -32700  body is not JSON
    │   ├── InvalidRequest          -32600  not a JSON-RPC 2.0 request object / empty batch
    │   ├── MethodNotFound          -32601  unknown, denied by policy, or wrong transport (subscribe over HTTP)
    │   ├── InvalidParams           -32602
    │   ├── UnknownChain            -32001  (HTTP 404)
    │   ├── LimitExceeded           -32005  batch size, body size (HTTP 413), range limits, rate limits (HTTP 429)
    │   └── Unauthorized            -32003  (HTTP 401) missing or wrong key / admin token
    ├── ProviderError               a provider failed this attempt: fail over
    │   ├── TransportError          connect refused/reset/closed, TLS failure          → breaker failure
    │   │   └── ConnectFailed       nothing was sent: safe to fail over for any method
    │   ├── AttemptTimeout          no complete reply within the attempt timeout       → breaker failure
    │   ├── BadResponse             5xx, garbage body, oversized body, wrong id        → breaker failure
    │   ├── ProviderRateLimited     HTTP 429 / rate-limit error: cool down, Retry-After → NOT a breaker failure
    │   ├── MethodUnsupported       the provider does not serve this method            → NOT a breaker failure
    │   └── ProviderUnavailable     lagging/pruned: lacks the data right now           → NOT a breaker failure
    └── RoutingError                the request as a whole could not be served
        ├── NoProviderAvailable     -32002  nothing to try (no providers configured / all cooling down)
        ├── AllAttemptsFailed       -32002  every attempt failed; says how many, never names a URL
        └── DeadlineExceeded        -32002  the request's deadline passed

A provider's own JSON-RPC error (execution reverted, invalid params) is not an exception: it is a
response, returned verbatim, a success for the breaker. Cancellation is never an error.

Messages never contain provider URLs: transport code builds them from the provider id only.
"""

from __future__ import annotations


class LivechainError(Exception):
    """Base of every error Livechain raises on purpose."""

    code: int = -32603
    http_status: int = 200

    def __init__(self, message: str, *, data: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def to_error(self) -> dict:
        """The JSON-RPC error object for this error."""
        error: dict = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


# ----------------------------------------------------------------------------- client errors


class ClientError(LivechainError):
    """The client's fault. Never failed over; never counted against a provider."""


class ParseError(ClientError):
    code = -32700


class InvalidRequest(ClientError):
    code = -32600


class MethodNotFound(ClientError):
    code = -32601


class InvalidParams(ClientError):
    code = -32602


class UnknownChain(ClientError):
    code = -32001
    http_status = 404


class LimitExceeded(ClientError):
    code = -32005

    def __init__(self, message: str, *, http_status: int = 200, data: object = None) -> None:
        super().__init__(message, data=data)
        self.http_status = http_status


class Unauthorized(ClientError):
    code = -32003
    http_status = 401


# ----------------------------------------------------------------------------- provider errors


class ProviderError(LivechainError):
    """One attempt against one provider failed. Fail over to the next provider."""

    code = -32603
    breaker_failure: bool = True
    failover: bool = True
    #: short stable class name for metrics and logs ("transport", "timeout", ...)
    kind: str = "provider"

    def __init__(self, message: str, *, provider: str = "", data: object = None, reply: object = None) -> None:
        super().__init__(message, data=data)
        self.provider = provider
        #: the provider's own JSON-RPC reply, when the failure was one (returned verbatim if nothing better comes)
        self.reply = reply


class TransportError(ProviderError):
    """The connection failed. The request may or may not have reached the provider."""

    kind = "transport"


class ConnectFailed(TransportError):
    """Connecting failed (refused, unreachable, TLS handshake): the request was never sent."""

    kind = "connect"


class AttemptTimeout(ProviderError):
    kind = "timeout"


class PoolSaturated(AttemptTimeout):
    """Every connection to the provider stayed busy: the attempt ran out of time waiting for one, or got one
    too late to be answered in time. That is Livechain's own queue (a burst bigger than `max_connections`),
    not evidence against the provider — the requests that did not wait judge it. Fails over; neither a
    breaker failure nor a mark on the provider's score."""

    kind = "saturated"
    breaker_failure = False


class BadResponse(ProviderError):
    """HTTP 5xx, a body that is not JSON-RPC, an oversized body."""

    kind = "bad_response"


class ProviderRateLimited(ProviderError):
    """HTTP 429 or a JSON-RPC rate-limit error. Cools the provider down; not a breaker failure."""

    kind = "rate_limited"
    breaker_failure = False

    def __init__(
        self, message: str, *, provider: str = "", retry_after: float | None = None, reply: object = None
    ) -> None:
        super().__init__(message, provider=provider, reply=reply)
        self.retry_after = retry_after


class MethodUnsupported(ProviderError):
    """The provider does not serve this method. Another one might; not a breaker failure."""

    kind = "unsupported"
    breaker_failure = False


class ProviderUnavailable(ProviderError):
    """The provider lacks the data right now (lagging, pruned). Another one might have it."""

    kind = "unavailable"
    breaker_failure = False


# ----------------------------------------------------------------------------- routing errors


class RoutingError(LivechainError):
    code = -32002


class NoProviderAvailable(RoutingError):
    pass


class AllAttemptsFailed(RoutingError):
    def __init__(self, attempts: int, last: ProviderError | None) -> None:
        reason = f"; last: {last.kind}" if last is not None else ""
        super().__init__(
            f"all {attempts} attempt(s) failed{reason}",
            data={"attempts": attempts, "last_error": last.kind if last else None},
        )
        self.attempts = attempts
        self.last = last


class DeadlineExceeded(RoutingError):
    def __init__(self, attempts: int, deadline: float) -> None:
        super().__init__(
            f"request deadline of {deadline:g}s exceeded after {attempts} attempt(s)",
            data={"attempts": attempts},
        )
        self.attempts = attempts
