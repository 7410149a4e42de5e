"""Livechain as a Python library: the whole proxy — routing, failover, breakers, racing, benchmarks — inside
your own process, with no socket hop.

    from livechain import Livechain

    async with Livechain.from_config("livechain.yaml") as lc:     # a path, or a dict with the same schema
        number = await lc.request("ethereum", "eth_blockNumber")    # the result, or raises (see below)
        with lc.subscribe("ethereum", "newHeads") as heads:         # raced across every provider
            async for head in heads:
                ...
        await lc.serve(port=4000)                                   # optional: the HTTP/WebSocket edge too

Requests travel the same pipeline as HTTP and WebSocket requests (`Chain.call`): method policy, limits,
routing, failover, reply fixes, recording. An error answer raises: `RpcError` for the provider's own error
(a revert, invalid params: `.code`, `.message`, `.data`), a `livechain.errors` class for Livechain's
(`MethodNotFound` -32601, `LimitExceeded` -32005, `NoProviderAvailable` / `AllAttemptsFailed` -32002, …) —
all `LivechainError`, all with `.code`, `.message`, `.data`. In-process calls are not subject to API keys or
rate limits: the program embedding Livechain is the client. web3.py: `livechain.web3`.

`Livechain` starts no HTTP server unless `serve()` is called; it can run beside one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from livechain.cache.store import MemoryStore
from livechain.chains.chain import Chain
from livechain.chains.chain import Subscription as FeedSubscription
from livechain.chains.registry import ChainRegistry
from livechain.chains.snapshots import Snapshots
from livechain.clock import SYSTEM_CLOCK, Clock
from livechain.config import ConfigStore, config_from_mapping, load_config
from livechain.config.schema import Config
from livechain.errors import InvalidRequest, LimitExceeded, LivechainError, RpcError, UnknownChain
from livechain.events import EventBus
from livechain.failsafe import Supervisor, TaskSet
from livechain.jsonrpc.messages import Invalid, Request, parse_message
from livechain.jsonrpc.replies import Answer
from livechain.log import REDACTOR
from livechain.server.edge import WebEdge
from livechain.server.plugins import PluginFactory

log = logging.getLogger("livechain.app")

FOLD_INTERVAL = 0.02  # small, frequent folds: one long fold would stall the loop (p99, bench/variants.py)
EXPIRE_INTERVAL = 60.0
SCORE_INTERVAL = 1.0
SUBSCRIPTION_QUEUE = 1024


def register_secrets(config: Config) -> None:
    """Teach the log redactor every provider URL and header value of `config`."""
    for chain in config.chains.values():
        for provider in chain.providers:
            REDACTOR.register_url(provider.http_url, provider.id)
            if provider.ws_url:
                REDACTOR.register_url(provider.ws_url, provider.id)
            for value in provider.headers.values():
                REDACTOR.register(value, "<secret>")


def request_of(method: str, params: Any, rid: Any = 1) -> Request:
    """A validated request from Python values (the rules of a JSON-RPC message); raises InvalidRequest."""
    message = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        message["params"] = list(params) if isinstance(params, tuple) else params
    parsed = parse_message(message)
    if isinstance(parsed, Invalid):
        raise parsed.error
    return parsed


def result_of(answer: Answer) -> Any:
    """The result of an answer, or raise its error as RpcError."""
    reply = answer.value()
    if reply.error is not None:
        error = reply.error
        raise RpcError(error.get("code", -32603), error.get("message", ""), data=error.get("data"))
    return reply.result


class Livechain:
    def __init__(self, store: ConfigStore, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.config_store = store
        self.clock = clock
        self.events = EventBus()
        self.supervisor = Supervisor(self.events)
        register_secrets(store.current)
        cache = store.current.cache
        #: the response cache of this process, shared by every chain (None: `cache.enabled: false` at start)
        self.cache = MemoryStore(cache.max_bytes, cache.max_entry_bytes) if cache.enabled else None
        self.registry = ChainRegistry(
            store.current, events=self.events, supervisor=self.supervisor, clock=clock, cache_store=self.cache
        )
        self.snapshots = Snapshots(self.registry, store.current, clock)
        self.tasks = TaskSet("livechain")
        self.edge: WebEdge | None = None
        self.started_at = time.time()
        self._started = False
        self._stopped = asyncio.Event()
        store.subscribe(self._adopt)

    @classmethod
    def from_config(cls, source: str | os.PathLike[str] | Mapping[str, Any], *, clock: Clock = SYSTEM_CLOCK) -> Livechain:
        """From a YAML file (which `reload()` re-reads) or a mapping with the file's schema. Raises ConfigError
        with every problem at its dotted path."""
        if isinstance(source, Mapping):
            return cls(ConfigStore(None, config_from_mapping(dict(source))), clock=clock)
        return cls(ConfigStore(source, load_config(source)), clock=clock)

    @property
    def config(self) -> Config:
        return self.config_store.current

    @property
    def restarts(self) -> dict[str, int]:
        return self.supervisor.restarts

    @property
    def host(self) -> str:
        return self.edge.host if self.edge is not None else ""

    @property
    def port(self) -> int:
        return self.edge.port if self.edge is not None else 0

    def chain(self, name: str) -> Chain:
        """A chain by name or decimal chain id; UnknownChain otherwise."""
        chain = self.registry.resolve(str(name))
        if chain is None:
            raise UnknownChain(f"unknown chain: {str(name)[:64]}")
        return chain

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Restore the last snapshot, start the chains (health checks, provider WebSockets) and the timers."""
        await self._start_core()

    async def _start_core(self) -> None:
        if self._started:
            return
        self._started = True
        await self.snapshots.open()
        self.registry.start()
        self.tasks.spawn("livechain/fold", self.supervisor.supervise("livechain/fold", self._fold_loop))
        self.tasks.spawn("livechain/snapshots", self.supervisor.supervise("livechain/snapshots", self.snapshots.run))

    async def serve(
        self,
        host: str | None = None,
        port: int | None = None,
        *,
        admin_token: str | None = None,
        plugins: Sequence[PluginFactory] = (),
    ) -> int:
        """Start the web edge (HTTP and WebSocket JSON-RPC, API, metrics, dashboard) beside the library;
        returns the port. `admin_token` None: $LIVECHAIN_ADMIN_TOKEN."""
        if self.edge is not None:
            raise RuntimeError("already serving")
        await self._start_core()
        if admin_token is None:
            admin_token = os.environ.get("LIVECHAIN_ADMIN_TOKEN")
        cfg = self.config.server
        self.edge = WebEdge(
            self.registry, lambda: self.config, self.events, self.snapshots, self.supervisor.restarts,
            admin_token=admin_token, reload=self.reload, plugins=plugins, cache=self.cache,
        )
        port = await self.edge.start(host if host is not None else cfg.host, port if port is not None else cfg.port)
        log.info("listening", extra={"host": self.edge.host, "port": port, "chains": [c.name for c in self.registry],
                                     "region": self.config.region})
        return port

    async def stop(self) -> None:
        """Graceful and idempotent: the edge first (requests in flight finish within server.shutdown_grace),
        then the timers, the final snapshot, the chains."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self.edge is not None:
            grace = self.config.server.shutdown_grace
            log.info("shutting down", extra={"grace_s": grace})
            await self.edge.stop(grace)
        await self.tasks.close(timeout=5)
        try:
            await self.snapshots.close()  # the final snapshot
        except Exception:
            log.exception("final snapshot failed")
        await self.registry.close()
        log.info("stopped")

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def __aenter__(self) -> Livechain:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _fold_loop(self) -> None:
        last_expire = last_score = time.monotonic()
        while True:
            await asyncio.sleep(FOLD_INTERVAL)
            for chain in self.registry:
                chain.fold()
            if time.monotonic() - last_score >= SCORE_INTERVAL:
                last_score = time.monotonic()
                for chain in self.registry:
                    chain.refresh_scores()
            if time.monotonic() - last_expire >= EXPIRE_INTERVAL:
                last_expire = time.monotonic()
                for chain in self.registry:
                    chain.expire()

    # ------------------------------------------------------------------ reload

    def reload(self) -> dict[str, Any]:
        """Re-read the config file; on success chains, providers and the edge adopt it in place."""
        result = self.config_store.reload()
        out = {"ok": result.ok, "version": result.version, "changed": result.changed}
        if not result.ok:
            out["problems"] = [f"{path}: {msg}" for path, msg in result.problems]
            log.error("reload rejected; keeping the last good config", extra={"problems": out["problems"]})
        return out

    def _adopt(self, old: Config, new: Config) -> None:
        register_secrets(new)
        if self.cache is not None:
            self.cache.configure(new.cache.max_bytes, new.cache.max_entry_bytes)
        self.registry.apply(new)
        self.snapshots.config = new
        if self.edge is not None:
            self.edge.adopt(new)
        self.events.publish("reload", chains=sorted(new.chains))
        log.info("config reloaded", extra={"chains": sorted(new.chains)})

    # ------------------------------------------------------------------ requests

    async def request(
        self, chain: str, method: str, params: Sequence[Any] | Mapping[str, Any] | None = None, *, fresh: bool = False,
        session: str | None = None,
    ) -> Any:
        """One JSON-RPC request through the chain's pipeline: its result, or raises (module docstring).
        `fresh`: not from the cache (a provider answers; the cache is refreshed). `session`: a name for the
        caller — requests with the same session never see the chain go backwards (see README)."""
        request = request_of(method, [] if params is None else params)
        return result_of(await self.chain(chain).call(request, None, session, fresh))

    async def answer(
        self, chain: str, method: str, params: Any = None, rid: Any = 1, *, fresh: bool = False,
        session: str | None = None,
    ) -> Answer:
        """Like `request`, but the whole answer: the reply with `rid` as its id, who answered, how many
        attempts, what the cache did. Livechain's own errors still raise."""
        return await self.chain(chain).call(request_of(method, [] if params is None else params, rid), None, session,
                                            fresh)

    async def request_batch(
        self, chain: str, calls: Iterable[tuple[str, Any]]
    ) -> list[Any | LivechainError]:
        """Several requests at once (concurrently, within the chain's batch limit): for each, in order, its
        result or the error it would have raised."""
        target = self.chain(chain)
        requests: list[Request | LivechainError] = []
        for i, (method, params) in enumerate(calls):
            try:
                requests.append(request_of(method, [] if params is None else params, i))
            except InvalidRequest as exc:
                requests.append(exc)
        target.check_batch(len(requests))

        async def one(item: Request | LivechainError) -> Any:
            if isinstance(item, LivechainError):
                return item
            try:
                return result_of(await target.call(item))
            except LivechainError as exc:
                return exc

        return list(await asyncio.gather(*(one(item) for item in requests)))

    # ------------------------------------------------------------------ subscriptions

    def subscribe(self, chain: str, kind: str, *args: Any, queue: int = SUBSCRIPTION_QUEUE) -> Subscription:
        """A subscription on the chain's raced feed (`newHeads`, `logs` with a filter, `newPendingTransactions`),
        live when this returns. Iterate it with `async for`; close it (or leave its `with` block) to end it."""
        return Subscription(self.chain(chain), [kind, *args], queue)


class SubscriptionOverflow(LimitExceeded):
    """The consumer did not keep up: `queue` notifications were waiting. The subscription has ended."""


class Subscription:
    """An in-process client subscription: a feed `Sink` with a bounded queue, and an async iterator of the
    decoded notifications. A consumer that falls `queue` notifications behind loses the subscription (the
    next read raises SubscriptionOverflow) — never unbounded memory, never a slower feed for others."""

    _END = object()

    def __init__(self, chain: Chain, params: list, queue: int) -> None:
        self.id = "0x" + secrets.token_hex(16)
        self._chain = chain
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=queue)
        self._overflow = False
        self._feed: FeedSubscription | None = chain.subscribe_now(params, self, self.id.encode())

    @property
    def kind(self) -> str:
        return self._feed.kind if self._feed is not None else ""

    def send_notification(self, sid: bytes, result_json: bytes) -> None:
        if self._feed is None:
            return
        try:
            self._queue.put_nowait(result_json)
        except asyncio.QueueFull:
            self._overflow = True
            self.close()

    def close(self) -> None:
        feed, self._feed = self._feed, None
        if feed is not None:
            self._chain.unsubscribe(feed)
            while self._queue.full():  # room for the end marker: the queue is finished anyway
                self._queue.get_nowait()
            self._queue.put_nowait(self._END)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Any:
        item = await self._queue.get()
        if item is self._END:
            self._queue.put_nowait(self._END)  # every later read ends too
            if self._overflow:
                raise SubscriptionOverflow(f"subscription {self.id} ended: more than {self._queue.maxsize} "
                                           "notifications were waiting")
            raise StopAsyncIteration
        return orjson.loads(item)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
