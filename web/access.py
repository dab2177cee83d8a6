"""Who may use the web UI and API: a Host allow-list (DNS rebinding), basic or bearer authentication, CORS.

`AccessControl` is pure ASGI middleware over HTTP and the WebSocket alike. A request whose `Host` is
not loopback, this machine's own or allowed gets 403: a page on http://attacker.example:8025 that
DNS-rebinds its name to 127.0.0.1 sends that name as its Host. With users or a token configured,
every route but /livez and /readyz needs `Authorization: Basic` (a user of the --ui-auth-file) or
`Bearer TOKEN`. Each refusal is logged once, with the client's address; a refusal is never a traceback.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import fnmatch
import hashlib
import hmac
import ipaddress
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailsandbox.executors import BoundedExecutor, ExecutorBusy
from mailsandbox.throttle import LoginThrottle

log = logging.getLogger("mailsandbox.http")

OPEN_PATHS = frozenset({"/livez", "/readyz"})  # probes: a container runtime has no credentials
REALM = 'Basic realm="Mailsandbox", charset="UTF-8"'  # RFC 7617 §2.1
CORS_METHODS = "GET, HEAD, POST, PUT, DELETE, OPTIONS"
CORS_HEADERS = "Authorization, Content-Type"
_VERIFIED_CACHE = 256  # Authorization values already verified: bcrypt costs ~100 ms a check
_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")

RefusalLog = Callable[[str, str], object]  # (kind, line): the composition root rate-limits by kind


def load_users(path: Path) -> dict[str, str]:
    """An htpasswd-style file: `user:password` or `user:$2y$...` (bcrypt, `htpasswd -B`) per line;
    blank lines and `#` comments are skipped. Other hash formats are refused: they are weak or unknown."""
    users: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, secret = line.partition(":")
        if not sep or not user:
            raise ValueError(f"{path}:{number}: expected user:password")
        if secret.startswith(("$apr1$", "{SHA}", "$1$", "$5$", "$6$")):
            raise ValueError(f"{path}:{number}: only bcrypt hashes are supported (htpasswd -B)")
        if secret.startswith(_BCRYPT_PREFIXES):
            try:
                bcrypt.checkpw(b"", secret.encode("ascii"))
            except ValueError:
                raise ValueError(f"{path}:{number}: not a valid bcrypt hash") from None
        users[user] = secret
    if not users:
        raise ValueError(f"{path}: no users")
    return users


def host_name(host_header: str) -> str:
    """The name or address of a Host header, lower-cased, without port, brackets or a final dot."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        host = name
    return host.rstrip(".")


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _is_loopback(name: str) -> bool:
    if name == "localhost" or name.endswith(".localhost"):  # RFC 6761 §6.3
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass
class AccessPolicy:
    """`allowed_hosts`: names or globs ("*.example.test", "*" for any) besides loopback; `users` from
    `load_users`; `token` for bearer auth; `cors`: origins ("*" for any) that may call /api/ from a page."""

    allowed_hosts: tuple[str, ...] = ()
    users: Mapping[str, str] = field(default_factory=dict)
    token: str | None = None
    cors: tuple[str, ...] = ()
    throttle: LoginThrottle | None = None
    # Any IP address as Host (a listener reachable from other machines, browsed by address): DNS rebinding
    # needs a name, and a browser that connected to an address literal connected to us.
    ip_literals: bool = False
    # bcrypt checks run here, off the loop (the composition root shuts it down); made on first use if None
    executor: BoundedExecutor | None = None

    @property
    def authenticates(self) -> bool:
        return bool(self.users) or bool(self.token)

    def host_allowed(self, host_header: str | None) -> bool:
        if host_header is None:
            return True  # HTTP/1.0 without Host: not a browser, so not a rebinding page
        name = host_name(host_header)
        if _is_loopback(name) or (self.ip_literals and _is_address(name)):
            return True
        return any(fnmatch.fnmatchcase(name, pattern.lower().rstrip(".")) for pattern in self.allowed_hosts)

    def cors_origin(self, origin: str | None) -> str | None:
        """The Access-Control-Allow-Origin value for a request from `origin`, or None."""
        if not origin or not self.cors:
            return None
        if "*" in self.cors:
            return "*"
        return origin if origin.rstrip("/").lower() in {o.rstrip("/").lower() for o in self.cors} else None


class AccessControl:
    """Pure ASGI middleware: Host check, then CORS preflight, then authentication, for HTTP and WebSocket."""

    def __init__(self, app: ASGIApp, policy: AccessPolicy, refusals: RefusalLog | None = None) -> None:
        self.app = app
        self.policy = policy
        self._refusals = refusals or log_refusal
        self._verified: OrderedDict[bytes, None] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        policy = self.policy
        if not policy.host_allowed(headers.get("host")):
            self._refuse(scope, "host", f"unknown Host {headers.get('host', '')!r}")
            await _answer(scope, send, 403, "this Host is not allowed (see --allowed-hosts)")
            return
        origin = policy.cors_origin(headers.get("origin")) if scope["path"].startswith("/api/") else None
        if scope["type"] == "http" and scope["method"] == "OPTIONS" and origin is not None:
            await _preflight(send, origin)  # a preflight never carries credentials (Fetch, "CORS-preflight fetch")
            return
        if policy.authenticates and scope["path"] not in OPEN_PATHS:
            refusal = await self._authenticate(scope, headers.get("authorization"))
            if refusal is not None:
                status, text = refusal
                await _answer(scope, send, status, text, {"WWW-Authenticate": REALM} if status == 401 else {})
                return
        if origin is None:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                out["Access-Control-Allow-Origin"] = origin
                out.append("Vary", "Origin")
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _authenticate(self, scope: Scope, authorization: str | None) -> tuple[int, str] | None:
        """None when the credentials are good; else the status and the reason."""
        client = client_of(scope)
        throttle = self.policy.throttle
        if throttle is not None and throttle.blocked(client):
            self._refuse(scope, "auth-blocked", "too many failed logins")
            return 429, "too many failed logins; try again later"
        if authorization is None:
            self._refuse(scope, "auth-missing", "no credentials")
            return 401, "authentication required"
        key = hashlib.sha256(authorization.encode("utf-8", "surrogateescape")).digest()
        if key in self._verified:
            self._verified.move_to_end(key)
            return None
        try:
            good = await self._check(authorization)
        except ExecutorBusy:
            return 503, "busy checking passwords; try again"
        if not good:
            self._refuse(scope, "auth-failed", "wrong credentials")
            if throttle is not None:
                verdict = throttle.failed(client, "HTTP")
                if verdict.delay > 0:  # as on the mail protocols: the answer to a wrong guess comes late
                    await asyncio.sleep(verdict.delay)
            return 401, "authentication required"
        self._verified[key] = None
        while len(self._verified) > _VERIFIED_CACHE:
            self._verified.popitem(last=False)
        return None

    async def _check(self, authorization: str) -> bool:
        scheme, _, value = authorization.strip().partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "bearer":
            token = self.policy.token
            return token is not None and hmac.compare_digest(value.encode(), token.encode())
        if scheme != "basic" or not self.policy.users:
            return False
        try:
            user, sep, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, ValueError):
            return False
        secret = self.policy.users.get(user)
        if not sep or secret is None:
            return False
        if secret.startswith(_BCRYPT_PREFIXES):
            if self.policy.executor is None:
                self.policy.executor = BoundedExecutor("http-auth", 2, max_pending=32)
            return await self.policy.executor.run(_bcrypt_matches, password, secret)
        return hmac.compare_digest(secret.encode(), password.encode())

    def _refuse(self, scope: Scope, kind: str, reason: str) -> None:
        what = "WebSocket" if scope["type"] == "websocket" else scope.get("method", "")
        self._refusals(kind, f"refused {what} {scope.get('path', '')} from {client_of(scope)}: {reason}")


def _bcrypt_matches(password: str, hashed: str) -> bool:
    # bcrypt reads 72 bytes of a password; htpasswd -B truncated when it hashed, the bcrypt module refuses.
    try:
        return bool(bcrypt.checkpw(password.encode()[:72], hashed.encode("ascii")))
    except ValueError:
        return False


def log_refusal(kind: str, line: str) -> None:
    log.warning("%s", line)


def client_of(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def _answer(scope: Scope, send: Send, status: int, text: str, extra: Mapping[str, str] | None = None) -> None:
    body = json.dumps({"Error": text}).encode()
    headers = _raw({"content-type": "application/json", "content-length": str(len(body)), **(extra or {})})
    if scope["type"] == "websocket":
        if "websocket.http.response" not in scope.get("extensions", {}):
            # Closing before accepting makes the server answer the handshake with 403 (ASGI spec).
            await send({"type": "websocket.close", "code": 1008})
            return
        # The ASGI extension answers the handshake as HTTP: its status, the reason, the security headers.
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
        return
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _preflight(send: Send, origin: str) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": _raw({
        "access-control-allow-origin": origin, "access-control-allow-methods": CORS_METHODS,
        "access-control-allow-headers": CORS_HEADERS, "access-control-max-age": "600", "vary": "Origin",
    })})  # fmt: skip
    await send({"type": "http.response.body", "body": b""})


def _raw(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


def own_names(hostnames: Iterable[str]) -> tuple[str, ...]:
    """Lower-cased, de-duplicated names to add to the allow-list (the machine's own, its addresses)."""
    return tuple(dict.fromkeys(n.lower().rstrip(".") for n in hostnames if n))
