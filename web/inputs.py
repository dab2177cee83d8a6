"""Untrusted request input, read safely: the body size limit, JSON bodies, whole numbers, part numbers.

Every refusal is a 4xx with Mailpit's error shape, `{"Error": "..."}`, never a 500.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailsandbox.web.workers import Workers

MIB = 1024 * 1024
DEFAULT_MESSAGE_SIZE = 25 * MIB
_BIG_JSON = 64 * 1024  # bodies above this are parsed on a worker thread
_SKIPPABLE = 64 * 1024  # an unread body up to this is skipped to keep the connection; a larger one closes it
_WHOLE = re.compile(r"[0-9]{1,18}", re.ASCII)  # below 2**63: SQLite's INTEGER
_PART_ID = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,9}){0,63}", re.ASCII)


def error(status: int, text: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"Error": text}, status_code=status, headers=headers)


def plain(status: int, text: str) -> Response:
    """A reply as Mailpit's /api/v1 writes it: the bare text, `Content-Type: text/plain` (no charset)."""
    return Response(text.encode(), status_code=status, headers={"Content-Type": "text/plain"})


def ok() -> Response:
    """Mailpit's answer to a change that worked."""
    return plain(200, "ok")


def not_found() -> Response:
    """Mailpit's 404 for an unknown message or part (Go's own text)."""
    return plain(404, "404 page not found")


def body_limit(max_message_size: int) -> int:
    """The largest request body accepted: room for a message of the size limit sent as JSON + base64
    (4/3 of it, plus the JSON around it), so twice the limit plus 1 MiB."""
    return 2 * (max_message_size or DEFAULT_MESSAGE_SIZE) + MIB


class BodyLimit:
    """Pure ASGI middleware: a request whose body is over `limit` bytes gets 413 and `Connection: close`.
    A Content-Length over the limit is refused before any of the body is read; a chunked body is counted
    as the application reads it, so nothing past the limit is ever buffered. A response that starts while
    a large or chunked body is still unread says `Connection: close`: the server closes rather than read
    the rest, and the client knows not to send another request on that connection."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    def _too_large(self) -> HTTPException:
        text = f"request body over the limit of {self.limit} bytes"
        return HTTPException(413, text, headers={"Connection": "close"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = 0
        for name, value in scope["headers"]:
            if name == b"content-length":
                if len(value) > 18 or not value.isdigit() or int(value) > self.limit:
                    exc = self._too_large()
                    await error(413, str(exc.detail), exc.headers)(scope, receive, send)
                    return
                declared = int(value)
            elif name == b"transfer-encoding":
                declared = self.limit  # chunked: as large as it may be
        seen = 0
        unread = declared > 0

        async def counted() -> Message:
            nonlocal seen, unread
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                unread = message.get("more_body", False)
                if seen > self.limit:
                    raise self._too_large()  # the app's exception handler answers 413 (web.app)
            return message

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start" and unread and declared - seen > _SKIPPABLE:
                MutableHeaders(scope=message)["Connection"] = "close"
            await send(message)

        await self.app(scope, counted, sending)


async def json_value(request: Request, workers: Workers, empty: Any = None) -> Any:
    """The body as JSON (`empty` when there is none). Raises ValueError (a 400) on malformed JSON."""
    raw = await request.body()
    if not raw.strip():
        return empty
    return await workers.run(_loads, raw) if len(raw) > _BIG_JSON else _loads(raw)


async def json_object(request: Request, workers: Workers) -> dict[str, Any]:
    """The body as a JSON object ({} when empty). Raises ValueError (a 400) on anything else."""
    data = await json_value(request, workers, {})
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data


def _loads(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise ValueError(f"malformed JSON: {exc}") from None


def whole(request: Request, name: str, default: int, high: int | None = None) -> int:
    """A query parameter that must be a whole number of at most 18 digits (and at most `high`)."""
    value = request.query_params.get(name)
    if value in (None, ""):
        return default
    if not _WHOLE.fullmatch(value) or (high is not None and int(value) > high):
        most = f" at most {high}" if high is not None else ""
        raise ValueError(f"{name} must be a whole number{most}")
    return int(value)


def part_id(value: str) -> bool:
    """Whether `value` is a MIME section number (1, 2.1, ...) we would ever look up."""
    return value == "0" or _PART_ID.fullmatch(value) is not None
