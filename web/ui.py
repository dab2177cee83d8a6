"""The UI's own handlers: the page at / and its static assets under /static/ with caching headers;
`web_groups` bundles them with the preview, the event stream and the OpenAPI document (web/routes.py)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import Scope

from mailsandbox.events import EventBus
from mailsandbox.store import Store
from mailsandbox.web import schema
from mailsandbox.web.openapi import OpenApi
from mailsandbox.web.preview import Preview
from mailsandbox.web.routes import build
from mailsandbox.web.stream import EventHub

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


class UiPage:
    """The "ui" group of web/routes.py: the page at / (its asset version baked in) and the assets."""

    def __init__(self, root: Path = STATIC) -> None:
        version = asset_version(root)
        self._page = (root / "index.html").read_text(encoding="utf-8").replace("{{v}}", version)
        self._etag = f'"{version}"'
        self.static = CachedStaticFiles(directory=root)

    async def index(self, request: Request) -> Response:
        headers = {"ETag": self._etag, "Cache-Control": "no-cache"}
        if request.headers.get("if-none-match") == self._etag:
            return Response(status_code=304, headers=headers)
        return HTMLResponse(self._page, headers=headers)


def web_groups(store: Store, bus: EventBus) -> dict[str, object]:
    """The UI's groups: the preview, /api/events, the OpenAPI document, the page and assets."""
    return {
        "preview": Preview(store), "events": EventHub(store, bus, schema.summary), "openapi": OpenApi(),
        "ui": UiPage(),
    }  # fmt: skip


def web_routes(store: Store, bus: EventBus) -> list[BaseRoute]:
    return build(web_groups(store, bus))
