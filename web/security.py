"""Security headers for every HTTP response: a strict CSP on the UI, an inert sandbox on API data.

Install first in `create_app` so it wraps everything, the access refusals included:
    Starlette(routes=..., middleware=[Middleware(SecurityHeaders), ...])
A response that already carries a Content-Security-Policy (the /view/ preview sets its own) keeps it.
Message parts can never run in the UI's origin: active types are served as downloads, and a browser
asking for a part as a script, style or worker gets 403.
"""

from __future__ import annotations

import re

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailsandbox.web.access import RefusalLog, client_of, log_refusal

_HOST = re.compile(r"[A-Za-z0-9.:\[\]-]+")
_PART = re.compile(r"/api/v1/message/[^/]+/part/[^/]+")
# Types a browser executes or renders with script, styles or markup: never served as themselves.
_ACTIVE = re.compile(
    r"(text/(html|css|xml|xsl|javascript|ecmascript|jscript|livescript|x-.*script.*|vbscript)"
    r"|application/(.*script.*|xhtml\+xml|xml|xslt\+xml|wasm|x-shockwave-flash)"
    r"|image/svg\+xml|multipart/x-mixed-replace|.*\+xml)"
)
# Sec-Fetch-Dest values (Fetch Metadata) that would load a part as code in our origin.
_CODE_DESTINATIONS = frozenset({
    "script", "style", "worker", "sharedworker", "serviceworker", "audioworklet", "paintworklet", "xslt",
    "manifest", "embed", "object",
})  # fmt: skip

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


# A response with a policy of its own (the /view/ preview, framed by the UI) keeps its framing rules.
_UNDER_OWN_CSP = frozenset({"X-Frame-Options", "Cross-Origin-Opener-Policy"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _cross_site(headers: Headers, host: str | None, trusted: frozenset[str]) -> bool:
    """A browser request sent from another site's page (CSRF): a form or a no-preflight fetch that
    could delete mail, reset the sandbox or release a message. Non-browser clients send neither header.
    The Host itself was checked against the allow-list first (web/access.py), so a rebinding page's
    own origin never counts as ours. `trusted` are the --api-cors origins ("*": any)."""
    origin = headers.get("origin")
    if origin is not None and ("*" in trusted or origin.rstrip("/").lower() in trusted):
        return False
    if headers.get("sec-fetch-site") == "cross-site":
        return True
    if origin is None:
        return False
    return origin == "null" or origin.split("://", 1)[-1].lower() != (host or "").lower()


def security_headers(path: str, host: str | None) -> dict[str, str]:
    """What every response to `path` carries (the 500 handler, outside this middleware, adds them too)."""
    headers = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}
    if path.startswith("/api/"):
        headers["Content-Security-Policy"] = API_CSP
    else:
        headers["Content-Security-Policy"] = ui_csp(host)
        headers["X-Frame-Options"] = "DENY"
        headers["Cross-Origin-Opener-Policy"] = "same-origin"
    return headers


def _harden_part(headers: MutableHeaders) -> None:
    """An active part becomes a download of opaque bytes: with nosniff no browser runs or renders it."""
    essence = headers.get("content-type", "").partition(";")[0].strip().lower()
    # Other sites may not embed a part; a passive image may be, because the preview frame is one: it is
    # sandboxed without allow-same-origin, so its cid: images are requested from an opaque origin.
    if not (essence.startswith("image/") and not _ACTIVE.fullmatch(essence)):
        headers["Cross-Origin-Resource-Policy"] = "same-origin"
    if not _ACTIVE.fullmatch(essence):
        return
    headers["Content-Type"] = "application/octet-stream"
    disposition = headers.get("content-disposition", "")
    kind, sep, params = disposition.partition(";")
    headers["Content-Disposition"] = "attachment" + (sep + params if kind.strip() else "")


async def _forbid(send: Send, text: bytes = b"cross-site request refused") -> None:
    body = b'{"Error":"' + text + b'"}'
    await send({
        "type": "http.response.start",
        "status": 403,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    """Pure ASGI middleware (streaming responses pass through untouched)."""

    def __init__(self, app: ASGIApp, trusted_origins: tuple[str, ...] = (), refusals: RefusalLog | None = None) -> None:
        self.app = app
        self._refusals = refusals or log_refusal
        self._trusted = frozenset(o.rstrip("/").lower() for o in trusted_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self.app(
                scope, receive, _with_headers(send, security_headers(scope["path"], Headers(scope=scope).get("host")))
            )
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        request_headers = Headers(scope=scope)
        host = request_headers.get("host")
        part = _PART.fullmatch(path) is not None
        defaults = security_headers(path, host)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if part and message.get("status") == 200:
                    _harden_part(headers)
                own_csp = "content-security-policy" in headers
                for name, value in defaults.items():
                    if not (own_csp and name in _UNDER_OWN_CSP):
                        headers.setdefault(name, value)
            await send(message)

        if scope.get("method", "GET") not in SAFE_METHODS and _cross_site(request_headers, host, self._trusted):
            self._refusals("csrf", f"refused {scope.get('method')} {path} from {client_of(scope)}: cross-site")
            await _forbid(send_with_headers)
            return
        if part and request_headers.get("sec-fetch-dest", "") in _CODE_DESTINATIONS:
            self._refusals("part", f"refused GET {path} from {client_of(scope)}: a part loaded as code")
            await _forbid(send_with_headers, b"a message part cannot be loaded as code")
            return
        await self.app(scope, receive, send_with_headers)


def _with_headers(send: Send, defaults: dict[str, str]) -> Send:
    """A refused WebSocket handshake answered as HTTP (web/access.py) carries the headers every answer has."""

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "websocket.http.response.start":
            headers = MutableHeaders(scope=message)
            for name, value in defaults.items():
                headers.setdefault(name, value)
        await send(message)

    return send_with_headers
