"""A client's JSON-RPC session on a persistent connection — a WebSocket (`server.ws`) or an in-process socket
(the library's web3 provider). The connection frames bytes; the session does the rest:

- every message is parsed and charged to the client (`clients.exchange.read` rules); single requests and
  batches run concurrently through `Chain.call`, at most MAX_INFLIGHT per session (beyond: -32005 with each
  request's id), and are answered as they finish;
- `eth_subscribe` / `eth_unsubscribe` are the session's own: subscription ids are Livechain's (random,
  per session), the subscription is on the chain's shared, raced feed (`Chain.subscribe`, which answers only
  once the subscription will deliver: a provider subscription is live or the HTTP fallback runs — else an
  error), and the reply to eth_subscribe is always sent before the subscription's first notification
  (attaching and answering happen in one step of the loop; a resumed subscription's missed events are
  released right after the reply);
- notifications go out through `send_notification` (the session is the feed's `Sink`).

The connection gives the session `send(bytes)`, calls `receive(bytes)` per message and `close()` once.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from collections.abc import Callable
from typing import Any

from livechain.chains.chain import Chain, Subscription
from livechain.clients.access import Client
from livechain.clients.exchange import answer_batch, refusal
from livechain.errors import InternalError, InvalidParams, LimitExceeded, LivechainError
from livechain.jsonrpc.messages import Invalid, Request, error_body, parse_body, result_response
from livechain.pipeline import Call, Route

log = logging.getLogger("livechain.clients")

MAX_INFLIGHT = 256  # concurrent requests per session
_NOTE_HEAD = b'{"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":"'
_NOTE_MID = b'","result":'
_NOTE_TAIL = b"}}"


_CONNECTIONS = itertools.count(1)  # numbers the connections that are their own session


class RpcSession:
    #: the session's own methods (`clients.exchange.Local`)
    methods = frozenset({"eth_subscribe", "eth_unsubscribe"})

    def __init__(
        self,
        chain: Chain,
        route: Route,
        client: Client,
        send: Callable[[bytes], object],
        *,
        max_subscriptions: int,
        name: str,
        fresh: bool = False,
        session: str | None = None,
        owner: str | None = None,
    ) -> None:
        """`fresh`: the connection asked `Cache-Control: no-cache` (every request answered by a provider).
        `session`: an X-Livechain-Session value shared with other connections; without one, the connection is
        its own session (the consistency stages never serve it a block below one it was given). `owner`: who
        owns the filters it creates (the API key's name, else the client's address)."""
        self.owner = owner
        self.chain = chain
        self.fresh = fresh
        self.route = route
        self.client = client
        identity = client.identity or ""
        self._who = f"{identity}/{session[:128]}" if session else f"{identity}#{next(_CONNECTIONS)}"
        self._send = send
        self.max_subscriptions = max_subscriptions
        self.name = name
        self.subscriptions: dict[bytes, Subscription] = {}
        self._subscribing = 0  # eth_subscribe waiting for its feed
        self._unreleased: list[Subscription] = []  # answered in a batch not sent yet
        self._tasks: set[asyncio.Task] = set()
        self.closed = False

    # ------------------------------------------------------------------ messages in

    def receive(self, data: bytes) -> None:
        """One complete message from the client."""
        try:
            parsed = parse_body(data)
        except LivechainError as exc:
            self._send(error_body(exc))
            return
        try:
            self.client.charge(len(parsed) if type(parsed) is list else 1)
        except LivechainError as exc:
            self._send(refusal(parsed, exc))
            return
        if type(parsed) is Invalid:
            self._send(error_body(parsed.error, parsed.id))
            return
        if type(parsed) is Request and parsed.method in self.methods:
            if parsed.method == "eth_unsubscribe":  # nothing to await: answered in order, no task
                self._send_opt(self._local_reply(parsed, self._unsubscribe))
            else:
                self._spawn(self._local(parsed))
            return
        if len(self._tasks) >= MAX_INFLIGHT:
            self._send(refusal(parsed, LimitExceeded(f"more than {MAX_INFLIGHT} requests in flight on this connection")))
            return
        if type(parsed) is not Request:
            self._spawn(self._batch(parsed))  # type: ignore[arg-type]
            return
        try:  # the stages before the forwarder at once: a cache hit or a refusal needs no task
            call, answer = self.chain.begin(parsed, self.route, self._who, self.fresh, self.owner)
        except LivechainError as exc:
            answer, body = None, error_body(exc, parsed.reply_id)
        else:
            if answer is None:
                self._spawn(self._finish(call, parsed))
                return
            body = answer.body
        if not parsed.notification:
            self._send(body)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.name}/request")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish(self, call: Call, request: Request) -> None:
        try:
            body = (await self.chain.finish(call)).body
        except LivechainError as exc:
            body = error_body(exc, request.reply_id)
        if not request.notification:
            self._send(body)

    async def _batch(self, items: list[Request | Invalid]) -> None:
        body, _, _, _ = await answer_batch(self.chain, items, self.route, self._who, self, self.fresh, self.owner)
        self._send_opt(body)
        self._release()

    # ------------------------------------------------------------------ the session's own methods

    async def _local(self, request: Request) -> None:
        """A single eth_subscribe: answered once the subscription delivers, then its held events released."""
        self._send_opt(await self.answer_local(request))
        self._release()

    async def answer_local(self, request: Request) -> bytes | None:
        """eth_subscribe / eth_unsubscribe (the batch path: `clients.exchange.Local`). None for a notification.
        A subscription answered here is released (`_release`) once the reply is sent."""
        if request.method == "eth_unsubscribe":
            return self._local_reply(request, self._unsubscribe)
        try:
            reply = await self._subscribe(request)
        except LivechainError as exc:
            reply = error_body(exc, request.reply_id)
        except Exception:
            log.exception("unexpected error in %s", request.method, extra={"chain": self.chain.name})
            reply = error_body(InternalError(), request.reply_id)
        return None if request.notification else reply

    def _local_reply(self, request: Request, answer: Callable[[Request], bytes]) -> bytes | None:
        try:
            reply = answer(request)
        except LivechainError as exc:
            reply = error_body(exc, request.reply_id)
        except Exception:
            log.exception("unexpected error in %s", request.method, extra={"chain": self.chain.name})
            reply = error_body(InternalError(), request.reply_id)
        return None if request.notification else reply

    async def _subscribe(self, request: Request) -> bytes:
        if len(self.subscriptions) + self._subscribing >= self.max_subscriptions:
            raise LimitExceeded(f"at most {self.max_subscriptions} subscriptions per connection")
        sid = ("0x" + secrets.token_hex(16)).encode()
        self._subscribing += 1
        try:
            subscription = await self.chain.subscribe(request.params, self, sid)
        finally:
            self._subscribing -= 1
        if self.closed:
            self.chain.unsubscribe(subscription)
            raise LimitExceeded("the connection closed")
        self.subscriptions[sid] = subscription
        self._unreleased.append(subscription)
        # sent before any notification: attaching and this reply happen in the same step of the loop
        return result_response(request.reply_id, sid.decode())

    def _release(self) -> None:
        """Subscriptions whose reply was sent: a resumed one's missed events go out now."""
        unreleased, self._unreleased = self._unreleased, []
        for subscription in unreleased:
            if not self.closed:
                subscription.release()

    def _unsubscribe(self, request: Request) -> bytes:
        params = request.params
        if not isinstance(params, list) or len(params) != 1 or not isinstance(params[0], str):
            raise InvalidParams("eth_unsubscribe takes one subscription id")
        subscription = self.subscriptions.pop(params[0].encode(), None)
        if subscription is not None:
            self.chain.unsubscribe(subscription)
        return result_response(request.reply_id, subscription is not None)

    # ------------------------------------------------------------------ messages out

    def _send_opt(self, payload: bytes | None) -> None:
        if payload is not None:
            self._send(payload)

    def send_notification(self, sid: bytes, result_json: bytes) -> None:
        """The feeds' `Sink`: one notification, the result already encoded (shared by every client)."""
        if not self.closed:
            self._send(b"".join((_NOTE_HEAD, sid, _NOTE_MID, result_json, _NOTE_TAIL)))

    # ------------------------------------------------------------------ end

    def close(self) -> None:
        """The connection is gone: its subscriptions end, its requests in flight are cancelled (and with them
        their attempts upstream — never counted against a provider)."""
        if self.closed:
            return
        self.closed = True
        for subscription in self.subscriptions.values():
            self.chain.unsubscribe(subscription)
        self.subscriptions.clear()
        for task in list(self._tasks):
            task.cancel()
