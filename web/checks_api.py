"""Mailpit's message checks: /api/v1/message/{ID}/html-check, /link-check and /sa-check."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox import mime
from sandbox.checks import html as html_check
from sandbox.checks import links as link_check
from sandbox.checks.links import LinkChecker
from sandbox.checks.spam import NOT_CONFIGURED, SpamAssassin
from sandbox.store import Store
from web.api import stored_raw
from web.inputs import error
from web.workers import Workers

_CACHED = 64  # HTML checks kept: a stored message never changes, and the UI asks again on every view


class CheckApi:
    """HTML checks run on the worker threads (a parse and a tokenizer pass over the HTML); link checks and
    spamd calls are async, bounded by their own clients."""

    def __init__(self, store: Store, workers: Workers, links: LinkChecker, spam: SpamAssassin | None) -> None:
        self.store = store
        self.workers = workers
        self.links = links
        self.spam = spam
        self._html: OrderedDict[tuple[str, bool], dict[str, Any]] = OrderedDict()

    def routes(self) -> list[Route]:
        return [
            Route("/api/v1/message/{id}/html-check", self.html_check, methods=["GET"]),
            Route("/api/v1/message/{id}/link-check", self.link_check, methods=["GET"]),
            Route("/api/v1/message/{id}/sa-check", self.sa_check, methods=["GET"]),
            # Our extra: the same answer, each warning with the source lines that use the feature.
            Route("/api/sandbox/message/{id}/html-check", self.html_places, methods=["GET"]),
        ]

    def _raw(self, key: str) -> tuple[str, bytes] | None:
        return stored_raw(self.store, key)

    async def html_check(self, request: Request) -> Response:
        """GET /api/v1/message/{ID}/html-check: Mailpit's HTMLCheckResponse."""
        return await self.workers.run_heavy(self._html_check, request.path_params["id"], False)

    async def html_places(self, request: Request) -> Response:
        return await self.workers.run_heavy(self._html_check, request.path_params["id"], True)

    def _html_check(self, key: str, places: bool) -> Response:
        found = self._raw(key)
        if found is None:
            return error(404, "message not found")
        cache_key = (found[0], places)
        result = self._html.get(cache_key)
        if result is None:
            markup = mime.parse(found[1]).html
            if not markup:
                return error(400, "message does not contain HTML")
            result = self._html[cache_key] = html_check.check(markup, places)
            while len(self._html) > _CACHED:
                self._html.popitem(last=False)
        return JSONResponse(result)

    def _links(self, key: str) -> list[str] | None:
        found = self._raw(key)
        if found is None:
            return None
        parsed = mime.parse(found[1])
        return link_check.extract(parsed.html, parsed.text)

    async def link_check(self, request: Request) -> Response:
        """GET /api/v1/message/{ID}/link-check?follow=true: Mailpit's LinkCheckResponse."""
        urls = await self.workers.run(self._links, request.path_params["id"])
        if urls is None:
            return error(404, "message not found")
        follow = request.query_params.get("follow", "").lower() in ("true", "1")
        return JSONResponse(await self.links.check(urls, follow))

    async def sa_check(self, request: Request) -> Response:
        """GET /api/v1/message/{ID}/sa-check: Mailpit's SpamAssassinResponse, when --spamassassin is set."""
        if self.spam is None:
            # Mailpit has no such route without a SpamAssassin service.
            return error(404, f"{NOT_CONFIGURED}: start the sandbox with --spamassassin HOST:PORT")
        found = await self.workers.run(self._raw, request.path_params["id"])
        if found is None:
            return error(404, "message not found")
        return JSONResponse(await self.spam.check(found[1]))
