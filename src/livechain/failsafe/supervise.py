"""Run a long-lived coroutine forever: restart it after a crash, with backoff, logged and counted.

Nothing dies silently: every crash is logged with the task's name, counted in `restarts`, and passed to
`on_crash` (which the app publishes as an event). Cancellation stops supervision and is re-raised.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from livechain.failsafe.backoff import Backoff

log = logging.getLogger("livechain.supervise")

#: name → how many times it was restarted, for /api/health and /metrics
restarts: dict[str, int] = {}

Crash = Callable[[str, BaseException, int], None]


async def supervise(
    name: str,
    run: Callable[[], Awaitable[None]],
    *,
    backoff: Backoff | None = None,
    on_crash: Crash | None = None,
    healthy_after: float = 30.0,
) -> None:
    """Await `run()`; when it raises, wait a backoff and start it again. Returns when `run()` returns."""
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
            count = restarts[name] = restarts.get(name, 0) + 1
            delay = backoff.next()
            log.error(
                "task crashed; restarting",
                extra={"task": name, "restarts": count, "delay_s": round(delay, 3), "error": repr(exc)},
                exc_info=exc,
            )
            if on_crash is not None:
                try:
                    on_crash(name, exc, count)
                except Exception:  # a broken listener must not stop supervision
                    log.exception("on_crash listener failed", extra={"task": name})
            await asyncio.sleep(delay)
