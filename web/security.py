"""Security headers for every HTTP response: a strict CSP on the UI, an inert sandbox on API data.

Install last in `create_app` so it wraps everything:
    Starlette(routes=..., middleware=[Middleware(SecurityHeaders)])
A response that already carries a Content-Security-Policy (the /view/ preview sets its own) keeps it.
"""

from __future__ import annotations

import re

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_HOST = re.compile(r"[A-Za-z0-9.:\[\]-]+")

# Anything under /api/ is data (JSON, raw .eml, attachments): if a browser ever renders one as a
# page (an HTML attachment opened in a tab) it runs in a sandbox with no scripts and no origin.
API_CSP = "sandbox; default-src 'none'; frame-ancestors 'none'"


def ui_csp(host: str | None) -> str:
    """The UI's policy: only our own scripts and styles; frames only from our /view/ pages."""
    # 'self' covers ws: to the same host in CSP3, but older engines need the WebSocket origin spelled out.
    sockets = f" ws://{host} wss://{host}" if host and _HOST.fullmatch(host) else ""
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data: blob:",
            f"connect-src 'self'{sockets}",
            "frame-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


class SecurityHeaders:
    """Pure ASGI middleware (streaming responses pass through untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        host = Headers(scope=scope).get("host")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "same-origin")
                if "content-security-policy" not in headers:
                    if path.startswith("/api/"):
                        headers["Content-Security-Policy"] = API_CSP
                    else:
                        headers["Content-Security-Policy"] = ui_csp(host)
                        headers.setdefault("X-Frame-Options", "DENY")
                        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
            await send(message)

        await self.app(scope, receive, send_with_headers)
