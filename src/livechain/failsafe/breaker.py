"""Circuit breaker: closed → open → half_open → closed. Policy-free: the caller decides what a failure is.

    closed    --(failure_threshold consecutive failures)-->  open
    open      --(recovery_timeout elapsed)---------------->  half_open   (checked lazily, on read)
    half_open --(success_threshold successes)------------->  closed
    half_open --(any failure)----------------------------->  open

In half_open at most `half_open_probes` attempts run at once. Sync and lock-free: every change happens on
the event loop. `acquire()` hands out a permit (an int) that carries the breaker's generation; a verdict
on a permit from an earlier generation (an attempt that started before a transition) is ignored, so a slow
attempt from before the breaker opened cannot close it or re-open it.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from livechain.clock import SYSTEM_CLOCK, Clock


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


DENIED = 0
_PROBE = 1  # low bit of a permit: this attempt is a half-open probe

Transition = Callable[["CircuitBreaker", BreakerState, BreakerState, str], None]


class CircuitBreaker:
    __slots__ = (
        "_clock",
        "_failures",
        "_generation",
        "_on_transition",
        "_opened_at",
        "_probes",
        "_state",
        "_successes",
        "failure_threshold",
        "half_open_probes",
        "name",
        "recovery_timeout",
        "success_threshold",
        "transitions",
    )

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        recovery_timeout: float = 10.0,
        success_threshold: int = 2,
        half_open_probes: int = 1,
        clock: Clock = SYSTEM_CLOCK,
        on_transition: Transition | None = None,
    ) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.recovery_timeout = recovery_timeout
        self.success_threshold = success_threshold
        self.half_open_probes = half_open_probes
        self._clock = clock
        self._on_transition = on_transition
        self._state = BreakerState.CLOSED
        self._generation = 1
        self._failures = 0
        self._successes = 0
        self._probes = 0
        self._opened_at = 0.0
        self.transitions = 0

    def configure(
        self, *, failure_threshold: int, recovery_timeout: float, success_threshold: int, half_open_probes: int
    ) -> None:
        """Adopt new thresholds (a config reload); the state and its counts are kept."""
        self.failure_threshold = failure_threshold
        self.recovery_timeout = recovery_timeout
        self.success_threshold = success_threshold
        self.half_open_probes = half_open_probes

    # ------------------------------------------------------------------ reading

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock.monotonic() - self._opened_at >= self.recovery_timeout:
            self._move(BreakerState.HALF_OPEN, "recovery timeout elapsed")
        return self._state

    def available(self) -> bool:
        """Would `acquire()` grant a permit now? (No side effect beyond the lazy open → half_open.)"""
        if self._state is BreakerState.CLOSED:  # the common case, without the property's timer check
            return True
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        return state is BreakerState.HALF_OPEN and self._probes < self.half_open_probes

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    @property
    def opened_at(self) -> float:
        return self._opened_at

    # ------------------------------------------------------------------ permits

    def acquire(self) -> int:
        """A permit for one attempt, or DENIED (0)."""
        if self._state is BreakerState.CLOSED:
            return self._generation << 1
        state = self.state
        if state is BreakerState.CLOSED:
            return self._generation << 1
        if state is BreakerState.HALF_OPEN and self._probes < self.half_open_probes:
            self._probes += 1
            return (self._generation << 1) | _PROBE
        return DENIED

    def record_success(self, permit: int) -> None:
        if not self._current(permit):
            return
        if permit & _PROBE:
            self._probes -= 1
            self._successes += 1
            if self._successes >= self.success_threshold:
                self._move(BreakerState.CLOSED, f"{self._successes} successful probe(s)")
        else:
            self._failures = 0

    def record_failure(self, permit: int, reason: str = "failure") -> None:
        if not self._current(permit):
            return
        if permit & _PROBE:
            self._probes -= 1
            self._move(BreakerState.OPEN, f"probe failed: {reason}")
            return
        self._failures += 1
        if self._failures >= self.failure_threshold:
            self._move(BreakerState.OPEN, f"{self._failures} consecutive failures, last: {reason}")

    def release(self, permit: int) -> None:
        """The attempt ended without a verdict (cancelled, or the client's own fault)."""
        if permit & _PROBE and self._current(permit):
            self._probes -= 1

    def force_open(self, reason: str) -> None:
        """Open now (e.g. a provider that serves the wrong chain)."""
        if self._state is not BreakerState.OPEN:
            self._move(BreakerState.OPEN, reason)

    # ------------------------------------------------------------------ internals

    def _current(self, permit: int) -> bool:
        return permit != DENIED and (permit >> 1) == self._generation

    def _move(self, new: BreakerState, reason: str) -> None:
        old = self._state
        self._state = new
        self._generation += 1
        self._failures = 0
        self._successes = 0
        self._probes = 0
        self.transitions += 1
        if new is BreakerState.OPEN:
            self._opened_at = self._clock.monotonic()
        if self._on_transition is not None:
            self._on_transition(self, old, new, reason)
