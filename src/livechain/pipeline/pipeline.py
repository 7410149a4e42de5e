"""`Pipeline`: a chain's ordered stages around the forwarder, compiled per method."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

from livechain.errors import InternalError, LivechainError
from livechain.jsonrpc.replies import Answer
from livechain.pipeline.call import Call
from livechain.pipeline.record import Record
from livechain.pipeline.stage import After, Before, Stage

log = logging.getLogger("livechain.pipeline")

Forward = Callable[[Call], Awaitable[Answer]]
#: distinct method names compiled; beyond it (a client inventing names) plans are built per call
MAX_PLANS = 1024


class _Plan:
    """The hooks that apply to one method: `befores` in stage order, each with its stage's position;
    `afters` in reverse stage order (onion), with their positions in `after_positions`; `forward`, the
    forwarder wrapped in the `around` hooks (the first stage's outermost)."""

    __slots__ = ("after_positions", "afters", "befores", "forward")

    def __init__(
        self, befores: tuple[tuple[int, Before], ...], afters: tuple[tuple[int, After], ...], forward: Forward
    ) -> None:
        self.befores = befores
        self.afters = tuple(after for _, after in afters)
        self.after_positions = tuple(position for position, _ in afters)
        self.forward = forward


class Pipeline:
    def __init__(self, stages: Sequence[Stage], forward: Forward, record: Record) -> None:
        self.stages: tuple[Stage, ...] = tuple(stages)
        self._forward = forward
        self._record = record
        self._plans: dict[str, _Plan] = {}

    def describe(self) -> list[str]:
        """The stage names in order, the forwarder in its place."""
        return [*(s.name for s in self.stages), "forward"]

    def _plan(self, method: str) -> _Plan:
        plan = self._plans.get(method)
        if plan is None:
            applying = [(i, s) for i, s in enumerate(self.stages) if s.applies(method)]
            forward = self._forward
            for _, stage in reversed(applying):
                if stage.around is not None:
                    forward = partial(stage.around, proceed=forward)
            plan = _Plan(
                tuple((i, s.before) for i, s in applying if s.before is not None),
                tuple((i, s.after) for i, s in reversed(applying) if s.after is not None),
                forward,
            )
            if len(self._plans) < MAX_PLANS:
                self._plans[method] = plan
        return plan

    async def run(self, call: Call) -> Answer:
        """`begin`, then `finish` unless it answered."""
        answer = self.begin(call)
        if answer is not None:
            return answer
        return await self.finish(call)

    def begin(self, call: Call) -> Answer | None:
        """The `before` hooks, synchronously: the answer when a stage gave one (a cache hit: the edge can write
        it at once, with no task), else None and the call goes on with `finish`. Raises what `run` raises."""
        plan = call.plan = self._plans.get(call.request.method) or self._plan(call.request.method)
        try:
            for position, before in plan.befores:
                answer = before(call)
                if answer is not None:  # answered here: only the stages before this one see it
                    for after, at in zip(plan.afters, plan.after_positions, strict=True):
                        if at < position:
                            answer = after(call, answer)
                    self._record.ok(True)
                    return answer
        except Exception as exc:
            raise self._failed(call, exc) from None
        return None

    async def finish(self, call: Call) -> Answer:
        """The forwarder (inside the `around` hooks) and the `after` hooks, for a call `begin` left unanswered
        (`begin` noted the method's plan on it)."""
        plan = call.plan
        try:
            answer = await plan.forward(call)
            for after in plan.afters:
                answer = after(call, answer)
        except Exception as exc:
            raise self._failed(call, exc) from None
        self._record.ok(True)
        return answer

    def _failed(self, call: Call, exc: Exception) -> LivechainError:
        """What the client gets for `exc`: a Livechain error as it is, anything else (a bug) logged and
        InternalError. Recorded either way."""
        if isinstance(exc, LivechainError):
            self._record.failed(call, exc)
            return exc
        log.error("unexpected error in the request pipeline", extra={"method": call.request.method}, exc_info=exc)
        self._record.failed(call, None)
        return InternalError()
