"""create_app: the Starlette application and its full route table."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from sandbox.events import EventBus
from sandbox.store import Store
from web.api import Api
from web.security import SecurityHeaders
from web.ui import web_routes


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"Error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    return JSONResponse({"Error": "internal error"}, status_code=500)


def create_app(
    store: Store,
    bus: EventBus,
    *,
    info: Callable[[], dict[str, Any]],
    reset: Callable[[], Awaitable[None]],
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    routes: list[BaseRoute] = [*Api(store, info, reset).routes(), *extra_routes, *web_routes(store, bus)]
    return Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={HTTPException: _http_error, 500: _server_error},
    )
