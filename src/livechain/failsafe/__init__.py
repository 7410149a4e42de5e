"""Failure-handling building blocks: circuit breaker, backoff, supervised and owned tasks. Policy-free, clock-injected."""

from livechain.failsafe.backoff import Backoff
from livechain.failsafe.breaker import BreakerState, CircuitBreaker
from livechain.failsafe.supervise import Supervisor
from livechain.failsafe.tasks import TaskSet

__all__ = ["Backoff", "BreakerState", "CircuitBreaker", "Supervisor", "TaskSet"]
