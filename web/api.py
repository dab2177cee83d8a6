"""/api/v1 endpoints, Mailpit-shaped: validate, call the store, serialize with web.schema."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox import mime
from sandbox.store import NoSuchMessage, Store
from web import schema

MAX_LIMIT = 1000


def error(status: int, text: str) -> JSONResponse:
    return JSONResponse({"Error": text}, status_code=status)


def _int(request: Request, name: str, default: int, low: int = 0, high: int | None = None) -> int:
    value = request.query_params.get(name)
    if value in (None, ""):
        return default
    number = int(value)  # ValueError -> 400 by the caller
    if number < low or (high is not None and number > high):
        raise ValueError(name)
    return number


async def _json_body(request: Request) -> dict[str, Any]:
    body = await request.body()
    if not body.strip():
        return {}
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data


def _ids(data: dict[str, Any]) -> list[str] | None:
    ids = data.get("IDs", data.get("ids"))
    if ids is None or ids == []:
        return None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ValueError("IDs must be a list of strings")
    return ids


class Api:
    """The endpoints hold only explicit collaborators: the store and two hooks from the composition root."""

    def __init__(
        self,
        store: Store,
        info: Callable[[], dict[str, Any]],
        reset: Callable[[], Awaitable[None]],
    ) -> None:
        self.store = store
        self.info_hook = info
        self.reset_hook = reset

    def routes(self) -> list[Route]:
        return [
            Route("/api/v1/messages", self.list_messages, methods=["GET"]),
            Route("/api/v1/messages", self.delete_messages, methods=["DELETE"]),
            Route("/api/v1/messages", self.set_read, methods=["PUT"]),
            Route("/api/v1/search", self.search, methods=["GET"]),
            Route("/api/v1/search", self.delete_search, methods=["DELETE"]),
            Route("/api/v1/message/{id}", self.get_message, methods=["GET"]),
            Route("/api/v1/message/{id}/raw", self.raw, methods=["GET"]),
            Route("/api/v1/message/{id}/headers", self.headers, methods=["GET"]),
            Route("/api/v1/message/{id}/part/{part}", self.part, methods=["GET"]),
            Route("/api/v1/info", self.info, methods=["GET"]),
            Route("/api/sandbox/mailboxes", self.mailboxes, methods=["GET"]),
            Route("/api/sandbox/reset", self.reset, methods=["POST"]),
            Route("/livez", self.live, methods=["GET"]),
            Route("/readyz", self.live, methods=["GET"]),
        ]

    async def list_messages(self, request: Request) -> Response:
        """GET /api/v1/messages?start=0&limit=50[&mailbox=addr]: newest first."""
        try:
            start = _int(request, "start", 0)
            limit = _int(request, "limit", 50, 0, MAX_LIMIT)
        except ValueError:
            return error(400, "start and limit must be whole numbers (limit at most 1000)")
        mailbox = request.query_params.get("mailbox") or None
        page = self.store.list(start, limit, mailbox)
        total, _ = self.store.count()
        return JSONResponse(schema.page(page, total_all=total))

    async def search(self, request: Request) -> Response:
        """GET /api/v1/search?query=...: the query language of the search box."""
        query = request.query_params.get("query", "").strip()
        if not query:
            return error(400, "query is required")
        try:
            start = _int(request, "start", 0)
            limit = _int(request, "limit", 50, 0, MAX_LIMIT)
        except ValueError:
            return error(400, "start and limit must be whole numbers (limit at most 1000)")
        try:
            page = self.store.search(query, start, limit, request.query_params.get("mailbox") or None)
        except ValueError as exc:
            return error(400, f"bad query: {exc}")
        body = schema.page(page)
        body["messages_count"] = page.total
        return JSONResponse(body)

    async def delete_search(self, request: Request) -> Response:
        query = request.query_params.get("query", "").strip()
        if not query:
            return error(400, "query is required")
        try:
            ids = self.store.search_ids(query, request.query_params.get("mailbox") or None)
        except ValueError as exc:
            return error(400, f"bad query: {exc}")
        if ids:
            await self.store.delete(ids)
        return JSONResponse("ok")

    async def delete_messages(self, request: Request) -> Response:
        """DELETE /api/v1/messages with {"IDs": [...]}; no body or no IDs deletes everything."""
        try:
            ids = _ids(await _json_body(request))
        except ValueError as exc:
            return error(400, str(exc))
        await self.store.delete(ids)
        return JSONResponse("ok")

    async def set_read(self, request: Request) -> Response:
        """PUT /api/v1/messages with {"IDs": [...], "Read": true}; no IDs means every message."""
        try:
            data = await _json_body(request)
            ids = _ids(data)
        except ValueError as exc:
            return error(400, str(exc))
        read = data.get("Read", data.get("read", True))
        if not isinstance(read, bool):
            return error(400, "Read must be true or false")
        await self.store.set_read(ids, read)
        return JSONResponse("ok")

    async def get_message(self, request: Request) -> Response:
        """GET /api/v1/message/{ID} (or "latest"): the parsed message; marks it read, as Mailpit does."""
        message = self.store.get(request.path_params["id"])
        if message is None:
            return error(404, "message not found")
        parsed = mime.parse(self.store.raw(message.id))
        if not message.read:
            await self.store.set_read([message.id], True)
        body = schema.message(message, parsed)
        body["Read"] = True
        return JSONResponse(body)

    def _raw(self, message_id: str) -> tuple[str, bytes] | None:
        message = self.store.get(message_id)
        if message is None:
            return None
        try:
            return message.id, self.store.raw(message.id)
        except NoSuchMessage:
            return None

    async def raw(self, request: Request) -> Response:
        found = self._raw(request.path_params["id"])
        if found is None:
            return error(404, "message not found")
        mid, raw = found
        headers = {}
        if request.query_params.get("dl"):
            headers["Content-Disposition"] = f'attachment; filename="{mid}.eml"'
        return Response(raw, media_type="message/rfc822" if headers else "text/plain; charset=utf-8",
                        headers=headers)  # fmt: skip

    async def headers(self, request: Request) -> Response:
        found = self._raw(request.path_params["id"])
        if found is None:
            return error(404, "message not found")
        out: dict[str, list[str]] = {}
        for name, value in mime.header_pairs(found[1]):
            out.setdefault(name, []).append(value)
        return JSONResponse(out)

    async def part(self, request: Request) -> Response:
        found = self._raw(request.path_params["id"])
        if found is None:
            return error(404, "message not found")
        part = mime.find_part(found[1], request.path_params["part"])
        if part is None or part.is_multipart():
            return error(404, "part not found")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = mime.decode_words(part.get_filename() or "")
        headers = {"X-Content-Type-Options": "nosniff"}
        ctype = part.get_content_type()
        if filename:
            # Filenames are untrusted: keep a safe ASCII fallback and the exact name per RFC 6266.
            from urllib.parse import quote

            safe = "".join(c if c.isalnum() or c in "._- " else "_" for c in filename)
            kind = "inline" if ctype.startswith("image/") and not request.query_params.get("dl") else "attachment"
            headers["Content-Disposition"] = f"{kind}; filename=\"{safe}\"; filename*=UTF-8''{quote(filename)}"
        if ctype in ("text/html", "image/svg+xml"):
            # Never let a part run in our origin.
            headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
        return Response(data, media_type=ctype, headers=headers)

    async def info(self, request: Request) -> Response:
        return JSONResponse(self.info_hook())

    async def mailboxes(self, request: Request) -> Response:
        return JSONResponse(schema.mailboxes(self.store.mailboxes()))

    async def reset(self, request: Request) -> Response:
        """Our extra: empty every mailbox and put queue, faults, DNS changes and clock back."""
        await self.reset_hook()
        return JSONResponse("ok")

    async def live(self, request: Request) -> Response:
        return Response("ok", media_type="text/plain")
