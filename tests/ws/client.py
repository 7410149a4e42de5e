"""A small JSON-RPC WebSocket client for tests (aiohttp), keeping notifications per subscription."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import aiohttp
import orjson


class WsClient:
    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._pending: dict[Any, asyncio.Future] = {}
        self.notifications: dict[str, asyncio.Queue] = {}
        self.other: list[Any] = []
        self._reader: asyncio.Task | None = None
        self.close_code: int | None = None
        self.close_reason: str = ""

    async def connect(self, url: str) -> WsClient:
        self.session = aiohttp.ClientSession()
        self.ws = await self.session.ws_connect(url, autoping=True, max_msg_size=0)
        self._reader = asyncio.get_running_loop().create_task(self._read(), name="test/ws-client")
        return self

    async def _read(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = orjson.loads(msg.data)
            if isinstance(data, list):  # a batch reply: kept whole
                self.other.append(data)
                continue
            for item in [data]:
                if item.get("method") == "eth_subscription":
                    sid = item["params"]["subscription"]
                    self.notifications.setdefault(sid, asyncio.Queue()).put_nowait(item["params"]["result"])
                elif item.get("id") in self._pending:
                    fut = self._pending.pop(item["id"])
                    if not fut.done():
                        fut.set_result(item)
                else:
                    self.other.append(item)
        self.close_code = self.ws.close_code
        self.close_reason = str(self.ws.extra) if hasattr(self.ws, "extra") else ""
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError(f"closed {self.close_code}"))

    async def call(self, method: str, params: Any = None, timeout: float = 10) -> dict:
        rid = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        await self.ws.send_str(orjson.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params or []}).decode())
        return await asyncio.wait_for(fut, timeout)

    async def send_raw(self, data: str | bytes) -> None:
        if isinstance(data, bytes):
            await self.ws.send_bytes(data)
        else:
            await self.ws.send_str(data)

    async def subscribe(self, *params: Any) -> str:
        reply = await self.call("eth_subscribe", list(params))
        assert "result" in reply, reply
        self.notifications.setdefault(reply["result"], asyncio.Queue())
        return reply["result"]

    async def next(self, sid: str, timeout: float = 10) -> Any:
        return await asyncio.wait_for(self.notifications[sid].get(), timeout)

    def drain(self, sid: str) -> list[Any]:
        queue = self.notifications.get(sid)
        out = []
        while queue is not None and not queue.empty():
            out.append(queue.get_nowait())
        return out

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.wait([self._reader], timeout=5)
        if self.session is not None:
            await self.session.close()
