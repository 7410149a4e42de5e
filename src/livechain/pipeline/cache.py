"""The cache stage: answers a request from the chain's cache when it holds a true answer, and keeps what
providers answer when the rules allow (`livechain.cache.chain`: finality decides how long).

    before   key and block ref of the request (`evm.requests.describe`) noted on the call; a valid entry →
             the answer, with the client's id, no provider attempt ("hit"); `Cache-Control: no-cache` →
             not looked up ("bypass") but refreshed with the fresh answer
    after    the provider's answer (or its deterministic error about a final block) kept, unless it is null,
             from a lagging provider, about an unknown or future block, or raced a new head or a reorg

Which methods: every method with a known shape (`evm.requests.SHAPES`), minus those a chain's
`cache.methods` sets to false; a method it adds is kept until the next head (or its ttl).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from livechain.cache.chain import ChainCache
from livechain.config.schema import CachedMethod
from livechain.evm.errors import deterministic_error
from livechain.evm.requests import HEAD_REF, SHAPES, plain_key
from livechain.jsonrpc.messages import dumps
from livechain.jsonrpc.replies import Answer
from livechain.pipeline.stage import Stage

if TYPE_CHECKING:
    from livechain.pipeline.call import Call


class CacheCounts:
    """Per method: what the cache did — hit, miss, coalesced, bypass — and what it kept."""

    __slots__ = ("by_method",)

    def __init__(self) -> None:
        self.by_method: dict[str, dict[str, int]] = {}

    def count(self, method: str, what: str) -> None:
        counts = self.by_method.get(method)
        if counts is None:
            if len(self.by_method) >= 512:
                method = "other"
            counts = self.by_method.setdefault(method, {})
        counts[what] = counts.get(what, 0) + 1

    def totals(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for counts in self.by_method.values():
            for what, n in counts.items():
                out[what] = out.get(what, 0) + n
        return out


class Cache(Stage):
    name = "cache"

    def __init__(self, cache: ChainCache, overrides: Mapping[str, CachedMethod | bool], counts: CacheCounts) -> None:
        self._cache = cache
        self._counts = counts
        self._ttl = {m: o.ttl for m, o in overrides.items() if isinstance(o, CachedMethod)}
        self._added = frozenset(m for m in self._ttl if m not in SHAPES)
        self.methods = frozenset(m for m in (*SHAPES, *self._added) if overrides.get(m, True) is not False)

    def before(self, call: Call) -> Answer | None:
        request = call.request
        method = request.method
        if call.read() is None and method in self._added:
            call.key = plain_key(method, request.params)
            call.ref = HEAD_REF if call.key is not None else None
        key = call.key
        if key is None or call.ref is None:
            self._counts.count(method, "bypass")
            return None
        call.epoch = self._cache.epoch()
        if call.fresh:
            return None
        entry = self._cache.lookup(key)
        if entry is None:
            return None
        self._counts.count(method, "hit")
        member = b',"error":' if entry.error else b',"result":'
        body = b'{"jsonrpc":"2.0","id":' + dumps(request.reply_id) + member + entry.payload + b"}"
        return Answer(body, "", 0, None, "hit")

    def after(self, call: Call, answer: Answer) -> Answer:
        key = call.key
        if key is None or answer.cache == "coalesced":  # not describable; or shared, kept by its first caller
            return answer
        method = call.request.method
        self._counts.count(method, "bypass" if call.fresh else "miss")
        answer.cache = "bypass" if call.fresh else "miss"
        reply = answer.value()
        error = reply.error
        if error is not None and not deterministic_error(method, error):
            return answer
        if self._cache.admit(key, call.ref, error if error is not None else reply.result, answer.provider,
                             call.epoch, error=error is not None, ttl=self._ttl.get(method)):
            self._counts.count(method, "kept")
        return answer
