"""`RpcProxy`: a JSON-RPC-aware HTTP + WebSocket proxy in front of one node, for tests.

Unlike the byte-level `FaultProxy`, it reads the JSON-RPC requests that pass through it, so a test can
ask what a provider received (`counts`, `total`, `seen`) and make the provider refuse eth_getLogs spans
wider than a limit, with the error shapes of real providers (`LIMIT_STYLES`).

    async with RpcProxy(anvil, logs_range_limit=1000, limit_style="alchemy") as proxy:
        ...  # proxy.url / proxy.ws_url as a provider's URLs
        assert proxy.counts["eth_getLogs"] == 2 and proxy.refused["eth_getLogs"] == 1

Forwarding: an HTTP POST body goes to the node unchanged and the node's reply comes back unchanged
(status, content-type and body bytes). A batch with refused items is the one exception: its other
items go to the node as a batch and the refusals are spliced into that reply (re-serialized, in request
order where ids allow). WebSocket frames are piped both ways, text as text and binary as binary; a
refused request on a WebSocket is answered on it by the proxy (a batch with refused items is completed
over HTTP, so a subscription inside such a batch would not work).

Counting: every request object received (a batch item counts one), HTTP and WebSocket alike, refused
ones included; `refused` counts the refused ones again on their own. Bodies that are not JSON are
forwarded without being counted. Requests the proxy itself makes (the head lookup that resolves block
tags) are not counted.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import orjson
from aiohttp import web

__all__ = ["LIMIT_STYLES", "RpcProxy"]


def _alchemy(limit: int, first: int, _last: int) -> tuple[int, str]:
    return -32602, (
        f"Log response size exceeded. You can make eth_getLogs requests with up to a {limit} block range. "
        f"Based on your parameters, this block range should work: [{hex(first)}, {hex(first + limit - 1)}]"
    )


#: refusal shapes of real providers: style → (limit, fromBlock, toBlock) → (code, message)
LIMIT_STYLES = {
    "alchemy": _alchemy,
    # a result-count refusal; the proxy triggers it with the span limit all the same
    "infura": lambda limit, first, last: (-32005, "query returned more than 10000 results"),
    "geth": lambda limit, first, last: (-32000, f"block range too large: max {limit}"),
    "quicknode": lambda limit, first, last: (-32602, f"eth_getLogs is limited to a {limit} range"),
}
LIMIT_STYLES["generic"] = LIMIT_STYLES["geth"]

_HEAD_TAGS = {"latest", "pending", "safe", "finalized"}


@dataclass
class Screened:
    """One body's request objects (a lone request is a list of one), and the proxy's refusals by index."""

    items: list[Any]
    batch: bool
    refusals: dict[int, dict]


class Node(Protocol):
    url: str
    ws_url: str


class RpcProxy:
    """A counting, range-limiting JSON-RPC proxy on 127.0.0.1, an ephemeral port.

    `node`: anything with `url` and `ws_url` (an `Anvil`). `logs_range_limit`: the widest eth_getLogs span
    forwarded (None: no limit). `limit_style`: a key of `LIMIT_STYLES`; `limit_message` / `limit_code`
    replace the style's message / code. `delay_ms`: added before every HTTP reply (settable at run
    time). `seen_size`: how many received request objects `seen` keeps.
    """

    def __init__(
        self,
        node: Node,
        *,
        logs_range_limit: int | None = None,
        limit_style: str = "geth",
        limit_message: str | None = None,
        limit_code: int | None = None,
        delay_ms: float = 0,
        seen_size: int = 1000,
    ) -> None:
        self.node = node
        self.delay_ms = delay_ms
        self.counts: Counter[str] = Counter()
        #: HTTP requests received (a batch is one), for "how many upstream requests" counts
        self.http_requests = 0
        #: methods answered with geth's "method does not exist" (-32601), as a provider without them does
        self.unsupported: set[str] = set()
        self.refused: Counter[str] = Counter()
        #: the last `seen_size` request objects received, oldest first, as parsed
        self.seen: deque[dict] = deque(maxlen=seen_size)
        self.logs_range_limit: int | None = None
        self.limit_style = "geth"
        self.limit_message = limit_message
        self.limit_code = limit_code
        self.set_limit(logs_range_limit, limit_style)
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._sockets: set[web.WebSocketResponse] = set()

    # ---- public API -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    @property
    def total(self) -> int:
        """How many request objects were received (refused ones included) since the last reset."""
        return sum(self.counts.values())

    def reset_counts(self) -> None:
        """Forget `counts`, `refused` and `seen`."""
        self.counts.clear()
        self.http_requests = 0
        self.refused.clear()
        self.seen.clear()

    def set_limit(self, limit: int | None, style: str | None = None) -> None:
        """Refuse eth_getLogs spans wider than `limit` blocks from now on (None: forward every span)."""
        if style is not None:
            if style not in LIMIT_STYLES:
                raise ValueError(f"unknown limit style {style!r}; known: {sorted(LIMIT_STYLES)}")
            self.limit_style = style
        if limit is not None and limit < 1:
            raise ValueError("the limit is at least one block")
        self.logs_range_limit = limit

    def calls(self, method: str) -> list[Any]:
        """The params of the received `method` requests still in `seen`, oldest first."""
        return [req.get("params") for req in self.seen if req.get("method") == method]

    async def start(self) -> RpcProxy:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> RpcProxy:
        try:
            return await self.start()
        except BaseException:
            await self.stop()
            raise

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- HTTP -------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request)
        if request.method != "POST":
            raise web.HTTPMethodNotAllowed(request.method, ["POST"])
        self.http_requests += 1
        try:
            status, content_type, reply = await self._answer(await request.read(), request.path_qs)
        except aiohttp.ClientError as exc:
            raise web.HTTPBadGateway(text=f"upstream: {exc}") from exc
        if self.delay_ms:
            await asyncio.sleep(self.delay_ms / 1000)
        return web.Response(body=reply, status=status, headers={"Content-Type": content_type})

    async def _answer(self, body: bytes, path: str) -> tuple[int, str, bytes]:
        """(status, content-type, body) for one HTTP body: the node's reply, or the proxy's refusals."""
        screened = await self._screen(body)
        if not screened.refusals:
            return await self._post(body, path)
        return 200, "application/json", await self._complete(screened, path)

    async def _complete(self, screened: Screened, path: str = "/") -> bytes:
        """The reply to a body with refusals: a lone refusal, or a batch completed by the node over HTTP."""
        if not screened.batch:
            return orjson.dumps(screened.refusals[0])
        rest = [item for index, item in enumerate(screened.items) if index not in screened.refusals]
        replies: list[Any] = []
        if rest:
            replies = _as_list(orjson.loads((await self._post(orjson.dumps(rest), path))[2]))
        return orjson.dumps(_splice(screened, replies))

    async def _post(self, body: bytes, path: str = "/") -> tuple[int, str, bytes]:
        assert self._session is not None
        headers = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
        async with self._session.post(self.node.url.rstrip("/") + path, data=body, headers=headers) as resp:
            return resp.status, resp.headers.get("Content-Type", "application/json"), await resp.read()

    # ---- screening: count, record, refuse ----------------------------------------------------------

    async def _screen(self, body: bytes) -> Screened:
        """Count and record the requests in `body`; decide which ones the proxy refuses."""
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return Screened([], False, {})
        batch = isinstance(parsed, list)
        screened = Screened(parsed if batch else [parsed], batch, {})
        for index, item in enumerate(screened.items):
            if not isinstance(item, dict) or not isinstance(item.get("method"), str):
                continue
            self.counts[item["method"]] += 1
            self.seen.append(item)
            error = await self._refusal(item)
            if error is not None:
                self.refused[item["method"]] += 1
                screened.refusals[index] = {"jsonrpc": "2.0", "id": item.get("id"), "error": error}
        return screened

    async def _refusal(self, request: dict) -> dict | None:
        """The error object for a method it does not serve, or an eth_getLogs wider than the limit; None to
        forward `request`."""
        if request["method"] in self.unsupported:
            return {"code": -32601, "message": f"the method {request['method']} does not exist/is not available"}
        limit = self.logs_range_limit
        if limit is None or request["method"] != "eth_getLogs":
            return None
        params = request.get("params")
        flt = params[0] if isinstance(params, list) and params and isinstance(params[0], dict) else {}
        if flt.get("blockHash") is not None:
            return None  # one block
        bounds = [flt.get("fromBlock"), flt.get("toBlock")]
        head = None
        if any(b is None or (isinstance(b, str) and b in _HEAD_TAGS) for b in bounds):
            head = int(orjson.loads((await self._post(_HEAD_QUERY))[2])["result"], 16)
        first, last = (_block(b, head) for b in bounds)
        if first is None or last is None or last - first + 1 <= limit:
            return None  # malformed filters are the node's business
        code, message = LIMIT_STYLES[self.limit_style](limit, first, last)
        if self.limit_code is not None:
            code = self.limit_code
        return {"code": code, "message": self.limit_message or message}

    # ---- WebSocket --------------------------------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        upstream_url = self.node.ws_url.rstrip("/") + request.path_qs
        try:
            upstream = await self._session.ws_connect(upstream_url, max_msg_size=0)
        except aiohttp.ClientError as exc:
            raise web.HTTPBadGateway(text=f"upstream WebSocket: {exc}") from exc
        client = web.WebSocketResponse(max_msg_size=0)
        self._sockets.add(client)
        try:
            await client.prepare(request)
            down = asyncio.get_running_loop().create_task(_pipe(upstream, client))
            try:
                async for msg in client:
                    if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                        continue
                    text = msg.type is aiohttp.WSMsgType.TEXT
                    answer = await self._screen_ws(msg.data.encode() if text else msg.data)
                    if answer is None:
                        await (upstream.send_str(msg.data) if text else upstream.send_bytes(msg.data))
                    else:
                        await (client.send_str(answer.decode()) if text else client.send_bytes(answer))
            finally:
                down.cancel()
                await asyncio.gather(down, return_exceptions=True)
        finally:
            self._sockets.discard(client)
            await upstream.close()
            await client.close()
        return client

    async def _screen_ws(self, data: bytes) -> bytes | None:
        """None to forward `data` to the node; else the proxy's own reply to the client."""
        screened = await self._screen(data)
        return await self._complete(screened) if screened.refusals else None


_HEAD_QUERY = b'{"jsonrpc":"2.0","id":0,"method":"eth_blockNumber","params":[]}'


def _block(value: Any, head: int | None = None) -> int | None:
    """A fromBlock/toBlock as a number; tags (and absence: "latest") resolve against `head`."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if value is None:
        value = "latest"
    if not isinstance(value, str):
        return None
    if value == "earliest":
        return 0
    if value in _HEAD_TAGS:
        return head
    try:
        return int(value, 16) if value.startswith("0x") else None
    except ValueError:
        return None


def _as_list(reply: Any) -> list[Any]:
    return reply if isinstance(reply, list) else [reply]


def _splice(screened: Screened, replies: list[Any]) -> list[Any]:
    """The batch reply in request order: refusals at their positions, the node's replies matched back to
    their requests by id (replies that match no request, e.g. for invalid items, go last)."""
    left = list(replies)
    out: list[Any] = []
    for index, item in enumerate(screened.items):
        if index in screened.refusals:
            out.append(screened.refusals[index])
            continue
        if not isinstance(item, dict) or "id" not in item:
            continue  # notifications get no reply
        match = next((r for r in left if isinstance(r, dict) and r.get("id") == item["id"]), None)
        if match is not None:
            left.remove(match)
            out.append(match)
    return out + left


async def _pipe(source: aiohttp.ClientWebSocketResponse, sink: web.WebSocketResponse) -> None:
    """Node → client frames, as they come; closes the client when the node closes."""
    async for msg in source:
        if msg.type is aiohttp.WSMsgType.TEXT:
            await sink.send_str(msg.data)
        elif msg.type is aiohttp.WSMsgType.BINARY:
            await sink.send_bytes(msg.data)
    await sink.close()
