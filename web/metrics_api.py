"""GET /metrics: the Prometheus exposition, on the HTTP port or a listener of its own.

The composition root hands in `render` (sandbox/metrics.py): it reads the store, so it runs on a web
worker. Both places sit behind `AccessControl`, so the Host allow-list, basic auth and the API token
hold for a scraper as for the API (Prometheus' scrape config has `basic_auth` and `authorization`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from mailsandbox.executors import ExecutorBusy
from mailsandbox.web.access import AccessControl, AccessPolicy, RefusalLog
from mailsandbox.web.security import SecurityHeaders
from mailsandbox.web.workers import Workers

Render = Callable[[str], tuple[bytes, str]]  # Accept header -> (body, content type)
log = logging.getLogger("mailsandbox.http")


def metrics_routes(render: Render, workers: Workers) -> list[BaseRoute]:
    async def metrics(request: Request) -> Response:
        try:
            body, content_type = await workers.run(render, request.headers.get("accept", ""))
        except ExecutorBusy:
            return PlainTextResponse("busy; scrape again", status_code=503)
        except Exception:  # the store closing under a scrape: an answer, not a traceback
            log.exception("collecting metrics failed")
            return PlainTextResponse("metrics are not available", status_code=503)
        return Response(body, media_type=content_type)

    return [Route("/metrics", metrics, methods=["GET"])]


def metrics_app(render: Render, workers: Workers, policy: AccessPolicy, refusals: RefusalLog | None) -> Starlette:
    """The app of --enable-prometheus HOST:PORT: /metrics alone, with the UI's access rules."""
    return Starlette(
        routes=metrics_routes(render, workers),
        middleware=[
            Middleware(SecurityHeaders, trusted_origins=policy.cors, refusals=refusals),
            Middleware(AccessControl, policy=policy, refusals=refusals),
        ],
    )
