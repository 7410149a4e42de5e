"""Subscriptions: raced across every provider (aggregator), in order and without gaps (head tracker, feeds),
shared between identical client subscriptions (manager).

A notification's way from a provider's socket to a client, step by step:

  1. `transport.ws.UpstreamWs` — the read loop takes a frame from provider P, stamps it with
     `perf_counter_ns()` before decoding, and calls `on_notification(P's subscription id, result, t_ns)`.
  2. `subscriptions.manager.SubscriptionManager._on_notification` — (P, P's subscription id) → the `Feed` it
     belongs to; a newHeads result also moves P's head in the provider pool (routing sees lag at once).
  3. `subscriptions.feeds.Feed.receive` — the event's identity (`evm.events.event_key`: block hash,
     (blockHash, logIndex, removed), tx hash, or a digest) goes to `RaceAggregator.race`: the first arrival
     is a win (recorded), later ones are losses with their margin (recorded) and stop here.
  4. `Feed.on_winner` — newHeads: `HeadTracker.offer` puts heads in order (gaps backfilled over HTTP, reorgs
     walked back) and calls `on_block` / `on_reorg` on every follower: the `HeadsFeed` delivers each block,
     each `LogsFeed` releases the logs of blocks now canonical and sends removals for orphaned ones; logs:
     held until their block is canonical; any other kind: delivered at once.
  5. `Feed.deliver` — the result is encoded once; every client `Sink` gets the same bytes and adds its own
     subscription id: `clients.session.RpcSession.send_notification` writes to the client's WebSocket
     (`server.wsconn.WsServerConnection.send_text`, bounded queue) or to an in-process queue (the library's
     web3 provider).

Clients subscribe through `Chain.subscribe(params, sink, sid)` → `SubscriptionManager.subscribe`, which
finds or creates the feed and subscribes it on every provider.
"""
