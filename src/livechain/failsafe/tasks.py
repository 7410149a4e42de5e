"""An owner for tasks: every task named, strongly referenced, its crash logged, cancelled on close.

asyncio.TaskGroup cancels every sibling when one fails, which is wrong for long-lived independent work
(one provider's health loop must not stop another's); this set keeps them independent and still owned.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("livechain.tasks")


class TaskSet:
    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._tasks: set[asyncio.Task] = set()
        self._closed = False

    def spawn(self, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task:
        if self._closed:
            coro.close()
            raise RuntimeError(f"{self.owner}: task set is closed")
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "task failed", extra={"owner": self.owner, "task": task.get_name()}, exc_info=task.exception()
            )

    def __len__(self) -> int:
        return len(self._tasks)

    def names(self) -> list[str]:
        return sorted(t.get_name() for t in self._tasks)

    async def close(self, timeout: float | None = None) -> None:
        """Cancel every task and wait for them (at most `timeout` seconds)."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    async def wait(self, timeout: float | None = None) -> None:
        """Wait for the current tasks to finish on their own."""
        tasks = list(self._tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
