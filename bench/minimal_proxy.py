"""The floor of Livechain's architecture: its HTTP edge + its upstream pool and nothing else.

Every POST body goes to one provider as is, and the reply body comes back as is: no routing, parsing,
breaker, statistics or logging. `http_proxy.py` runs it next to Livechain so the report can split
Livechain's cost into "the Python proxy shape" and "the features on top of it".

    .venv/bin/python bench/minimal_proxy.py http://127.0.0.1:PORT/     # prints "PORT <n>" when listening
"""

from __future__ import annotations

import asyncio
import sys

import uvloop

from livechain.errors import LivechainError
from livechain.server.http import ConnectionTracker, HttpConnection, Limits, Request, Response
from livechain.transport.http import HttpPool


class Forward:
    def __init__(self, pool: HttpPool) -> None:
        self.pool = pool

    async def dispatch(self, request: Request) -> Response:
        try:
            reply = await self.pool.post(request.body, timeout=10.0)
        except LivechainError as exc:
            return Response(502, exc.message.encode(), "text/plain")
        return Response(reply.status, reply.body)

    def upgrade(self, request: Request, transport: asyncio.Transport, rest: bytes) -> asyncio.Protocol | None:
        return None


async def main(url: str) -> None:
    forward = Forward(HttpPool(url, name="upstream", max_connections=64))
    limits, tracker = Limits(), ConnectionTracker()
    server = await asyncio.get_running_loop().create_server(
        lambda: HttpConnection(forward, limits, tracker), "127.0.0.1", 0, backlog=2048
    )
    print("PORT", server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1]))
