"""The web edge: HTTP and WebSocket JSON-RPC, the JSON API, admin, metrics and the dashboard.
The only place where errors become JSON-RPC error objects or HTTP statuses."""
