"""HttpPool against a real, scriptable HTTP/1.1 server on an ephemeral port — no mocks.

Each test runs on the stdlib asyncio loop and on uvloop (production runs uvloop): `on_both_loops` turns
an async scenario into a sync test parametrized by loop, run in its own `asyncio.Runner`.

The server picks its behaviour per request from the `x-do` request header (default: echo the body).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Callable

import pytest
import trustme

from livechain.errors import (
    AttemptTimeout,
    BadResponse,
    ConnectFailed,
    PoolSaturated,
    ProviderError,
    TransportError,
)
from livechain.outcomes import Verdict
from livechain.transport import HttpPool, HttpResponse
from tests.conftest import LOOPS, on_both_loops

# ---------------------------------------------------------------------------------------------- server


class Request:
    def __init__(self, target: str, headers: dict[str, str], body: bytes) -> None:
        self.target = target
        self.headers = headers
        self.body = body


class Server:
    """A small asyncio HTTP/1.1 server whose reply to each request is chosen by its `x-do` header."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.ssl_context = ssl_context
        self.requests: list[Request] = []
        self.accepted = 0
        self.open = 0
        self.max_open = 0
        self._tasks: set[asyncio.Task] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        if self._tasks:  # handlers end on their own once their socket is gone (sleeps are short)
            await asyncio.wait(list(self._tasks), timeout=1)
        for task in list(self._tasks):
            task.cancel()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)  # type: ignore[arg-type]
        self._writers.add(writer)
        self.accepted += 1
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        try:
            await self._serve(reader, writer)
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            self.open -= 1
            self._writers.discard(writer)
            writer.transport.abort()
            self._tasks.discard(task)  # type: ignore[arg-type]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        drop_next = ""
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return
            lines = head.decode("latin-1").split("\r\n")
            target = lines[0].split(" ")[1]
            headers = {}
            for line in lines[1:]:
                if line:
                    key, _, value = line.partition(":")
                    headers[key.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(Request(target, headers, body))
            if drop_next:  # the provider closes a kept-alive connection: no byte of any reply
                if drop_next == "reset":
                    _reset(writer)
                return
            do, _, arg = headers.get("x-do", "echo").partition(":")
            if do == "echo":
                writer.write(_reply(200, body))
            elif do == "slow":
                await asyncio.sleep(float(arg))
                writer.write(_reply(200, body))
            elif do == "chunked":
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                for i in range(0, len(body), 7):
                    piece = body[i : i + 7]
                    writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    await writer.drain()
                    await asyncio.sleep(0.001)
                writer.write(b"0\r\n\r\n")
            elif do == "eof-body":
                writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body[:5])
                await writer.drain()
                await asyncio.sleep(0.01)
                writer.write(body[5:])
                await writer.drain()
                return
            elif do == "http10":  # HTTP/1.0 reply; the server keeps the socket open anyway
                writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            elif do == "http10-keep-alive":
                writer.write(
                    b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(body), body)
                )
            elif do == "conn-close":  # says Connection: close; the server keeps the socket open anyway
                writer.write(_reply(200, body, b"Connection: close\r\n"))
            elif do == "close-after":  # a keep-alive reply, then the provider closes the idle socket
                writer.write(_reply(200, body))
                await writer.drain()
                return
            elif do == "drop-next":  # a keep-alive reply; the next request on this connection is dropped
                writer.write(_reply(200, body))
                drop_next = arg
            elif do == "reset":
                _reset(writer)
                return
            elif do == "reset-mid-body":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100)
                await writer.drain()
                await asyncio.sleep(0.02)
                _reset(writer)
                return
            elif do == "chunked-cut":  # a chunked body cut short by EOF
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
                await writer.drain()
                return
            elif do == "double":  # the reply and an unsolicited second one, in one write
                writer.write(_reply(200, body) + _reply(200, b"xyz", b"X-Extra: 1\r\n"))
            elif do == "stray":  # the reply, then an unsolicited 408 on the idle connection, kept open
                writer.write(_reply(200, body))
                await writer.drain()
                await asyncio.sleep(0.02)
                writer.write(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
            elif do == "silent":  # no reply to this request; the connection stays open for the next
                pass
            elif do == "never":
                await reader.read()  # until the client goes away
                return
            elif do == "big-declared":  # announces a huge body, then sends nothing
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % int(arg))
                await writer.drain()
                await reader.read()
                return
            elif do == "big":
                writer.write(_reply(200, b"x" * int(arg)))
            elif do == "big-chunked":
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                piece = b"y" * 65536
                for _ in range(int(arg) // len(piece) + 1):
                    writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    await writer.drain()
                writer.write(b"0\r\n\r\n")
            elif do == "status":
                extra = b"Retry-After: 7\r\n" if arg == "429" else b""
                writer.write(_reply(int(arg), b'{"error":"nope"}', extra))
            elif do == "garbage":
                writer.write(b"THIS IS NOT HTTP\r\n\r\n")
            elif do == "interim":
                writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n")
                await writer.drain()
                await asyncio.sleep(0.01)
                writer.write(_reply(200, body))
            await writer.drain()


def _reply(status: int, body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nX-Server: Test\r\n%sContent-Length: %d\r\n\r\n%s"
        % (status, extra, len(body), body)
    )


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST instead of FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@contextlib.asynccontextmanager
async def pool_for(url: str, **kwargs: object) -> AsyncIterator[HttpPool]:
    kwargs.setdefault("name", "prov")
    pool = HttpPool(url, **kwargs)  # type: ignore[arg-type]
    try:
        yield pool
    finally:
        await pool.close()


async def eventually(predicate: Callable[[], bool], within: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


def do(behaviour: str) -> dict[str, str]:
    return {"x-do": behaviour}


def refused_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


# ---------------------------------------------------------------------------------------------- basics


@on_both_loops
async def test_a_post_sends_a_json_post_and_returns_status_body_and_lower_cased_headers() -> None:
    """The request is `POST <path?query>` with Host, JSON content type, Content-Length and identity
    encoding; the reply comes back whole, header names lower-cased."""
    async with Server() as server, pool_for(server.url + "/v2/key?x=1", headers={"X-Extra": "1"}) as pool:
        response = await pool.post(b'{"id":1}', timeout=2)
        assert isinstance(response, HttpResponse)
        assert (response.status, response.body) == (200, b'{"id":1}')
        assert response.headers["x-server"] == "Test"
        assert response.headers["content-type"] == "application/json"
        (request,) = server.requests
        assert request.target == "/v2/key?x=1"
        assert request.headers["host"] == f"127.0.0.1:{server.port}"
        assert request.headers["content-type"] == "application/json"
        assert request.headers["content-length"] == "8"
        assert request.headers["accept-encoding"] == "identity"
        assert request.headers["x-extra"] == "1"
        assert request.body == b'{"id":1}'


@on_both_loops
async def test_per_call_headers_are_sent_and_an_empty_path_posts_to_slash() -> None:
    """Headers given to post() reach the provider; a URL without a path posts to `/`."""
    async with Server() as server, pool_for(server.url) as pool:
        await pool.post(b"{}", timeout=2, headers={"X-Trace": "abc"})
        await pool.post(b"{}", timeout=2)
        assert [r.target for r in server.requests] == ["/", "/"]
        assert server.requests[0].headers["x-trace"] == "abc"
        assert "x-trace" not in server.requests[1].headers


@on_both_loops
async def test_fifty_sequential_posts_share_one_keep_alive_connection() -> None:
    """Keep-alive: sequential requests reuse the one pooled connection."""
    async with Server() as server, pool_for(server.url) as pool:
        for i in range(50):
            response = await pool.post(b"%d" % i, timeout=2)
            assert response.body == b"%d" % i
        assert server.accepted == 1
        stats = pool.stats()
        assert (stats["created"], stats["reused"], stats["open"], stats["idle"]) == (1, 49, 1, 1)


@on_both_loops
async def test_concurrent_posts_never_exceed_max_connections_and_extra_callers_wait() -> None:
    """At most max_connections connections exist; callers beyond that wait, then all succeed."""
    async with Server() as server, pool_for(server.url, max_connections=3) as pool:
        tasks = [
            asyncio.ensure_future(pool.post(b"%d" % i, timeout=3, headers=do("slow:0.03"))) for i in range(12)
        ]
        await asyncio.sleep(0.01)
        assert pool.stats()["waiting"] == 9
        assert pool.stats()["busy"] <= 3
        responses = await asyncio.gather(*tasks)
        assert [r.body for r in responses] == [b"%d" % i for i in range(12)]
        assert server.max_open == 3
        assert pool.stats()["created"] == 3
        assert pool.stats()["waiting"] == 0


@on_both_loops
async def test_waiting_callers_are_served_in_fifo_order() -> None:
    """With one connection, callers are served in the order they asked."""
    async with Server() as server, pool_for(server.url, max_connections=1) as pool:
        done: list[int] = []

        async def one(i: int) -> None:
            await pool.post(b"%d" % i, timeout=3, headers=do("slow:0.005"))
            done.append(i)

        await asyncio.gather(*(one(i) for i in range(8)))
        assert done == list(range(8))
        assert [r.body for r in server.requests] == [b"%d" % i for i in range(8)]


@on_both_loops
async def test_a_caller_waiting_for_a_slot_times_out_and_leaves_the_queue() -> None:
    """The timeout covers waiting for a slot: PoolSaturated (our queue, not the provider's timeout: no breaker
    failure), the waiter is gone, the pool still works."""
    async with Server() as server, pool_for(server.url, max_connections=1) as pool:
        holder = asyncio.ensure_future(pool.post(b"a", timeout=3, headers=do("slow:0.2")))
        await asyncio.sleep(0.02)
        with pytest.raises(PoolSaturated) as caught:
            await pool.post(b"b", timeout=0.05)
        assert caught.value.provider == "prov" and "no free connection" in caught.value.message
        assert caught.value.outcome.verdict is not Verdict.FAILURE and caught.value.outcome.fails_over
        assert pool.stats()["waiting"] == 0
        assert (await holder).body == b"a"
        assert (await pool.post(b"c", timeout=2)).body == b"c"
        assert pool.stats()["created"] == 1


@on_both_loops
async def test_a_caller_that_got_its_connection_too_late_to_be_answered_in_time_is_saturated() -> None:
    """Waited for the slot, then the reply did not come within what was left: PoolSaturated. The same slow
    reply to a caller that did not wait is the provider's AttemptTimeout."""
    async with Server() as server, pool_for(server.url, max_connections=1) as pool:
        holder = asyncio.ensure_future(pool.post(b"a", timeout=3, headers=do("slow:0.15")))
        await asyncio.sleep(0.02)
        with pytest.raises(PoolSaturated) as caught:  # waits ~0.13 s, then 0.15 s more would be needed
            await pool.post(b"b", timeout=0.25, headers=do("slow:0.15"))
        assert "after waiting for a free connection" in caught.value.message
        assert (await holder).body == b"a"
        with pytest.raises(AttemptTimeout) as direct:
            await pool.post(b"c", timeout=0.1, headers=do("slow:0.3"))
        assert type(direct.value) is AttemptTimeout and direct.value.outcome.verdict is Verdict.FAILURE
        assert (await pool.post(b"d", timeout=2)).body == b"d"


@on_both_loops
async def test_a_caller_cancelled_while_waiting_for_a_slot_leaves_the_queue() -> None:
    """Cancelling a waiter re-raises CancelledError, and the next waiter still gets the connection."""
    async with Server() as server, pool_for(server.url, max_connections=1) as pool:
        holder = asyncio.ensure_future(pool.post(b"a", timeout=3, headers=do("slow:0.05")))
        await asyncio.sleep(0.01)
        cancelled = asyncio.ensure_future(pool.post(b"b", timeout=3))
        later = asyncio.ensure_future(pool.post(b"c", timeout=3))
        await asyncio.sleep(0.01)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert (await holder).body == b"a"
        assert (await later).body == b"c"
        assert [r.body for r in server.requests] == [b"a", b"c"]
        assert pool.stats()["open"] == 1


# ---------------------------------------------------------------------------------------------- bodies


@on_both_loops
async def test_chunked_bodies_are_reassembled_and_the_connection_is_reused() -> None:
    """A chunked reply arriving in many reads is joined; the connection stays in the pool."""
    body = b'{"jsonrpc":"2.0","id":1,"result":"0x' + b"ab" * 100 + b'"}'
    async with Server() as server, pool_for(server.url) as pool:
        assert (await pool.post(body, timeout=2, headers=do("chunked"))).body == body
        assert (await pool.post(body, timeout=2)).body == body
        assert server.accepted == 1


@on_both_loops
async def test_a_close_delimited_body_ends_at_eof_and_the_connection_is_not_reused() -> None:
    """No Content-Length and no chunking: the body is everything until EOF; the next post reconnects."""
    async with Server() as server, pool_for(server.url) as pool:
        response = await pool.post(b"0123456789", timeout=2, headers=do("eof-body"))
        assert (response.status, response.body) == (200, b"0123456789")
        assert (await pool.post(b"x", timeout=2)).body == b"x"
        assert server.accepted == 2
        assert pool.stats()["resent"] == 0


@on_both_loops
async def test_connection_close_and_http_1_0_replies_are_not_reused() -> None:
    """`Connection: close` or an HTTP/1.0 reply (even one saying keep-alive): the client closes that
    connection itself."""
    async with Server() as server, pool_for(server.url) as pool:
        for behaviour in ("conn-close", "http10", "http10-keep-alive"):
            response = await pool.post(b"abc", timeout=2, headers=do(behaviour))
            assert response.body == b"abc"
            assert pool.stats()["open"] == 0
        await pool.post(b"x", timeout=2)
        assert server.accepted == 4
        await eventually(lambda: server.open == 1)  # the client closed the three it did not keep


@on_both_loops
async def test_bytes_after_a_complete_reply_are_not_mixed_into_it_and_the_connection_is_dropped() -> None:
    """A second, unsolicited message right behind the reply: the reply is returned intact and the
    connection, now out of step, is not reused."""
    async with Server() as server, pool_for(server.url) as pool:
        response = await pool.post(b"mine", timeout=2, headers=do("double"))
        assert response.body == b"mine"
        assert "x-extra" not in response.headers
        assert pool.stats()["open"] == 0
        assert (await pool.post(b"next", timeout=2)).body == b"next"
        assert server.accepted == 2


@on_both_loops
async def test_an_idle_connection_that_speaks_out_of_turn_is_dropped() -> None:
    """Bytes on an idle connection (a provider's 408 before it hangs up) make it unusable: the pool closes
    it rather than letting the next caller read them as its reply."""
    async with Server() as server, pool_for(server.url) as pool:
        assert (await pool.post(b"one", timeout=2, headers=do("stray"))).body == b"one"
        await eventually(lambda: pool.stats()["open"] == 0)
        response = await pool.post(b"two", timeout=2)
        assert (response.status, response.body) == (200, b"two")
        assert server.accepted == 2


@on_both_loops
async def test_an_interim_1xx_response_is_skipped() -> None:
    """A 103 Early Hints before the reply is not mistaken for the reply."""
    async with Server() as server, pool_for(server.url) as pool:
        response = await pool.post(b"final", timeout=2, headers=do("interim"))
        assert (response.status, response.body) == (200, b"final")
        assert "link" not in response.headers
        assert (await pool.post(b"again", timeout=2)).body == b"again"
        assert server.accepted == 1


@on_both_loops
async def test_status_codes_are_returned_not_interpreted() -> None:
    """5xx and 429 are replies for the caller to classify, with their headers (Retry-After)."""
    async with Server() as server, pool_for(server.url) as pool:
        bad = await pool.post(b"{}", timeout=2, headers=do("status:502"))
        assert (bad.status, bad.body) == (502, b'{"error":"nope"}')
        limited = await pool.post(b"{}", timeout=2, headers=do("status:429"))
        assert limited.status == 429
        assert limited.headers["retry-after"] == "7"
        assert server.accepted == 1


# ---------------------------------------------------------------------------------------------- errors


@on_both_loops
async def test_a_refused_port_raises_connect_failed_naming_the_provider() -> None:
    """Nothing listening: ConnectFailed (safe to fail over), provider set, the slot is given back."""
    async with pool_for(f"http://127.0.0.1:{refused_port()}/", name="alchemy", max_connections=1) as pool:
        for _ in range(2):  # a leaked slot would make the second call wait and time out instead
            with pytest.raises(ConnectFailed) as caught:
                await pool.post(b"{}", timeout=2)
            assert caught.value.provider == "alchemy"
            assert str(caught.value) == "alchemy: connection refused"
        assert pool.stats() == {
            "open": 0, "idle": 0, "busy": 0, "waiting": 0, "created": 0, "reused": 0, "resent": 0
        }  # fmt: skip


@on_both_loops
async def test_a_stalled_connect_is_connect_failed_after_connect_timeout_or_attempt_timeout_first() -> None:
    """The TLS handshake never completes (the peer accepts TCP, never answers): after connect_timeout
    it is ConnectFailed (nothing was sent); when the post's own timeout is shorter, AttemptTimeout."""
    async with Server() as server:
        url = f"https://127.0.0.1:{server.port}/"
        async with pool_for(url, connect_timeout=0.1, max_connections=1) as pool:
            with pytest.raises(ConnectFailed) as caught:
                await pool.post(b"{}", timeout=2)
            assert str(caught.value) == "prov: connect timed out after 0.1s"
        async with pool_for(url, connect_timeout=3, max_connections=1) as pool:
            started = asyncio.get_running_loop().time()
            for _ in range(2):  # the second one connects too: the first gave its slot back
                with pytest.raises(AttemptTimeout, match="timed out connecting"):
                    await pool.post(b"{}", timeout=0.1)
            assert asyncio.get_running_loop().time() - started < 1
            assert pool.stats()["open"] == 0
        assert server.requests == []


@on_both_loops
async def test_a_kept_alive_connection_dropped_before_any_reply_byte_is_resent_once() -> None:
    """The provider closes (FIN or RST) a pooled connection; the request went out but no reply byte came
    back: it is re-sent once on a fresh connection and succeeds. (The server drops the connection on
    the next request rather than right after the reply, so the client cannot have noticed it earlier.)"""
    for how in ("close", "reset"):
        async with Server() as server, pool_for(server.url) as pool:
            await pool.post(b"first", timeout=2, headers=do(f"drop-next:{how}"))
            response = await pool.post(b"second", timeout=2)
            assert response.body == b"second"
            assert [r.body for r in server.requests] == [b"first", b"second", b"second"]
            assert server.accepted == 2
            stats = pool.stats()
            assert (stats["resent"], stats["created"], stats["open"]) == (1, 2, 1)


@on_both_loops
async def test_an_idle_connection_closed_by_the_provider_is_dropped_from_the_pool() -> None:
    """The provider closes an idle kept-alive socket after its reply: the pool notices (connection_lost)
    and the next post connects afresh, or — if it raced the close — is re-sent once. Either way it
    succeeds and the provider's application sees the request exactly once."""
    async with Server() as server, pool_for(server.url) as pool:
        await pool.post(b"first", timeout=2, headers=do("close-after"))
        await eventually(lambda: pool.stats()["open"] == 0)
        assert (await pool.post(b"second", timeout=2)).body == b"second"
        assert pool.stats()["resent"] == 0
        assert server.accepted == 2
        # and without waiting: whichever way the race goes, the caller sees success
        await pool.post(b"third", timeout=2, headers=do("close-after"))
        assert (await pool.post(b"fourth", timeout=2)).body == b"fourth"
        assert [r.body for r in server.requests] == [b"first", b"second", b"third", b"fourth"]
        assert pool.stats()["resent"] in (0, 1)
        assert server.accepted == 3  # "third" reused the connection of "second"


@on_both_loops
async def test_a_reset_in_the_middle_of_the_body_raises_transport_error_and_is_not_resent() -> None:
    """Once any reply byte arrived, a reset is a TransportError — even on a reused connection."""
    async with Server() as server, pool_for(server.url) as pool:
        await pool.post(b"warm", timeout=2)
        with pytest.raises(TransportError) as caught:
            await pool.post(b"{}", timeout=2, headers=do("reset-mid-body"))
        assert type(caught.value) is TransportError
        assert caught.value.provider == "prov"
        assert pool.stats()["resent"] == 0
        assert len(server.requests) == 2
        assert (await pool.post(b"after", timeout=2)).body == b"after"


@on_both_loops
async def test_a_chunked_body_cut_short_by_eof_is_a_transport_error_not_a_reply() -> None:
    """Only a body without Content-Length or chunking ends at EOF; a truncated chunked body is an error."""
    async with Server() as server, pool_for(server.url) as pool:
        with pytest.raises(TransportError) as caught:
            await pool.post(b"{}", timeout=2, headers=do("chunked-cut"))
        assert "in the middle of the reply" in str(caught.value)
        assert len(server.requests) == 1


@on_both_loops
async def test_a_reset_before_the_reply_on_a_fresh_connection_is_not_resent() -> None:
    """The re-send is only for reused connections: a fresh one failing is a TransportError."""
    async with Server() as server, pool_for(server.url) as pool:
        with pytest.raises(TransportError) as caught:
            await pool.post(b"{}", timeout=2, headers=do("reset"))
        assert type(caught.value) is TransportError
        assert len(server.requests) == 1
        assert pool.stats()["resent"] == 0
        assert pool.stats()["open"] == 0


@on_both_loops
async def test_a_provider_that_never_replies_raises_attempt_timeout_and_the_connection_is_closed() -> None:
    """The timeout bounds the whole post(); the timed-out connection is discarded, never reused."""
    async with Server() as server, pool_for(server.url) as pool:
        started = asyncio.get_running_loop().time()
        with pytest.raises(AttemptTimeout) as caught:
            await pool.post(b"{}", timeout=0.1, headers=do("never"))
        assert 0.09 <= asyncio.get_running_loop().time() - started < 1.0
        assert caught.value.provider == "prov"
        assert pool.stats()["open"] == 0
        await eventually(lambda: server.open == 0)
        assert (await pool.post(b"ok", timeout=2)).body == b"ok"
        assert server.accepted == 2


@on_both_loops
async def test_each_caller_times_out_at_its_own_deadline_whatever_the_order() -> None:
    """Deadlines are kept by one pool timer: a shorter timeout issued after a longer one still fires on
    time, and the longer one still fires after it."""
    async with Server() as server, pool_for(server.url) as pool:
        loop = asyncio.get_running_loop()
        started = loop.time()
        ended: dict[str, float] = {}

        async def one(label: str, timeout: float) -> None:
            with pytest.raises(AttemptTimeout):
                await pool.post(b"{}", timeout=timeout, headers=do("never"))
            ended[label] = loop.time() - started

        await asyncio.gather(one("long", 0.4), one("short", 0.1))
        assert 0.09 <= ended["short"] < 0.3
        assert 0.39 <= ended["long"] < 0.7
        assert (await pool.post(b"ok", timeout=2)).body == b"ok"
        assert server.accepted == 3


@on_both_loops
async def test_a_body_over_max_response_bytes_raises_bad_response_and_closes_the_connection() -> None:
    """Declared (Content-Length) or streamed (chunked), an oversized body is refused and the
    connection dropped; a body exactly at the limit is fine."""
    async with Server() as server, pool_for(server.url, max_response_bytes=100_000) as pool:
        assert len((await pool.post(b"{}", timeout=2, headers=do("big:100000"))).body) == 100_000
        for behaviour in ("big:100001", "big-chunked:300000", "big-declared:100001"):
            with pytest.raises(BadResponse) as caught:  # a declared size fails at once, before any body
                await pool.post(b"{}", timeout=2, headers=do(behaviour))
            assert "exceeds 100000 bytes" in str(caught.value)
            assert pool.stats()["open"] == 0
        assert (await pool.post(b"ok", timeout=2)).body == b"ok"
        assert server.accepted == 4


@on_both_loops
async def test_garbage_instead_of_http_raises_bad_response() -> None:
    """Bytes that are not an HTTP response: BadResponse, connection dropped, pool usable."""
    async with Server() as server, pool_for(server.url) as pool:
        with pytest.raises(BadResponse) as caught:
            await pool.post(b"{}", timeout=2, headers=do("garbage"))
        assert str(caught.value) == "prov: malformed HTTP response"
        assert pool.stats()["open"] == 0
        assert (await pool.post(b"ok", timeout=2)).body == b"ok"


@on_both_loops
async def test_cancelling_a_caller_mid_request_closes_its_connection_and_the_pool_stays_usable() -> None:
    """CancelledError propagates; the half-used connection is closed (never pooled); later posts work."""
    async with Server() as server, pool_for(server.url) as pool:
        task = asyncio.ensure_future(pool.post(b"{}", timeout=5, headers=do("never")))
        await eventually(lambda: len(server.requests) == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert pool.stats()["open"] == 0
        await eventually(lambda: server.open == 0)
        assert (await pool.post(b"ok", timeout=2)).body == b"ok"
        assert server.accepted == 2


@on_both_loops
async def test_a_caller_cancelled_just_after_its_reply_completed_leaves_the_connection_to_its_new_owner() -> (
    None
):
    """Race: the reply completes (the connection goes straight to the next waiter), then the first caller is
    cancelled before it resumes. The cancelled caller must not close a connection it no longer owns.
    (The reply is fed to the protocol by hand so the race is deterministic; the socket is real.)"""
    async with Server() as server, pool_for(server.url, max_connections=1) as pool:
        first = asyncio.ensure_future(pool.post(b"a", timeout=3, headers=do("silent")))
        await eventually(lambda: len(server.requests) == 1)
        second = asyncio.ensure_future(pool.post(b"b", timeout=3))
        await eventually(lambda: pool.stats()["waiting"] == 1)
        (conn,) = pool._conns
        conn.data_received(_reply(200, b"a"))  # completes "a" and hands the connection to "b"
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert (await second).body == b"b"
        assert server.accepted == 1
        assert pool.stats()["open"] == 1


@on_both_loops
async def test_a_secret_in_the_url_never_appears_in_errors_or_reprs() -> None:
    """URLs carry API keys: messages and reprs name the provider only — no key, path, query or host."""
    secrets = ("SECRETKEY123", "QUERYSECRET", "127.0.0.1", "/v2/")
    errors: list[BaseException] = []
    async with Server() as server:
        url = f"{server.url}/v2/SECRETKEY123?key=QUERYSECRET"
        async with pool_for(url, name="alchemy", max_response_bytes=10) as pool:
            for behaviour in ("reset", "garbage", "big:11", "never"):
                with pytest.raises(ProviderError) as caught:
                    await pool.post(b"{}", timeout=0.1, headers=do(behaviour))
                errors.append(caught.value)
            things = [repr(pool), str(pool.stats())]
        assert server.requests[0].target == "/v2/SECRETKEY123?key=QUERYSECRET"
    async with pool_for(f"http://127.0.0.1:{refused_port()}/v2/SECRETKEY123", name="alchemy") as pool:
        with pytest.raises(ConnectFailed) as caught:
            await pool.post(b"{}", timeout=1)
        errors.append(caught.value)
    with pytest.raises(ValueError) as bad_url:
        HttpPool("ftp://127.0.0.1/v2/SECRETKEY123", name="alchemy")
    errors.append(bad_url.value)
    assert [type(e).__name__ for e in errors] == [
        "TransportError", "BadResponse", "BadResponse", "AttemptTimeout", "ConnectFailed", "ValueError"
    ]  # fmt: skip
    for error in errors:
        assert str(error).startswith("alchemy: ")
        assert error.__cause__ is None
        things += [str(error), repr(error)]
    for text in things:
        for secret in secrets:
            assert secret not in text, (secret, text)


@on_both_loops
async def test_userinfo_in_the_url_becomes_a_basic_authorization_header() -> None:
    """`user:pass@` (percent-decoded) is sent as Basic auth, never as part of the Host header."""
    async with Server() as server:
        async with pool_for(f"http://alice:s%40cret@127.0.0.1:{server.port}/rpc") as pool:
            await pool.post(b"{}", timeout=2)
            assert "s%40cret" not in repr(pool) and "alice" not in repr(pool)
        (request,) = server.requests
        assert request.headers["authorization"] == "Basic " + base64.b64encode(b"alice:s@cret").decode()
        assert request.headers["host"] == f"127.0.0.1:{server.port}"
        assert request.target == "/rpc"


# ---------------------------------------------------------------------------------------------- lifecycle


@on_both_loops
async def test_idle_connections_are_closed_after_idle_timeout() -> None:
    """A connection idle longer than idle_timeout is closed by the pool itself."""
    async with Server() as server, pool_for(server.url, idle_timeout=0.05) as pool:
        await pool.post(b"{}", timeout=2)
        assert pool.stats()["idle"] == 1
        await eventually(lambda: pool.stats()["open"] == 0)
        await eventually(lambda: server.open == 0)
        await pool.post(b"{}", timeout=2)
        assert server.accepted == 2


@on_both_loops
async def test_closing_the_pool_closes_every_connection_and_later_posts_raise_connect_failed() -> None:
    """close() closes idle and busy connections and fails waiters; afterwards post() is ConnectFailed."""
    async with Server() as server:
        pool = HttpPool(server.url, name="prov", max_connections=1)
        await pool.post(b"{}", timeout=2)
        busy = asyncio.ensure_future(pool.post(b"{}", timeout=5, headers=do("never")))
        waiter = asyncio.ensure_future(pool.post(b"{}", timeout=5))
        await eventually(lambda: len(server.requests) == 2)
        await pool.close()
        for task in (busy, waiter):
            with pytest.raises(TransportError):
                await task
        with pytest.raises(ConnectFailed):
            await pool.post(b"{}", timeout=2)
        assert pool.stats()["open"] == 0
        await eventually(lambda: server.open == 0)


# ---------------------------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting the test CA) for a certificate valid for 127.0.0.1."""
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    return server_ctx, client_ctx


@pytest.mark.parametrize("loop", list(LOOPS))
def test_https_works_with_keep_alive_against_a_trusted_certificate(loop: str, tls) -> None:
    """TLS with certificate and hostname verification; the TLS connection is kept alive."""

    async def scenario() -> None:
        async with Server(tls[0]) as server, pool_for(server.url + "/k", ssl_context=tls[1]) as pool:
            for i in range(5):
                assert (await pool.post(b"%d" % i, timeout=2)).body == b"%d" % i
            assert (await pool.post(b"c", timeout=2, headers=do("chunked"))).body == b"c"
            assert server.accepted == 1

    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        runner.run(asyncio.wait_for(scenario(), 5))


@pytest.mark.parametrize("loop", list(LOOPS))
def test_an_untrusted_certificate_raises_connect_failed(loop: str, tls) -> None:
    """A certificate the client does not trust is a ConnectFailed: nothing was sent."""

    async def scenario() -> None:
        async with Server(tls[0]) as server, pool_for(server.url, name="infura") as pool:
            with pytest.raises(ConnectFailed) as caught:
                await pool.post(b"{}", timeout=2)
            assert str(caught.value) == "infura: TLS certificate verification failed"
            assert server.requests == []

    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        runner.run(asyncio.wait_for(scenario(), 5))


def test_a_url_that_is_not_http_or_has_no_host_is_refused() -> None:
    """Only http:// and https:// URLs with a host are accepted."""
    for url in ("ws://h/x", "http:///x", "localhost:8545"):
        with pytest.raises(ValueError, match=r"^p: "):
            HttpPool(url, name="p")


def test_an_http_response_is_built_like_a_dataclass_and_decodes_raw_headers_on_demand() -> None:
    """`HttpResponse(status, body, headers)` works for hand-built replies; raw headers from the wire are
    decoded on first access: names lower-cased, repeats joined with ", "."""
    built = HttpResponse(429, b"{}", {"retry-after": "7"})
    assert (built.status, built.body, built.headers) == (429, b"{}", {"retry-after": "7"})
    wire = HttpResponse(429, b"{}", raw_headers=[(b"Retry-After", b"7"), (b"Vary", b"a"), (b"VARY", b"b")])
    assert wire.headers == {"retry-after": "7", "vary": "a, b"}
    assert wire.headers is wire.headers
    assert wire != built and HttpResponse(429, b"{}", raw_headers=[(b"Retry-After", b"7")]) == built
    assert "{}" not in repr(built) and "429" in repr(built)
