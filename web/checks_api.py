"""Mailpit's message checks: /api/v1/message/{ID}/html-check, /link-check and /sa-check."""

from __future__ import annotations

from collections import OrderedDict

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mailsandbox import mime
from mailsandbox.checks import links as link_check
from mailsandbox.checks.links import LinkChecker
from mailsandbox.checks.pool import CheckFailed, HtmlChecker
from mailsandbox.checks.spam import NOT_CONFIGURED, SpamAssassin
from mailsandbox.store import Store
from mailsandbox.web.api import stored_raw
from mailsandbox.web.inputs import error
from mailsandbox.web.workers import Workers

_CACHED = 64  # HTML checks kept: a stored message never changes, and the UI asks again on every view


class CheckApi:
    """Store reads and MIME parses run on the worker threads, HTML checks in their own process; link checks
    and spamd calls are async, bounded by their own clients."""

    def __init__(
        self, store: Store, workers: Workers, html: HtmlChecker, links: LinkChecker, spam: SpamAssassin | None
    ) -> None:
        self.store = store
        self.workers = workers
        self.html = html
        self.links = links
        self.spam = spam
        self._html_cache: OrderedDict[tuple[str, bool], bytes] = OrderedDict()

    def _raw(self, key: str) -> tuple[str, bytes] | None:
        return stored_raw(self.store, key)

    async def html_check(self, request: Request) -> Response:
        """GET /api/v1/message/{ID}/html-check: Mailpit's HTMLCheckResponse."""
        return await self._html_check(request.path_params["id"], False)

    async def html_places(self, request: Request) -> Response:
        return await self._html_check(request.path_params["id"], True)

    def _html_of(self, key: str, places: bool) -> tuple[str, bytes | None] | None:
        """(message ID, the check's encoded request or None when there is no HTML), off the loop."""
        found = self._raw(key)
        if found is None:
            return None
        markup = mime.parse(found[1]).html
        return found[0], self.html.request(markup, places) if markup else None

    async def _html_check(self, key: str, places: bool) -> Response:
        found = await self.workers.run(self._html_of, key, places)
        if found is None:
            return error(404, "message not found")
        message_id, request = found
        if request is None:
            return error(400, "message does not contain HTML")
        cache_key = (message_id, places)
        result = self._html_cache.get(cache_key)
        if result is None:
            try:
                result = self._html_cache[cache_key] = await self.html.ask(request)
            except CheckFailed as exc:
                return error(503, f"{exc}: try again")
            while len(self._html_cache) > _CACHED:
                self._html_cache.popitem(last=False)
        return Response(result, media_type="application/json")  # JSON as the checker wrote it

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
