"""Fault injection: a small TCP proxy that makes a provider slow, flaky or dead at run time.

A provider in a test or in `livechain demo` is "anvil behind a `FaultProxy`". The proxy forwards bytes
(HTTP keep-alive and WebSocket alike); only the HTTP modes and `lie` parse HTTP. `FaultControlServer` exposes the
switch over HTTP. This package imports nothing else from livechain.

Modes (`Fault.mode`); "live connections" are those open when `FaultProxy.set()` is called:
  none                transparent (latency/jitter still apply).
  refuse              the listening socket is closed: connect() gets ECONNREFUSED; live connections are
                      reset. Leaving `refuse` re-binds the same port (SO_REUSEADDR) before set() returns.
                      With probability < 1 the listener stays open and that fraction of new
                      connections is reset right after accept instead.
  reset               new connections are reset (RST) at the client's first byte; live ones at once.
  reset_mid_response  requests go upstream; the first provider chunk is cut to half (at least one
                      byte), delivered, then the client gets an RST. Live connections: their next
                      provider chunk is cut the same way.
  blackhole           accept and read everything, never answer, never close. Live connections freeze in
                      both directions (bytes read and dropped, sockets kept open): a WebSocket client
                      sees neither frames nor pongs.
  silent              the same as blackhole (an alias kept for readability of "WS silent" tests).
  stall               client bytes still go upstream (the provider sees the request); nothing the
                      provider sends comes back; sockets stay open. Live connections stall too.
  http_status         every HTTP request (keep-alive, pipelined, chunked, WebSocket upgrades too) is
                      answered with `status`, body {"error":"injected 502"}, Retry-After when
                      `retry_after` is set; nothing reaches the provider. Live plain-HTTP connections
                      switch at their next request; live WebSocket connections are left alone (use
                      `drop_connections()` to force clients through the fault). A connection that
                      went HTTP-aware stays so after the fault is cleared: it then forwards each
                      request (re-serialized with a Content-Length) and relays each response.
  garbage             like http_status, but 200 with a text/html body that is not JSON.
  lie                 every HTTP request is forwarded (as the HTTP modes forward) and the provider's
                      JSON-RPC answer is rewritten before it is relayed — a provider that lies. `lie`
                      says how (lies.py has the details):
                        block_hash    blocks get another `hash`; logs, receipts (and their logs) and
                                      eth_getTransactionByHash get another `blockHash` (a valid hash:
                                      the lowest bit of the last byte flipped)
                        null_receipt  eth_getTransactionReceipt answers null
                        empty_logs    eth_getLogs answers []
                        stale_head    eth_blockNumber answers max(0, n − lie_blocks)
                        future_head   eth_blockNumber answers n + lie_blocks
                      Batches are rewritten per item; error replies and replies of other methods pass
                      byte for byte. A rewritten reply keeps its id and jsonrpc, is re-serialized
                      compactly and re-framed with a correct Content-Length. Lies are HTTP-only: a
                      WebSocket upgrade is forwarded and piped untouched. Live plain-HTTP connections
                      switch at their next request, as with http_status. `FaultProxy.lies` (a Counter
                      per lie kind) counts the replies actually changed.

`probability` is drawn per new connection (and per live connection at a mode change); the HTTP modes
and `lie` draw per request (a batch is one request) and forward the requests that escape the fault
untouched. Latency (± jitter) delays each chunk
provider→client independently and in order; client→provider is never delayed.

Leaving blackhole/silent/stall aborts (RST) the frozen connections: they are lost and clients reconnect.
A provider that resets a piped connection resets the client; a clean close is passed on after the
delayed bytes.
"""

from livechain.faults.control import FaultControlServer
from livechain.faults.faults import LIES, MODES, Fault, FaultError
from livechain.faults.proxy import FaultProxy

__all__ = ["LIES", "MODES", "Fault", "FaultControlServer", "FaultError", "FaultProxy"]
