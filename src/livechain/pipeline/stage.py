"""The shape of a pipeline stage. A stage defines `before`, `after` or both; the pipeline calls only those."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from livechain.jsonrpc.replies import Answer

if TYPE_CHECKING:
    from livechain.pipeline.call import Call

Before = Callable[["Call"], Answer | None]
After = Callable[["Call", Answer], Answer]
Proceed = Callable[["Call"], Awaitable[Answer]]
Around = Callable[["Call", Proceed], Awaitable[Answer]]


class Stage:
    """Base of the pipeline's stages.

    `name`     shown in logs and in the pipeline's description (`Pipeline.describe()`)
    `methods`  the methods this stage concerns; None = every method
    `before`   (call) → None to pass the call on, an Answer to answer it here; raise a ClientError to refuse
    `after`    (call, answer) → the answer to go on with (the same object when nothing changes)
    `around`   async (call, proceed) → an answer; wraps the way to the forwarder (`proceed(call)` goes on),
               e.g. coalescing identical requests in flight, or splitting one request into several
    """

    name: str = "stage"
    methods: frozenset[str] | None = None
    before: Before | None = None
    after: After | None = None
    around: Around | None = None

    def applies(self, method: str) -> bool:
        return self.methods is None or method in self.methods
