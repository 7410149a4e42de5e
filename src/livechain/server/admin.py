"""The admin token: who may change things (`POST /admin/reload`, and the controls plugged into the edge).

`Authorization: Bearer <token>` (or `X-Admin-Token`), compared in constant time. Without a configured token
(`LIVECHAIN_ADMIN_TOKEN` unset) admin endpoints are disabled: 403.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from livechain.errors import Forbidden, LivechainError, Unauthorized
from livechain.server.messages import Request, Response, error_response, json_response


class Admin:
    def __init__(self, token: str | None, reload: Callable[[], dict] | None = None) -> None:
        self.token = token or None
        self._reload = reload

    @property
    def configured(self) -> bool:
        return self.token is not None

    def authorized(self, request: Request) -> bool:
        """Does the request carry the admin token?"""
        if self.token is None:
            return False
        supplied = request.headers.get("x-admin-token") or ""
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            supplied = auth[7:].strip()
        return hmac.compare_digest(supplied.encode(), self.token.encode())

    def check(self, request: Request) -> None:
        """Raise Forbidden (no token configured) or Unauthorized (missing or wrong token)."""
        if self.token is None:
            raise Forbidden("admin endpoints are disabled: set LIVECHAIN_ADMIN_TOKEN")
        if not self.authorized(request):
            raise Unauthorized("admin token required")

    def reload(self, request: Request) -> Response:
        """POST /admin/reload: re-read the config file."""
        try:
            self.check(request)
        except LivechainError as exc:
            return error_response(exc, api=True)
        if self._reload is None:
            return json_response({"ok": False, "error": "reload is not available"}, 503)
        result = self._reload()
        return json_response(result, 200 if result.get("ok") else 400)
