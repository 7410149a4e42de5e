"""What every entry point shares about its clients: who they are and what they may do (`access`), how one
JSON-RPC message of theirs is answered through a chain (`exchange`), and their sessions on persistent
connections, with subscriptions (`session`).

The HTTP edge, the WebSocket edge and the in-process library differ only in framing; each of them calls
these, then `Chain.call` / `Chain.subscribe`.
"""
