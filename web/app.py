"""create_app: the Starlette application over web/routes.py's table; the composition root hands in the
groups it builds (relay, auth, send), this builds the rest."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from mailsandbox.checks.links import LinkChecker
from mailsandbox.checks.pool import HtmlChecker
from mailsandbox.checks.spam import SpamAssassin
from mailsandbox.events import EventBus
from mailsandbox.store import Store, StoreUnavailable
from mailsandbox.web import schema
from mailsandbox.web.access import AccessControl, AccessPolicy, RefusalLog
from mailsandbox.web.api import Api
from mailsandbox.web.checks_api import CheckApi
from mailsandbox.web.inputs import BodyLimit, body_limit, not_found
from mailsandbox.web.routes import build
from mailsandbox.web.security import SecurityHeaders, security_headers
from mailsandbox.web.ui import web_groups
from mailsandbox.web.workers import Workers


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404 and request.url.path.startswith(("/api/v1/", "/view/")):
        return not_found()  # a route Mailpit has and we do not, or a typo: Mailpit's (Go's) 404
    return JSONResponse({"Error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _client_gone(request: Request, exc: Exception) -> Response:
    # The client closed while its body was being read: no one reads this answer, and no traceback is logged.
    return JSONResponse({"Error": "the client closed the connection"}, status_code=400)


async def _unavailable(request: Request, exc: Exception) -> Response:
    # The database went away (a PostgreSQL server restarting): try again later, not a server bug.
    headers = {**security_headers(request.url.path, request.headers.get("host")), "Retry-After": "5"}
    return JSONResponse({"Error": "the database is unavailable"}, status_code=503, headers=headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    # Starlette answers a 500 outside every middleware: the security headers are added here.
    headers = security_headers(request.url.path, request.headers.get("host"))
    return JSONResponse({"Error": "internal error"}, status_code=500, headers=headers)


def create_app(
    store: Store,
    bus: EventBus,
    *,
    info: Callable[[], dict[str, Any]],
    reset: Callable[[], Awaitable[None]],
    webui: Callable[[], dict[str, Any]] | None = None,
    groups: Mapping[str, object] | None = None,
    extra_routes: Sequence[BaseRoute] = (),
    workers: Workers | None = None,
    max_body: int | None = None,
    access: AccessPolicy | None = None,
    refusals: RefusalLog | None = None,
    link_checker: LinkChecker | None = None,
    spamassassin: SpamAssassin | None = None,
    html_checker: HtmlChecker | None = None,
) -> Starlette:
    """`workers` run the blocking work (the composition root passes the ones it shuts down at stop);
    `groups` the handler groups of web/routes.py that the composition root builds ("relay", "auth",
    "send"): a route whose group is absent is not served; `extra_routes` are served after the table
    (a route on its way into it); `max_body` is the request body limit, by default `body_limit` of the
    default message size;
    `access` who may use it (by default: loopback Hosts, no authentication); `refusals` logs each
    refused request as (kind, line); `webui` answers /api/v1/webui; `html_checker`, `link_checker` and
    `spamassassin` serve the message checks (no spamd: sa-check says so)."""
    policy = access or AccessPolicy()
    workers = workers or Workers()
    api = Api(store, info, reset, workers, webui or (lambda: schema.webui(spamassassin=spamassassin is not None)))
    checks = CheckApi(store, workers, html_checker or HtmlChecker(), link_checker or LinkChecker(), spamassassin)
    table = {"api": api, "checks": checks, **web_groups(store, bus), **(groups or {})}
    routes: list[BaseRoute] = [*build(table), *extra_routes]
    limit = body_limit(0) if max_body is None else max_body
    return Starlette(
        routes=routes,
        # BodyLimit sits outside Starlette's exception handling, which turns its 413 into the JSON answer.
        middleware=[
            Middleware(SecurityHeaders, trusted_origins=policy.cors, refusals=refusals),
            Middleware(AccessControl, policy=policy, refusals=refusals),
            Middleware(BodyLimit, limit=limit),
        ],
        exception_handlers={
            HTTPException: _http_error, ClientDisconnect: _client_gone, StoreUnavailable: _unavailable,
            500: _server_error,
        },
    )
