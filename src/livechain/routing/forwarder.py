"""Forward one JSON-RPC request: select, then try providers in order within the deadline, failing over.

- Deadline: the whole request's budget (`chain.deadline`); each attempt gets min(attempt_timeout, what is
  left). Up to `max_attempts` providers are tried, each at most once.
- A provider's own JSON-RPC error (revert, invalid params) is the answer: returned, never failed over.
- eth_sendRawTransaction fails over too (a resent signed transaction is harmless; the pipeline's
  already-known fix turns a later provider's "already known" into the transaction's hash).
- Hedging (opt-in, `hedge_after`): an attempt still unanswered after that long is raced by the next
  provider's; the first usable answer wins.
- When every attempt failed: the last provider's own JSON-RPC reply if one was a real answer (e.g. every
  provider says the data is unavailable), else one error saying how many attempts failed — never a URL.
- Cancellation (the client went away) propagates; it is never counted against a provider.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from livechain.clock import SYSTEM_CLOCK, Clock
from livechain.errors import AllAttemptsFailed, DeadlineExceeded, NoProviderAvailable, ProviderError
from livechain.events import EventBus
from livechain.jsonrpc.messages import Request
from livechain.jsonrpc.replies import Answer, Reply
from livechain.providers.pool import ProviderPool
from livechain.providers.provider import Check, Provider
from livechain.routing.selection import eligible
from livechain.routing.strategies import Strategy

WIRE_ID = 1
Accept = Callable[[Provider], bool]
#: (the replies so far, with who gave them) → True when no more are needed
Enough = Callable[[list[tuple[Provider, Reply]]], bool]


class Forwarder:
    def __init__(self, pool: ProviderPool, events: EventBus, clock: Clock = SYSTEM_CLOCK) -> None:
        self.pool = pool
        self._events = events
        self._clock = clock
        self._stragglers: set[asyncio.Task] = set()

    def plan(
        self, method: str, strategy: Strategy, pinned: Provider | None = None, accept: Accept | None = None,
        prefer: Accept | None = None, limit: int | None = None,
    ) -> list[Provider]:
        """The providers to try, in order (at most `limit`, by default `max_attempts`). `accept`: only those (a
        request some providers must never get, e.g. a range over their limit); `prefer`: those first, then the
        others — what Livechain knows of a provider (its head, its state depth) may be out of date, and when
        the preferred ones fail or lag, another may still answer."""
        if pinned is not None:
            return [pinned]
        order = strategy.order(eligible(self.pool, method, self._clock), method)
        if accept is not None:
            order = [p for p in order if accept(p)]
        if prefer is not None:
            preferred = [p for p in order if prefer(p)]
            if len(preferred) < len(order):
                order = preferred + [p for p in order if not prefer(p)]
        return order[: limit if limit is not None else self.pool.config.max_attempts]

    async def forward(
        self, request: Request, strategy: Strategy, pinned: Provider | None = None, accept: Accept | None = None,
        prefer: Accept | None = None, check: Check | None = None, own: bool = False,
        trail: list[tuple[str, str]] | None = None,
    ) -> Answer:
        """`check`: judges each answer before it is taken (`Provider.attempt`); a rejected one fails over.
        `own`: Livechain's own request (counted apart from client traffic in spend). `trail`: each attempt's
        (provider, outcome) is appended to it (a client asked for an explanation)."""
        cfg = self.pool.config
        clock = self._clock
        deadline = clock.monotonic() + cfg.deadline
        method = request.method
        plan = self.plan(method, strategy, pinned, accept, prefer)
        if not plan:
            raise NoProviderAvailable(
                f"no provider available for {method} on {self.pool.chain} (all circuits open or excluded)"
            )
        body = request.upstream_body(WIRE_ID if request.needs_wire_id else None)
        if cfg.hedge_after is not None and pinned is None and len(plan) > 1:
            return await self._hedged(request, body, plan, deadline, cfg.hedge_after, check, own, trail)
        last: ProviderError | None = None
        answered: ProviderError | None = None  # the last failure that came with the provider's own reply
        attempts = 0
        for provider in plan:
            remaining = deadline - clock.monotonic()
            if remaining <= 0:
                raise DeadlineExceeded(attempts, cfg.deadline)
            attempts += 1
            try:
                reply = await provider.attempt(body, method, min(cfg.attempt_timeout, remaining), check, own)
            except ProviderError as exc:
                last = exc
                if trail is not None:
                    trail.append((provider.id, exc.kind))
                if isinstance(exc.reply, Reply):
                    answered = exc
                if attempts < len(plan):
                    self._events.publish(
                        "failover", chain=self.pool.chain, provider=provider.id, reason=exc.kind, method=method
                    )
                continue
            if trail is not None:
                trail.append((provider.id, "ok" if reply.error is None else "rpc_error"))
            return Answer(reply.for_client(request.reply_id), provider.id, attempts, reply)
        return self._failed(request, answered, last, attempts, deadline)

    def _failed(
        self, request: Request, answered: ProviderError | None, last: ProviderError | None, attempts: int,
        deadline: float,
    ) -> Answer:
        """Every attempt failed: the last real provider answer if there was one, else one routing error."""
        cfg = self.pool.config
        clock = self._clock
        if answered is not None:
            reply = answered.reply
            return Answer(reply.for_client(request.reply_id), answered.provider, attempts, reply)
        if clock.monotonic() >= deadline:
            raise DeadlineExceeded(attempts, cfg.deadline)
        raise AllAttemptsFailed(attempts, last)

    async def _hedged(
        self, request: Request, body: bytes, plan: list[Provider], deadline: float, hedge_after: float,
        check: Check | None, own: bool = False, trail: list[tuple[str, str]] | None = None,
    ) -> Answer:
        """Like the sequential path, but when the running attempt has not answered within `hedge_after`, the
        next provider is started too; the first usable answer wins. The attempts it beat keep running to their
        own end (their outcome is recorded); on cancellation or deadline they are cancelled (never counted
        against a provider). A failed attempt starts the next one at once."""
        cfg = self.pool.config
        clock = self._clock
        method = request.method
        loop = asyncio.get_running_loop()
        waiting = iter(plan)
        running: dict[asyncio.Task, Provider] = {}
        attempts = 0
        last: ProviderError | None = None
        answered: ProviderError | None = None

        def launch() -> bool:
            nonlocal attempts
            provider = next(waiting, None)
            remaining = deadline - clock.monotonic()
            if provider is None or remaining <= 0:
                return False
            attempts += 1
            task = loop.create_task(
                provider.attempt(body, method, min(cfg.attempt_timeout, remaining), check, own),
                name=f"{self.pool.chain}/attempt/{provider.id}",
            )
            running[task] = provider
            return True

        launch()
        try:
            while running:
                remaining = deadline - clock.monotonic()
                if remaining <= 0:
                    break
                done, _ = await asyncio.wait(
                    running, timeout=min(hedge_after, remaining), return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    if launch():
                        self._events.publish("hedge", chain=self.pool.chain, method=method, attempts=attempts)
                    continue
                for task in done:
                    provider = running.pop(task)
                    exc = task.exception()
                    if exc is None:
                        self._let_finish(running)
                        running = {}
                        reply = task.result()
                        if trail is not None:
                            trail.append((provider.id, "ok" if reply.error is None else "rpc_error"))
                        return Answer(reply.for_client(request.reply_id), provider.id, attempts, reply)
                    if not isinstance(exc, ProviderError):
                        raise exc
                    last = exc
                    if trail is not None:
                        trail.append((provider.id, exc.kind))
                    if isinstance(exc.reply, Reply):
                        answered = exc
                    if launch():
                        self._events.publish(
                            "failover", chain=self.pool.chain, provider=provider.id, reason=exc.kind, method=method
                        )
        finally:
            for task in running:  # the client went away, or the deadline passed: nobody wants these
                task.cancel()
        return self._failed(request, answered, last, attempts, deadline)

    async def together(
        self, request: Request, strategy: Strategy, count: int | None, enough: Enough, accept: Accept | None = None,
        prefer: Accept | None = None, check: Check | None = None,
    ) -> tuple[list[tuple[Provider, Reply]], list[ProviderError], int]:
        """One attempt on each of several providers at once: the first `count` in the strategy's order (None:
        every eligible one), within the deadline. Returns (the replies so far with who gave them, the failures,
        how many attempts were made) as soon as `enough(replies)` holds, or when every attempt has ended. The
        attempts still running then run on to their own end (they are recorded; a broadcast transaction
        still reaches those providers); when the caller is cancelled they are cancelled."""
        cfg = self.pool.config
        clock = self._clock
        deadline = clock.monotonic() + cfg.deadline
        method = request.method
        plan = self.plan(method, strategy, None, accept, prefer, limit=count if count is not None else len(self.pool.providers))
        if not plan:
            raise NoProviderAvailable(
                f"no provider available for {method} on {self.pool.chain} (all circuits open or excluded)"
            )
        body = request.upstream_body(WIRE_ID if request.needs_wire_id else None)
        loop = asyncio.get_running_loop()
        timeout = min(cfg.attempt_timeout, cfg.deadline)
        running = {
            loop.create_task(p.attempt(body, method, timeout, check), name=f"{self.pool.chain}/attempt/{p.id}"): p
            for p in plan
        }
        replies: list[tuple[Provider, Reply]] = []
        failures: list[ProviderError] = []
        finished = False
        try:
            while running:
                remaining = deadline - clock.monotonic()
                if remaining <= 0:
                    break
                done, _ = await asyncio.wait(running, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    provider = running.pop(task)
                    exc = task.exception()
                    if exc is None:
                        replies.append((provider, task.result()))
                    elif isinstance(exc, ProviderError):
                        failures.append(exc)
                    else:
                        raise exc
                if enough(replies):
                    break
            finished = True
        finally:
            if finished:
                self._let_finish(running)
            else:
                for task in running:
                    task.cancel()
        return replies, failures, len(plan)

    def _let_finish(self, running: dict[asyncio.Task, Provider]) -> None:
        """Attempts that lost a hedge run to their own end (bounded by attempt_timeout), so a provider that
        does not answer is still recorded as failing and its breaker can open. Owned here until done."""
        for task in running:
            self._stragglers.add(task)
            task.add_done_callback(self._straggler_done)

    def _straggler_done(self, task: asyncio.Task) -> None:
        self._stragglers.discard(task)
        if not task.cancelled():
            task.exception()  # recorded by the attempt itself; retrieved so it is never "unretrieved"

    def close(self) -> None:
        for task in list(self._stragglers):
            task.cancel()
