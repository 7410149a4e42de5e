"""The dashboard's files: `GET /dashboard` and `/dashboard/{file}` from `livechain/dashboard/static/` (plain
HTML, CSS and JS modules, uPlot vendored; no build step). Nothing outside that directory is served; the page
gets a Content-Security-Policy. Files are read once and re-read when they change on disk."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from livechain.errors import LivechainError, MethodNotAllowed, NoRoute
from livechain.server.messages import Request, Response, error_response

STATIC_ROOT = Path(__file__).resolve().parent.parent / "dashboard" / "static"
_SECURITY_HEADERS = [
    ("cache-control", "no-cache"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
]
_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "connect-src 'self'; frame-ancestors 'none'")


class StaticFiles:
    def __init__(self, root: Path = STATIC_ROOT) -> None:
        self.root = root
        self._cache: dict[Path, tuple[float, bytes]] = {}

    def handle(self, request: Request) -> Response:
        try:
            return self._file(request)
        except LivechainError as exc:
            return error_response(exc, api=True)

    def _file(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            raise MethodNotAllowed("GET")
        rel = request.path[len("/dashboard"):].strip("/") or "index.html"
        target = (self.root / rel).resolve()
        if not target.is_relative_to(self.root) or not target.is_file():
            raise NoRoute(f"no dashboard file {rel[:80]}")
        mtime = target.stat().st_mtime
        cached = self._cache.get(target)
        if cached is None or cached[0] != mtime:
            cached = self._cache[target] = (mtime, target.read_bytes())
        ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype in ("application/javascript", "text/javascript"):
            ctype += "; charset=utf-8"
        headers = list(_SECURITY_HEADERS)
        if target.name == "index.html":
            headers.append(("content-security-policy", _CSP))
        return Response(200, cached[1], ctype, headers)
