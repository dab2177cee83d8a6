"""The UI's own routes: the page at / and its static assets under /static/ with caching headers;
`web_routes` bundles them with the preview, the event stream and the OpenAPI document."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import Scope

from mailsandbox.events import EventBus
from mailsandbox.store import Store
from mailsandbox.web import schema
from mailsandbox.web.openapi import openapi_routes
from mailsandbox.web.preview import preview_routes
from mailsandbox.web.stream import EventHub, stream_routes

STATIC = Path(__file__).parent / "static"
_IMMUTABLE = "public, max-age=31536000, immutable"


def asset_version(root: Path = STATIC) -> str:
    """A hash of every static file: index.html asks for app.js?v=<this>, so a new build is a new URL."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


class CachedStaticFiles(StaticFiles):
    """Versioned URLs (?v=) are cached for a year; the rest revalidate with ETag each time."""

    def file_response(
        self, full_path: PathLike, stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        versioned = b"v=" in scope.get("query_string", b"")
        response.headers["Cache-Control"] = _IMMUTABLE if versioned else "no-cache"
        return response


def web_routes(store: Store, bus: EventBus) -> list[BaseRoute]:
    """The UI's routes: the preview, /api/events, the OpenAPI document, the page and assets."""
    hub = EventHub(store, bus, schema.summary)
    return [*preview_routes(store), *stream_routes(hub), *openapi_routes(), *ui_routes()]


def ui_routes(root: Path = STATIC) -> list[BaseRoute]:
    version = asset_version(root)
    page = (root / "index.html").read_text(encoding="utf-8").replace("{{v}}", version)
    etag = f'"{version}"'

    async def index(request: Request) -> Response:
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag, "Cache-Control": "no-cache"})
        return HTMLResponse(page, headers={"ETag": etag, "Cache-Control": "no-cache"})

    return [
        Route("/", index, methods=["GET", "HEAD"], name="ui"),
        Mount("/static", app=CachedStaticFiles(directory=root), name="static"),
    ]
