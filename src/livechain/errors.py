"""Livechain's error tree. Each class carries what drives its handling.

    LivechainError                          code    HTTP
    ├── ClientError                 the client's fault: never failed over, never blamed on a provider
    │   ├── ParseError              -32700  200   body is not JSON
    │   ├── InvalidRequest          -32600  200   not a JSON-RPC 2.0 request object / empty batch
    │   │   ├── BadHttpRequest      -32600  400   malformed HTTP
    │   │   ├── NoRoute             -32600  404   no handler for the path
    │   │   ├── MethodNotAllowed    -32600  405   wrong HTTP method (carries the allowed ones)
    │   │   ├── HeadersTooLarge     -32600  431   request line + headers over the limit
    │   │   └── UpgradeRequired     -32600  426   a WebSocket handshake of another version than 13
    │   ├── MethodNotFound          -32601  200   unknown, denied by policy, or wrong transport (subscribe over HTTP)
    │   ├── InvalidParams           -32602  200
    │   ├── UnknownChain            -32001  404   unknown chain, or unknown provider on a pinned route
    │   ├── LimitExceeded           -32005  200   batch size, range limits
    │   │   ├── PayloadTooLarge     -32005  413   body over server.max_body_bytes
    │   │   └── RateLimited         -32005  429   rate limits, connection limits (carries Retry-After)
    │   ├── Unauthorized            -32003  401   missing or wrong API key / admin token
    │   ├── Forbidden               -32003  403   controls disabled, cross-origin control request
    │   └── Conflict                -32600  409   the state does not allow it (a second simulator run)
    ├── ProviderError               a provider failed this attempt: fail over; handling is its `outcome`
    │   ├── TransportError          connect refused/reset/closed, TLS failure          → breaker failure
    │   │   └── ConnectFailed       nothing was sent: safe to fail over for any method
    │   ├── AttemptTimeout          no complete reply within the attempt timeout       → breaker failure
    │   │   └── PoolSaturated       waited in Livechain's own connection queue        → no verdict
    │   ├── BadResponse             5xx, garbage body, oversized body, wrong id        → breaker failure
    │   ├── ProviderRateLimited     HTTP 429 / rate-limit error: cool down, Retry-After → NOT a breaker failure
    │   ├── MethodUnsupported       the provider does not serve this method            → NOT a breaker failure
    │   │   └── LogsRangeRefused    an eth_getLogs too wide (or too many results) for it → NOT a breaker failure
    │   └── ProviderUnavailable     lagging/pruned: lacks the data right now           → NOT a breaker failure
    ├── RoutingError                the request as a whole could not be served
    │   ├── NoProviderAvailable     -32002  200   nothing to try (no providers configured / all circuits open)
    │   ├── AllAttemptsFailed       -32002  200   every attempt failed; says how many, never names a URL
    │   └── DeadlineExceeded        -32002  200   the request's deadline passed
    ├── RpcError                    (any)   200   the provider's own JSON-RPC error, raised in-process
    ├── InternalError               -32603  200   a bug: logged with its traceback, never shown to the client
    │   └── ServerError             -32603  500   a bug in a route handler, outside a JSON-RPC exchange
    └── Unavailable                 -32603  503   the server cannot take this now (too many dashboards)
        └── ShuttingDown            -32603  503   the server is stopping

Errors become responses in one place per entry point: `livechain.server.messages.error_response()` for
HTTP (the status, the headers, a JSON-RPC error object — or `{"error": message}` on the JSON API), the
`error_body()` of `livechain.jsonrpc` inside JSON-RPC replies (HTTP batches, WebSocket), and `RpcError` for
the in-process library (`livechain.library`).

A provider's own JSON-RPC error (execution reverted, invalid params) is not an exception: it is a
response, returned verbatim, a success for the breaker. Cancellation is never an error.

Messages never contain provider URLs: transport code builds them from the provider id only.
"""

from __future__ import annotations

from livechain.outcomes import Outcome


class LivechainError(Exception):
    """Base of every error Livechain raises on purpose."""

    code: int = -32603
    http_status: int = 200
    #: extra HTTP response headers this error carries (Retry-After, Allow)
    headers: tuple[tuple[str, str], ...] = ()

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


class BadHttpRequest(InvalidRequest):
    http_status = 400


class NoRoute(InvalidRequest):
    http_status = 404


class MethodNotAllowed(InvalidRequest):
    http_status = 405

    def __init__(self, *allowed: str) -> None:
        super().__init__(f"method not allowed; use {' or '.join(allowed)}")
        self.headers = (("allow", ", ".join((*allowed, "OPTIONS"))),)


class HeadersTooLarge(InvalidRequest):
    http_status = 431


class UpgradeRequired(InvalidRequest):
    """A WebSocket handshake with a version other than 13."""

    http_status = 426
    headers = (("sec-websocket-version", "13"),)


class LimitExceeded(ClientError):
    code = -32005


class PayloadTooLarge(LimitExceeded):
    http_status = 413


class RateLimited(LimitExceeded):
    """Over a rate or connection limit. `retry_after` (whole seconds) goes out as Retry-After and in `data`."""

    http_status = 429

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message, data={"retry_after": retry_after} if retry_after is not None else None)
        self.retry_after = retry_after
        if retry_after is not None:
            self.headers = (("retry-after", str(retry_after)),)


class Unauthorized(ClientError):
    code = -32003
    http_status = 401


class FilterNotFound(ClientError):
    """geth's answer for a filter id that does not exist (never did, expired, uninstalled, or another
    client's): clients recreate their filter on it."""

    code = -32000

    def __init__(self, message: str = "filter not found") -> None:
        super().__init__(message)


class FilterOverflow(ClientError):
    """A filter buffered more entries than it may between two polls: it is removed, and this is what its next
    poll gets (the client recreates it)."""

    code = -32000


class Forbidden(ClientError):
    code = -32003
    http_status = 403


class Conflict(ClientError):
    code = -32600
    http_status = 409


# ----------------------------------------------------------------------------- provider errors


class ProviderError(LivechainError):
    """One attempt against one provider failed. Fail over to the next provider. What else happens (breaker,
    score, cooldown) is decided by `outcome`."""

    code = -32603
    outcome: Outcome = Outcome.TRANSPORT

    @property
    def kind(self) -> str:
        """The outcome's stable name, for messages and logs ("transport", "timeout", ...)."""
        return self.outcome.value

    def __init__(self, message: str, *, provider: str = "", data: object = None, reply: object = None) -> None:
        super().__init__(message, data=data)
        self.provider = provider
        #: the provider's own JSON-RPC reply, when the failure was one (returned verbatim if nothing better comes)
        self.reply = reply


class TransportError(ProviderError):
    """The connection failed. The request may or may not have reached the provider."""

    outcome = Outcome.TRANSPORT


class ConnectFailed(TransportError):
    """Connecting failed (refused, unreachable, TLS handshake): the request was never sent."""

    outcome = Outcome.CONNECT


class AttemptTimeout(ProviderError):
    outcome = Outcome.TIMEOUT


class PoolSaturated(AttemptTimeout):
    """Every connection to the provider stayed busy: the attempt ran out of time waiting for one, or got one
    too late to be answered in time. That is Livechain's own queue (a burst bigger than `max_connections`),
    not evidence against the provider — the requests that did not wait judge it. Fails over; neither a
    breaker failure nor a mark on the provider's score."""

    outcome = Outcome.SATURATED


class BadResponse(ProviderError):
    """HTTP 5xx, a body that is not JSON-RPC, an oversized body."""

    outcome = Outcome.BAD_RESPONSE


class ProviderRateLimited(ProviderError):
    """HTTP 429 or a JSON-RPC rate-limit error. Cools the provider down; not a breaker failure."""

    outcome = Outcome.RATE_LIMITED

    def __init__(
        self, message: str, *, provider: str = "", retry_after: float | None = None, reply: object = None
    ) -> None:
        super().__init__(message, provider=provider, reply=reply)
        self.retry_after = retry_after


class MethodUnsupported(ProviderError):
    """The provider does not serve this method. Another one might; not a breaker failure."""

    outcome = Outcome.UNSUPPORTED


class LogsRangeRefused(MethodUnsupported):
    """The provider refuses an eth_getLogs this wide (`limit`: the range it accepts, when it says) or with this
    many results (`too_many_results`). Another provider, or smaller ranges, may do."""

    def __init__(
        self, message: str, *, provider: str = "", reply: object = None, limit: int | None = None,
        too_many_results: bool = False,
    ) -> None:
        super().__init__(message, provider=provider, reply=reply)
        self.limit = limit
        self.too_many_results = too_many_results


class ProviderUnavailable(ProviderError):
    """The provider lacks the data right now (lagging, pruned). Another one might have it."""

    outcome = Outcome.UNAVAILABLE


class AnswerLagging(ProviderError):
    """The provider answered from behind the chain (a null for a block it has not reached, empty logs above
    its head, a head below what the client was already given): another provider, at the head, may answer.
    `reply`: its answer — the client's when no provider does better."""

    outcome = Outcome.LAGGING


class AnswerInvalid(ProviderError):
    """The provider's answer failed an integrity check (`integrity: enforce`): discarded, never the client's."""

    outcome = Outcome.INVALID


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


class QuorumFailed(RoutingError):
    """Asked `size` providers for a quorum and no answer had a majority."""

    def __init__(self, size: int, votes: list[int], failed: int) -> None:
        super().__init__(
            f"no quorum: {size} providers asked, the answers split {'/'.join(map(str, votes))}"
            + (f", {failed} failed" if failed else ""),
            data={"asked": size, "votes": votes, "failed": failed},
        )


class SubscriptionUnavailable(RoutingError):
    """No provider subscription could be made live for an eth_subscribe (or a filter) in time, and there is
    no HTTP fallback for its kind: the client gets this instead of an id that would never deliver."""


class DeadlineExceeded(RoutingError):
    def __init__(self, attempts: int, deadline: float) -> None:
        super().__init__(
            f"request deadline of {deadline:g}s exceeded after {attempts} attempt(s)",
            data={"attempts": attempts},
        )
        self.attempts = attempts


# ----------------------------------------------------------------------------- answers as exceptions


class RpcError(LivechainError):
    """A provider's own JSON-RPC error answer (a revert, invalid params), raised by the in-process library
    where the web edges would return it verbatim. `code`, `message` and `data` are the provider's."""

    def __init__(self, code: int, message: str, *, data: object = None) -> None:
        super().__init__(str(message), data=data)
        self.code = code


# ----------------------------------------------------------------------------- Livechain itself


class InternalError(LivechainError):
    """A bug. The client gets -32603 "internal error"; the traceback goes to the log, never to the client."""

    def __init__(self, message: str = "internal error") -> None:
        super().__init__(message)


class ServerError(InternalError):
    """A bug outside any JSON-RPC exchange (a route handler failed): HTTP 500."""

    http_status = 500


class Unavailable(LivechainError):
    http_status = 503


class ShuttingDown(Unavailable):
    def __init__(self, message: str = "server is shutting down") -> None:
        super().__init__(message)
