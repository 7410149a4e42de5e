"""The probe's way to the provider: a real `Provider` (so an answer is read exactly as Livechain reads it when
the provider is in a config — the same classification of errors, the same capability learning) over an HTTP
pool that counts every request and enforces the call budget.

    calls        JSON-RPC requests sent to the provider, one per request object, HTTP and WebSocket alike —
                 the batch probe excepted; never more than `budget` (the next one fails before it is sent)
    batch_items  the request objects inside the batch probe's batches (at most 1 + 10 + 100 + 1,000)
    by_check     calls per check, for the report
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from livechain.config.schema import BreakerConfig, ProviderConfig
from livechain.errors import (
    ConnectFailed,
    LogsRangeRefused,
    MethodUnsupported,
    ProviderError,
    ProviderRateLimited,
)
from livechain.events import EventBus
from livechain.metrics.store import BenchmarkStore
from livechain.providers.provider import Provider
from livechain.transport.http import HttpPool, HttpResponse

PROVIDER_ID = "probe"  # how the provider is named in every message: never by its URL
#: the probe never gives up on the provider because of its breaker: every check gets its answer
_NO_BREAKER = BreakerConfig(failure_threshold=1_000_000)


class BudgetSpent(ConnectFailed):
    """The probe's call budget is spent: the request was not sent (an outcome of "nothing was sent")."""


@dataclass
class Calls:
    budget: int
    calls: int = 0
    batch_requests: int = 0
    batch_items: int = 0
    other_providers: int = 0
    by_check: Counter[str] = field(default_factory=Counter)
    check: str = "identity"  # the check the HTTP requests being sent belong to

    def take(self, check: str | None = None) -> None:
        """Count one call, or raise BudgetSpent when the budget would be exceeded."""
        if self.calls >= self.budget:
            raise BudgetSpent(f"{PROVIDER_ID}: the probe's call budget ({self.budget}) is spent", provider=PROVIDER_ID)
        self.calls += 1
        self.by_check[check or self.check] += 1

    def snapshot(self) -> dict[str, Any]:
        return {"total": self.calls, "budget": self.budget, "by_check": dict(self.by_check),
                "batch_requests": self.batch_requests, "batch_items": self.batch_items,
                "other_providers": self.other_providers}


class CountingPool(HttpPool):
    """An HttpPool whose every POST is counted: a lone request is a call (within the budget), a batch is
    counted apart (its items in `batch_items`)."""

    def __init__(self, url: str, calls: Calls, **kwargs: Any) -> None:
        super().__init__(url, name=PROVIDER_ID, max_connections=2, **kwargs)
        self.calls = calls

    async def post(self, body: bytes, *, timeout: float, headers: Mapping[str, str] | None = None) -> HttpResponse:
        if body[:1] == b"[":
            self.calls.batch_requests += 1
            self.calls.batch_items += len(orjson.loads(body))
        else:
            self.calls.take()
        return await super().post(body, timeout=timeout, headers=headers)


@dataclass
class Answer:
    """One call's outcome: `result` (when `ok`), the provider's own JSON-RPC `error`, or `failure` — the
    ProviderError it came to (unsupported, rate limited, unavailable, transport, timeout…)."""

    method: str
    ms: float
    result: Any = None
    error: dict | None = None
    failure: ProviderError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.failure is None

    @property
    def answered(self) -> bool:
        """The provider served the method: a result, its own error, or "no such data" — not "no such method",
        not a failure to answer."""
        return self.failure is None or self.failure.outcome.answered or self.failure.kind == "unavailable"

    @property
    def unsupported(self) -> bool:
        return type(self.failure) is MethodUnsupported

    @property
    def status(self) -> str:
        """supported | unsupported | rate_limited | skipped | the failure's kind (timeout, transport, …)."""
        if self.unsupported:
            return "unsupported"
        if isinstance(self.failure, BudgetSpent):
            return "skipped"
        if isinstance(self.failure, ProviderRateLimited):
            return "rate_limited"
        if self.answered or isinstance(self.failure, LogsRangeRefused):
            return "supported"
        assert self.failure is not None
        return self.failure.kind

    @property
    def detail(self) -> str | None:
        """The provider's own error (code and message), else what the failure was."""
        error = self.error
        if error is None and self.failure is not None:
            reply = self.failure.reply
            error = getattr(reply, "error", None)
            if error is None:
                return self.failure.message[:200]
        if error is None:
            return None
        return f"{error.get('code')} {str(error.get('message') or '')[:160]}"


class ProbeClient:
    """One provider, as a `Provider` on a counting pool."""

    def __init__(self, url: str, calls: Calls, *, timeout: float) -> None:
        config = ProviderConfig.model_validate({"id": PROVIDER_ID, "http_url": url, "archive": "auto"})
        self.calls = calls
        self.timeout = timeout
        self.provider = Provider(
            PROVIDER_ID, config, _NO_BREAKER, store=BenchmarkStore(PROVIDER_ID), events=EventBus(),
            pool=CountingPool(url, calls),
        )
        self._ids = 0

    def body(self, method: str, params: list) -> bytes:
        self._ids += 1
        return orjson.dumps({"jsonrpc": "2.0", "id": self._ids, "method": method, "params": params})

    async def call(self, method: str, params: list | None = None) -> Answer:
        """One request, timed; never raises a ProviderError (it is in the answer)."""
        body = self.body(method, params or [])
        started = time.perf_counter()
        try:
            reply = await self.provider.attempt(body, method, self.timeout)
        except ProviderError as exc:
            return Answer(method, _ms(started), failure=exc)
        return Answer(method, _ms(started), result=reply.result, error=reply.error)

    async def post_batch(self, items: list[dict]) -> HttpResponse:
        """A raw batch POST (counted apart from the calls); raises the pool's ProviderErrors."""
        return await self.provider.http.post(orjson.dumps(items), timeout=self.timeout)

    async def close(self) -> None:
        await self.provider.close()


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
