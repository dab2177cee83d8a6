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


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _cross_site(headers: Headers, host: str | None) -> bool:
    """A browser request sent from another site's page (CSRF): a form or a no-preflight fetch that
    could delete mail, reset the sandbox or release a message. Non-browser clients send neither header."""
    if headers.get("sec-fetch-site") == "cross-site":
        return True
    origin = headers.get("origin")
    if origin is None:
        return False
    return origin == "null" or origin.split("://", 1)[-1] != host


async def _forbid(send: Send) -> None:
    body = b'{"Error":"cross-site request refused"}'
    await send({
        "type": "http.response.start",
        "status": 403,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    """Pure ASGI middleware (streaming responses pass through untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        request_headers = Headers(scope=scope)
        host = request_headers.get("host")
        if scope.get("method", "GET") not in SAFE_METHODS and _cross_site(request_headers, host):
            await _forbid(send)
            return

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
