"""/api/v1 endpoints, Mailpit-shaped: validate, call the store, serialize with web.schema."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mailsandbox import mime
from mailsandbox.store import NoSuchMessage, Store
from mailsandbox.store._search import QueryTooSlow
from mailsandbox.store._tags import MAX_TAGS
from mailsandbox.web import schema
from mailsandbox.web.inputs import json_object, not_found, ok, part_id, plain, whole
from mailsandbox.web.jsonbody import PiecewiseJSONResponse
from mailsandbox.web.workers import Workers

MAX_LIMIT = 1000
_PAGING = "start and limit must be whole numbers (limit at most 1000)"


def _ids(data: dict[str, Any]) -> list[str] | None:
    ids = data.get("IDs", data.get("ids"))
    if ids is None or ids == []:
        return None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ValueError("IDs must be a list of strings")
    return ids


def _paging(request: Request) -> tuple[int, int]:
    return whole(request, "start", 0), whole(request, "limit", 50, MAX_LIMIT)


def _query(request: Request) -> str:
    return request.query_params.get("query", "").strip()


def _scope(request: Request) -> tuple[str | None, str | None]:
    """Our `?mailbox=` extra and Mailpit's `tz` (the IANA zone that before:/after: dates are read in)."""
    return request.query_params.get("mailbox") or None, request.query_params.get("tz") or None


async def _searching(work: Awaitable[Response]) -> Response:
    """A search's answer, or why there is none: a query we cannot read is 400 (and nothing was searched,
    changed or deleted), one over its time budget 503."""
    try:
        return await work
    except ValueError as exc:
        return plain(400, f"bad query: {exc}")
    except QueryTooSlow as exc:
        return plain(503, f"{exc}: narrow the query (fewer or longer words)")


def stored_raw(store: Store, key: str) -> tuple[str, bytes] | None:
    """(ID, raw bytes) of a message by ID or "latest"; None when there is none (or it was just deleted)."""
    message = store.get(key)
    if message is None:
        return None
    try:
        return message.id, store.raw(message.id)
    except NoSuchMessage:
        return None


class Api:
    """The endpoints hold only explicit collaborators: the store, hooks from the composition root, and
    the worker threads that every store read, MIME parse and large JSON rendering runs on."""

    def __init__(
        self,
        store: Store,
        info: Callable[[], dict[str, Any]],
        reset: Callable[[], Awaitable[None]],
        workers: Workers,
        webui: Callable[[], dict[str, Any]] = schema.webui,
    ) -> None:
        self.store = store
        self.info_hook = info
        self.webui_hook = webui
        self.reset_hook = reset
        self.workers = workers

    async def list_messages(self, request: Request) -> Response:
        """GET /api/v1/messages?start=0&limit=50[&mailbox=addr]: newest first."""
        try:
            start, limit = _paging(request)
        except ValueError:
            return plain(400, _PAGING)
        return await self.workers.run(self._list, start, limit, request.query_params.get("mailbox") or None)

    def _list(self, start: int, limit: int, mailbox: str | None) -> Response:
        page = self.store.list(start, limit, mailbox)
        return JSONResponse(schema.page(page, total=self.store.count()[0]))

    async def search(self, request: Request) -> Response:
        """GET /api/v1/search?query=...[&tz=Zone]: the query language of the search box."""
        query = _query(request)
        if not query:
            return plain(400, "Error: no search query")
        try:
            start, limit = _paging(request)
        except ValueError:
            return plain(400, _PAGING)
        mailbox, tz = _scope(request)
        return await _searching(self.workers.run_heavy(self._search, query, start, limit, mailbox, tz))

    def _search(self, query: str, start: int, limit: int, mailbox: str | None, tz: str | None) -> Response:
        page = self.store.search(query, start, limit, mailbox, tz)
        return JSONResponse(schema.page(page, total=self.store.count()[0]))

    async def delete_search(self, request: Request) -> Response:
        """DELETE /api/v1/search?query=...[&tz=Zone]: delete what the search matches, or nothing at all."""
        query = _query(request)
        if not query:
            return plain(400, "Error: no search query")
        mailbox, tz = _scope(request)
        return await _searching(self._delete_matching(query, mailbox, tz))

    async def _delete_matching(self, query: str, mailbox: str | None, tz: str | None) -> Response:
        ids = await self.workers.run_heavy(self.store.search_ids, query, mailbox, tz)
        if ids:
            await self.store.delete(ids)
        return ok()

    async def delete_messages(self, request: Request) -> Response:
        """DELETE /api/v1/messages with {"IDs": [...]}; no body or no IDs deletes everything."""
        try:
            ids = _ids(await json_object(request, self.workers))
        except ValueError as exc:
            return plain(400, str(exc))
        await self.store.delete(ids)
        return ok()

    async def set_read(self, request: Request) -> Response:
        """PUT /api/v1/messages[?tz=Zone] with {"IDs": [...]} or {"Search": "..."}, and "Read" (missing:
        false, as in Mailpit). Neither IDs nor Search: every message (our `?mailbox=`: every one there)."""
        try:
            data = await json_object(request, self.workers)
            ids = _ids(data)
        except ValueError as exc:
            return plain(400, str(exc))
        read = data.get("Read", data.get("read", False))
        search = data.get("Search", data.get("search", ""))
        if not isinstance(read, bool):
            return plain(400, "Read must be true or false")
        if not isinstance(search, str):
            return plain(400, "Search must be a string")
        if ids is not None and search.strip():
            return plain(400, "You may specify either IDs or a search query, not both")
        mailbox, tz = _scope(request)
        if search.strip() or (ids is None and mailbox):
            return await _searching(self._set_read_matching(search.strip(), mailbox, tz, read))
        await self.store.set_read(ids, read)
        return ok()

    async def _set_read_matching(self, query: str, mailbox: str | None, tz: str | None, read: bool) -> Response:
        ids = await self.workers.run_heavy(self.store.search_ids, query, mailbox, tz)
        if ids:  # an empty match changes nothing (None would mean every message)
            await self.store.set_read(ids, read)
        return ok()

    async def get_message(self, request: Request) -> Response:
        """GET /api/v1/message/{ID} (or "latest"): the parsed message; marks it read, as Mailpit does."""
        found = await self.workers.run(self._message, request.path_params["id"])
        if found is None:
            return not_found()
        message_id, was_read, response = found
        if not was_read:
            await self.store.set_read([message_id], True)
        return response

    def _message(self, key: str) -> tuple[str, bool, Response] | None:
        message = self.store.get(key)
        if message is None:
            return None
        try:
            parsed = mime.parse(self.store.raw(message.id))
        except NoSuchMessage:
            return None
        body = schema.message(message, parsed)
        body["Read"] = True
        return message.id, message.read, PiecewiseJSONResponse(body)

    def _raw(self, message_id: str) -> tuple[str, bytes] | None:
        return stored_raw(self.store, message_id)

    async def raw(self, request: Request) -> Response:
        found = await self.workers.run(self._raw, request.path_params["id"])
        if found is None:
            return not_found()
        mid, raw = found
        headers = {}
        if request.query_params.get("dl"):
            headers["Content-Disposition"] = f'attachment; filename="{mid}.eml"'
        return Response(raw, media_type="message/rfc822" if headers else "text/plain; charset=utf-8",
                        headers=headers)  # fmt: skip

    async def headers(self, request: Request) -> Response:
        return await self.workers.run(self._headers, request.path_params["id"])

    def _headers(self, message_id: str) -> Response:
        found = self._raw(message_id)
        if found is None:
            return not_found()
        return PiecewiseJSONResponse(schema.headers(mime.header_pairs(found[1])))

    async def part(self, request: Request) -> Response:
        wanted = request.path_params["part"]
        if not part_id(wanted):  # "²" or 5,000 digits: no part has that number
            return not_found()
        download = bool(request.query_params.get("dl"))
        return await self.workers.run(self._part, request.path_params["id"], wanted, download)

    def _part(self, message_id: str, wanted: str, download: bool) -> Response:
        found = self._raw(message_id)
        if found is None:
            return not_found()
        part = mime.find_part(found[1], wanted)
        if part is None or part.type == "multipart":
            return not_found()
        data = part.decoded()  # an attached message (message/rfc822) is served whole, as the .eml it is
        filename = part.filename
        headers = {"X-Content-Type-Options": "nosniff"}
        ctype = part.content_type
        if filename:
            # Filenames are untrusted: keep a safe ASCII fallback and the exact name per RFC 6266.
            safe = "".join(c if (c.isascii() and c.isalnum()) or c in "._- " else "_" for c in filename)
            kind = "inline" if ctype.startswith("image/") and not download else "attachment"
            headers["Content-Disposition"] = f"{kind}; filename=\"{safe}\"; filename*=UTF-8''{quote(filename)}"
        if ctype in ("text/html", "image/svg+xml"):
            # Never let a part run in our origin.
            headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
        return Response(data, media_type=ctype, headers=headers)

    async def thumb(self, request: Request) -> Response:
        """GET /api/v1/message/{ID}/part/{PartID}/thumb: Mailpit's 180x120 JPEG; a blank one for a part that
        is not an image (or not one we can read). Decoding may take a second: a heavy job."""
        wanted = request.path_params["part"]
        if not part_id(wanted):
            return not_found()
        return await self.workers.run_heavy(self._thumb, request.path_params["id"], wanted)

    def _thumb(self, message_id: str, wanted: str) -> Response:
        from mailsandbox.web import thumbnails  # Pillow takes ~100 ms to import: not on every start

        found = self._raw(message_id)
        part = mime.find_part(found[1], wanted) if found else None
        if part is None or part.type == "multipart":
            return not_found()
        name = part.filename or part.content_id or ""
        safe = "".join(c if (c.isascii() and c.isalnum()) or c in "._- " else "_" for c in name)
        image = thumbnails.thumbnail(part.content_type, part.decoded())
        return Response(image, media_type="image/jpeg", headers={"Content-Disposition": f'filename="{safe}"'})
    async def get_tags(self, request: Request) -> Response:
        """GET /api/v1/tags: every tag in use, sorted case-insensitively."""
        return JSONResponse(list(await self.workers.run(self.store.tags)))

    async def set_tags(self, request: Request) -> Response:
        """PUT /api/v1/tags with {"IDs": [...], "Tags": [...]}: these messages get exactly these tags
        (an empty list takes them all off); no IDs changes nothing."""
        try:
            data = await json_object(request, self.workers)
            ids = _ids(data) or []
        except ValueError as exc:
            return plain(400, str(exc))
        tags = data.get("Tags", data.get("tags")) or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            return plain(400, "Tags must be a list of strings")
        if len(tags) > MAX_TAGS:
            return plain(400, f"at most {MAX_TAGS} tags on a message")
        if ids:
            await self.store.set_tags(ids, tags)
        return ok()

    async def rename_tag(self, request: Request) -> Response:
        """PUT /api/v1/tags/{Tag} with {"Name": "new name"}."""
        try:
            data = await json_object(request, self.workers)
        except ValueError as exc:
            return plain(400, str(exc))
        name = data.get("Name", data.get("name", ""))
        if not isinstance(name, str):
            return plain(400, "Name must be a string")
        try:
            await self.store.rename_tag(request.path_params["tag"], name)
        except ValueError as exc:  # Mailpit's words: invalid tag name, tag not found, tag already exists
            return plain(400, str(exc))
        return ok()

    async def delete_tag(self, request: Request) -> Response:
        """DELETE /api/v1/tags/{Tag}: off every message that has it; the messages stay."""
        try:
            await self.store.delete_tag(request.path_params["tag"])
        except ValueError as exc:
            return plain(400, str(exc))
        return ok()

    async def info(self, request: Request) -> Response:
        return JSONResponse(await self.workers.run(self.info_hook))

    async def webui(self, request: Request) -> Response:
        return JSONResponse(self.webui_hook())

    async def mailboxes(self, request: Request) -> Response:
        return await self.workers.run(lambda: JSONResponse(schema.mailboxes(self.store.mailboxes())))

    async def reset(self, request: Request) -> Response:
        """Our extra: empty every mailbox and put queue, faults, DNS changes and clock back."""
        await self.reset_hook()
        return JSONResponse("ok")

    async def live(self, request: Request) -> Response:
        return Response("ok", media_type="text/plain")

    async def ready(self, request: Request) -> Response:
        """/readyz: 200 once a query through the store answers, 503 (Go's text, as Mailpit) when it fails."""
        try:
            await self.workers.run(self.store.count)
        except Exception:  # a closed, locked or broken database: not ready, and the reason is logged elsewhere
            return Response("Service Unavailable\n", status_code=503, media_type="text/plain")
        return Response("ok", media_type="text/plain")
