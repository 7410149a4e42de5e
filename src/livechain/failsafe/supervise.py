"""Run long-lived coroutines forever: restart each after a crash, with backoff, logged, counted and published.

One `Supervisor` per application (built by `Livechain`, handed to every chain through constructors): it
owns the restart counts that `/api/health` and `/metrics` show, so two applications in one process (tests,
an embedding program) never mix their counts. Nothing dies silently: every crash is logged with the task's
name, counted, and published as a `restart` event with the labels the caller gave (e.g. the chain).
Cancellation stops supervision and is re-raised.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from livechain.events import EventBus
from livechain.failsafe.backoff import Backoff

log = logging.getLogger("livechain.supervise")


class Supervisor:
    def __init__(self, events: EventBus | None = None) -> None:
        self._events = events
        #: task name → how many times it was restarted
        self.restarts: dict[str, int] = {}

    async def supervise(
        self,
        name: str,
        run: Callable[[], Awaitable[None]],
        *,
        backoff: Backoff | None = None,
        healthy_after: float = 30.0,
        **labels: Any,
    ) -> None:
        """Await `run()`; when it raises, wait a backoff and start it again. Returns when `run()` returns.
        A run that lasted `healthy_after` seconds resets the backoff."""
        backoff = backoff or Backoff(base=0.2, cap=10.0)
        while True:
            started = time.monotonic()
            try:
                await run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if time.monotonic() - started >= healthy_after:
                    backoff.reset()
                count = self.restarts[name] = self.restarts.get(name, 0) + 1
                delay = backoff.next()
                log.error(
                    "task crashed; restarting",
                    extra={"task": name, "restarts": count, "delay_s": round(delay, 3), "error": repr(exc)},
                    exc_info=exc,
                )
                if self._events is not None:
                    self._events.publish("restart", task=name, restarts=count, error=type(exc).__name__, **labels)
                await asyncio.sleep(delay)
