"""A provider: its HTTP pool, its breaker, what it is known to be (chain id, head), how fast it is.

`attempt()` is one try against this provider, and the single place where an HTTP exchange becomes an
`Outcome`: status codes and reply shape are read here (the error's meaning by `evm.errors.provider_error`,
shared with the WebSocket transport), the breaker gets the outcome's verdict here, and the benchmark store
and the selection statistics are fed here.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Callable
from typing import Any

import orjson

from livechain.clock import SYSTEM_CLOCK, Clock
from livechain.config.schema import BreakerConfig, ProviderConfig
from livechain.errors import (
    BadResponse,
    LogsRangeRefused,
    MethodUnsupported,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
)
from livechain.events import EventBus
from livechain.evm.errors import provider_error
from livechain.evm.methods import EXPENSIVE
from livechain.failsafe.breaker import DENIED, BreakerState, CircuitBreaker
from livechain.jsonrpc.replies import NotJsonRpc, Reply, parse_reply
from livechain.metrics.store import BenchmarkStore
from livechain.outcomes import Outcome, Verdict
from livechain.providers import log
from livechain.providers.capabilities import STATE_METHODS, Capabilities, state_block
from livechain.providers.spend import OwnRate, Spend
from livechain.providers.stats import MethodStats
from livechain.transport.http import HttpPool, HttpResponse

#: outcomes of an attempt that never reached the provider: not spend
UNSENT = frozenset({Outcome.CONNECT, Outcome.SATURATED})
DEFAULT_COOLDOWN = 1.0  # seconds a 429 without Retry-After keeps a provider aside
MAX_COOLDOWN = 60.0

#: (the reply, the provider) → a ProviderError when the answer must not be the client's, else None
Check = Callable[[Reply, "Provider"], ProviderError | None]


def retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Provider:
    def __init__(
        self,
        chain: str,
        config: ProviderConfig,
        breaker_config: BreakerConfig,
        *,
        store: BenchmarkStore,
        events: EventBus,
        clock: Clock = SYSTEM_CLOCK,
        pool: HttpPool | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        """`on_change`: called when something selection depends on changes (a breaker transition, a
        cooldown) — the chain's pool invalidates its routing caches."""
        self.chain = chain
        self.id = config.id
        self.config = config
        self.priority = config.effective_priority
        self.has_ws = config.ws_url is not None
        self._store = store
        self._events = events
        self._clock = clock
        self.http = pool or HttpPool(
            config.http_url, name=config.id, max_connections=config.max_connections, headers=config.headers
        )
        self.breaker = self._make_breaker("http", breaker_config)
        self.stats = MethodStats(clock)
        self.capabilities = Capabilities(config, lambda: self.head, clock.monotonic, clock.wall)
        self.spend = Spend(config.cost, config.budget, clock.wall, self._budget_changed)
        self.tier = config.effective_tier
        self._own = OwnRate(config.own_rate, clock.monotonic)
        self._serves_cache: dict[str, bool] = {}
        #: None until the first eth_chainId check answers; False excludes the provider
        self.chain_id_ok: bool | None = None
        self.head: int | None = None
        self.head_at = 0.0
        self.cooldown_until = 0.0
        self.inflight = 0
        self.last_errors: list[dict[str, Any]] = []  # newest last, bounded, never holds a URL
        self.breaker_history: list[dict[str, Any]] = []  # newest last, bounded
        self.retired = False
        self.on_change = on_change
        #: answers that failed an integrity check, by method; the last reason (never a URL)
        self.integrity_failures: dict[str, int] = {}
        self.last_integrity_failure: dict[str, Any] | None = None
        #: quorum votes it lost, by method
        self.disagreements: dict[str, int] = {}

    def _make_breaker(self, transport: str, cfg: BreakerConfig) -> CircuitBreaker:
        return CircuitBreaker(
            f"{self.chain}/{self.id}/{transport}",
            failure_threshold=cfg.failure_threshold,
            recovery_timeout=cfg.recovery_timeout,
            success_threshold=cfg.success_threshold,
            half_open_probes=cfg.half_open_probes,
            clock=self._clock,
            on_transition=self._on_transition,
        )

    def reconfigure(self, config: ProviderConfig, breaker: BreakerConfig) -> None:
        """Adopt a reloaded config whose connection settings are unchanged: priority, method policy,
        breaker thresholds, capabilities. Warm connections, breaker state and statistics are kept."""
        self.config = config
        self.capabilities.configure(config)
        self.spend.configure(config.cost, config.budget)
        self.tier = config.effective_tier
        self._own = OwnRate(config.own_rate, self._clock.monotonic)
        self.priority = config.effective_priority
        self._serves_cache.clear()
        self.breaker.configure(
            failure_threshold=breaker.failure_threshold, recovery_timeout=breaker.recovery_timeout,
            success_threshold=breaker.success_threshold, half_open_probes=breaker.half_open_probes,
        )

    def _on_transition(self, breaker: CircuitBreaker, old: BreakerState, new: BreakerState, reason: str) -> None:
        if self.on_change is not None:
            self.on_change()
        log.warning(
            "breaker %s → %s",
            old.value,
            new.value,
            extra={"chain": self.chain, "provider": self.id, "breaker": breaker.name, "reason": reason},
        )
        self._events.publish(
            "breaker", chain=self.chain, provider=self.id, transport=breaker.name.rsplit("/", 1)[-1],
            old=old.value, new=new.value, reason=reason,
        )
        self.breaker_history.append(
            {"ts": round(self._clock.wall(), 3), "old": old.value, "new": new.value, "reason": reason}
        )
        if len(self.breaker_history) > 20:
            del self.breaker_history[0]

    # ------------------------------------------------------------------ eligibility (sync, for selection)

    def serves(self, method: str) -> bool:
        """Its method policy allows `method`, and it was not seen refusing it lately (capabilities)."""
        hit = self._serves_cache.get(method)
        if hit is None:
            hit = self.config.serves(method)
            if len(self._serves_cache) < 1024:
                self._serves_cache[method] = hit
        return hit and (not self.capabilities.unsupported or self.capabilities.supports(method))

    def own_allowed(self) -> bool:
        """May Livechain send it one more request of its own now (`own_rate`)? Takes the token when it may."""
        return self._own.take()

    def breakers(self) -> dict[str, CircuitBreaker]:
        """Every breaker of this provider, by transport."""
        return {"http": self.breaker}

    def cooling_down(self, now: float) -> bool:
        return self.cooldown_until > now

    # ------------------------------------------------------------------ one attempt

    async def attempt(
        self, body: bytes, method: str, timeout: float, check: Check | None = None, own: bool = False
    ) -> Reply:
        """Send `body`, classify the outcome. Returns the provider's JSON-RPC reply (result or its own
        error, which the client gets verbatim); raises a ProviderError subclass otherwise. `check(reply,
        provider)`: a ProviderError for an answer that must not be the client's (lagging, failing an
        integrity check), recorded with its outcome like any other failure. `own`: Livechain's own request
        (a health check, a backfill), counted apart from client traffic in spend."""
        permit = self.breaker.acquire()
        if permit == DENIED:
            raise ProviderError(f"{self.id}: circuit open", provider=self.id)
        self.inflight += 1
        started = time.perf_counter_ns()
        outcome: Outcome | None = Outcome.TRANSPORT
        try:
            try:
                response = await self.http.post(body, timeout=timeout)
                reply = self._classify(response, method)
                if check is not None:
                    rejected = check(reply, self)
                    if rejected is not None:
                        raise rejected
            except ProviderError as exc:
                outcome = exc.outcome
                if outcome is Outcome.TIMEOUT and method in EXPENSIVE:
                    outcome = Outcome.CLIENT_TIMEOUT  # the client's heavy query: not the provider's fault
                self._judge(permit, outcome)
                if isinstance(exc, ProviderRateLimited):
                    self._cool_down(exc.retry_after)
                elif isinstance(exc, LogsRangeRefused) and not exc.too_many_results:
                    self.capabilities.refused_logs_range(exc.limit, body)
                elif isinstance(exc, ProviderUnavailable) and method in STATE_METHODS:
                    self._refused_state(method, body)
                elif type(exc) is MethodUnsupported:
                    self._refused_method(method)
                self._note_error(exc)
                raise
            outcome = Outcome.OK if reply.error is None else Outcome.RPC_ERROR
            self.breaker.record_success(permit)
            return reply
        except asyncio.CancelledError:
            outcome = None  # the client went away: never counted against the provider
            self.breaker.release(permit)
            raise
        finally:
            self.inflight -= 1
            if outcome is not None and outcome not in UNSENT:
                self.spend.record(method, own)
            if outcome is not None:
                latency_ms = (time.perf_counter_ns() - started) / 1e6
                self.stats.observe(method, latency_ms, outcome)
                self._store.record_rpc(self.id, method, latency_ms, outcome)

    async def attempt_batch(self, method: str, params: list[list], timeout: float) -> list[Any]:
        """`len(params)` requests of `method` in one JSON-RPC batch — Livechain's own (a head gap's blocks).
        The results in order (None where one errored or is missing). A batch refused as such (not a JSON array
        back) teaches that it takes no batches of this size (`capabilities.batched`) and raises
        MethodUnsupported — not a breaker failure. Spend counts every request in it."""
        n = len(params)
        body = orjson.dumps([{"jsonrpc": "2.0", "id": i, "method": method, "params": p} for i, p in enumerate(params)])
        permit = self.breaker.acquire()
        if permit == DENIED:
            raise ProviderError(f"{self.id}: circuit open", provider=self.id)
        self.inflight += 1
        started = time.perf_counter_ns()
        outcome: Outcome | None = Outcome.TRANSPORT
        try:
            try:
                response = await self.http.post(body, timeout=timeout)
                if response.status == 429:
                    raise ProviderRateLimited(f"{self.id}: HTTP 429", provider=self.id,
                                              retry_after=retry_after_seconds(response.headers.get("retry-after")))
                if response.status >= 500:
                    raise BadResponse(f"{self.id}: HTTP {response.status}", provider=self.id)
                try:
                    items = orjson.loads(response.body)
                except orjson.JSONDecodeError:
                    items = None
                if not isinstance(items, list):
                    self.capabilities.batched(n, False)
                    raise MethodUnsupported(f"{self.id}: a batch of {n} refused", provider=self.id)
            except ProviderError as exc:
                outcome = exc.outcome
                self._judge(permit, outcome)
                if isinstance(exc, ProviderRateLimited):
                    self._cool_down(exc.retry_after)
                self._note_error(exc)
                raise
            self.capabilities.batched(n, True)
            results: list[Any] = [None] * n
            for item in items:
                if isinstance(item, dict) and type(item.get("id")) is int and 0 <= item["id"] < n:
                    results[item["id"]] = item.get("result")
            outcome = Outcome.OK
            self.breaker.record_success(permit)
            return results
        except asyncio.CancelledError:
            outcome = None
            self.breaker.release(permit)
            raise
        finally:
            self.inflight -= 1
            if outcome is not None and outcome not in UNSENT:
                self.spend.record(method, own=True, n=n)
            if outcome is not None:
                latency_ms = (time.perf_counter_ns() - started) / 1e6
                self._store.record_rpc(self.id, method, latency_ms, outcome)

    def _judge(self, permit: int, outcome: Outcome) -> None:
        verdict = outcome.verdict
        if verdict is Verdict.FAILURE:
            self.breaker.record_failure(permit, outcome.value)
        elif verdict is Verdict.SUCCESS:
            self.breaker.record_success(permit)
        else:
            self.breaker.release(permit)

    def _classify(self, response: HttpResponse, method: str) -> Reply:
        status, body = response.status, response.body
        if status == 429:
            retry = retry_after_seconds(response.headers.get("retry-after"))  # headers decoded only here
            raise ProviderRateLimited(f"{self.id}: HTTP 429", provider=self.id, retry_after=retry)
        if status >= 500:
            raise BadResponse(f"{self.id}: HTTP {status}", provider=self.id)
        try:
            reply = parse_reply(body)
        except NotJsonRpc as exc:
            raise BadResponse(f"{self.id}: HTTP {status}, {exc}", provider=self.id) from None
        if status >= 300 and reply.error is None:
            raise BadResponse(f"{self.id}: HTTP {status}", provider=self.id)
        if reply.error is not None:
            exc = provider_error(reply.error, self.id, reply=reply, method=method)
            if exc is not None:
                raise exc
        return reply

    def _refused_state(self, method: str, body: bytes) -> None:
        """A state query it could not answer: if the block was behind its head, its state is pruned there."""
        try:
            params = orjson.loads(body).get("params")
        except (orjson.JSONDecodeError, AttributeError):
            return
        _, age = state_block(method, params, self.head)
        if age is not None:
            self.capabilities.refused_old_state(age)

    def _budget_changed(self, exhausted: bool) -> None:
        log.warning("budget %s", "exhausted" if exhausted else "available again",
                    extra={"chain": self.chain, "provider": self.id})
        self._events.publish("budget", chain=self.chain, provider=self.id, exhausted=exhausted)
        if self.on_change is not None:
            self.on_change()

    def _refused_method(self, method: str) -> None:
        if self.capabilities.refused_method(method):
            log.info("provider does not serve %s: left out for it", method,
                     extra={"chain": self.chain, "provider": self.id, "method": method})
            self._events.publish("capability", chain=self.chain, provider=self.id, method=method, supported=False)
        if self.on_change is not None:
            self.on_change()  # routing's eligible lists are cached: they must drop it now

    def failed_check(self, method: str, reason: str, quarantine: float | None) -> None:
        """An answer of it failed an integrity check: counted, logged; `quarantine` seconds aside (enforce)."""
        failures = self.integrity_failures
        failures[method] = failures.get(method, 0) + 1
        self.last_integrity_failure = {"ts": round(self._clock.wall(), 3), "method": method, "reason": reason}
        log.warning("integrity check failed: %s", reason,
                    extra={"chain": self.chain, "provider": self.id, "method": method})
        self._events.publish("integrity", chain=self.chain, provider=self.id, method=method, reason=reason,
                             enforced=quarantine is not None)
        if quarantine is not None:
            self.cooldown_until = max(self.cooldown_until, self._clock.monotonic() + quarantine)
            if self.on_change is not None:
                self.on_change()

    def disagreed(self, method: str) -> None:
        """It was outvoted in a quorum."""
        self.disagreements[method] = self.disagreements.get(method, 0) + 1

    def _cool_down(self, retry_after: float | None) -> None:
        seconds = min(MAX_COOLDOWN, retry_after if retry_after is not None else DEFAULT_COOLDOWN)
        self.cooldown_until = max(self.cooldown_until, self._clock.monotonic() + seconds)
        if self.on_change is not None:
            self.on_change()
        self._events.publish("cooldown", chain=self.chain, provider=self.id, seconds=round(seconds, 3))

    def _note_error(self, exc: ProviderError) -> None:
        errors = self.last_errors
        errors.append({"ts": round(self._clock.wall(), 3), "kind": exc.kind, "message": exc.message})
        if len(errors) > 20:
            del errors[0]

    # ------------------------------------------------------------------ state from health checks and heads

    def observe_head(self, number: int, since: float | None = None) -> bool:
        """A head this provider reported; True when its head changed. A higher one always replaces it. A lower
        one (a resync, a reorg onto a shorter chain, a bogus head corrected) replaces it only from a poll sent
        after the current head arrived (`since`: when the poll was sent), so a slow reply never undoes a newer
        head and a head that was wrong is re-learned."""
        head = self.head
        if head is None or number > head or (number < head and since is not None and since >= self.head_at):
            self.head = number
            self.head_at = self._clock.monotonic()
            return True
        return False

    async def close(self) -> None:
        self.retired = True
        await self.http.close()

    def snapshot(self, best_head: int | None, ws: dict[str, Any] | None = None) -> dict[str, Any]:
        """`ws`: the stats of this provider's upstream WebSocket (owned by the chain's subscriptions)."""
        now = self._clock.monotonic()
        return {
            "id": self.id,
            "priority": self.priority,
            "has_ws": self.has_ws,
            "breaker": {
                "http": self.breaker.state.value,
                "consecutive_failures": self.breaker.consecutive_failures,
                "transitions": self.breaker.transitions,
            },
            "chain_id_ok": self.chain_id_ok,
            "head": self.head,
            "head_age_s": round(now - self.head_at, 3) if self.head is not None else None,
            "lag": (best_head - self.head) if best_head is not None and self.head is not None else None,
            "cooling_down_s": round(max(0.0, self.cooldown_until - now), 3),
            "inflight": self.inflight,
            "ws": ws,
            "capabilities": self.capabilities.snapshot(),
            "tier": self.tier,
            "spend": self.spend.snapshot(),
            "integrity": {"failures": dict(self.integrity_failures), "last": self.last_integrity_failure},
            "disagreements": dict(self.disagreements),
            "breaker_history": list(self.breaker_history),
            "last_errors": list(self.last_errors[-5:]),
        }
