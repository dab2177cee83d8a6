"""The OpenAPI 3.1 document of the whole HTTP API, generated from web/routes.py's table and
web/schema.py's shapes; served at /api/sandbox/openapi.json and at Mailpit's /api/v1/swagger.json.

DOCS holds the prose of each operation (summary, parameters, request body, error answers), keyed by the
document's path and method; the success answer of each comes from the table's shape, never from here.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mailsandbox.web.routes import KINDS, TABLE, Line, documented
from mailsandbox.web.schema import BOOL as _B
from mailsandbox.web.schema import INT as _I
from mailsandbox.web.schema import SHAPES, Schema
from mailsandbox.web.schema import STR as _S
from mailsandbox.web.schema import arr as _arr
from mailsandbox.web.schema import obj as _obj
from mailsandbox.web.schema import ref as _ref

OPENAPI_PATH = "/api/sandbox/openapi.json"
SWAGGER_PATH = "/api/v1/swagger.json"  # where Mailpit serves its document: the same one


def _param(name: str, where: str, description: str, schema: Schema = _S, required: bool = False) -> Schema:
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "description": description,
        "schema": schema,
    }


_ID = _param("ID", "path", 'message ID, or "latest"')
_START = _param("start", "query", "offset of the first message", _I)
_LIMIT = _param("limit", "query", "page size (default 50, at most 1000)", _I)
_MAILBOX = _param("mailbox", "query", "only messages delivered to this mailbox (address)")
_QUERY = _param(
    "query", "query",
    "Mailpit's search language: to: from: cc: bcc: reply-to: addressed: subject: message-id: tag: is:read"
    " is:unread is:tagged has:attachment has:inline larger: smaller: before: after:, quotes, -/! negation"
    " (at most 50 terms; an unknown filter is a 400 that names it)",
    required=True,
)  # fmt: skip
_TZ = _param("tz", "query", "IANA time zone that before: and after: dates are read in (default: the server's)")


def _json(schema: Schema, description: str = "OK") -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _op(
    summary: str,
    responses: Schema,
    params: list[Schema] | None = None,
    body: Schema | None = None,
    tag: str = "messages",
) -> Schema:
    op: Schema = {"summary": summary, "tags": [tag], "responses": responses}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": False, "content": {"application/json": {"schema": body}}}
    return op


_OK = {"200": {"description": "done", "content": {"text/plain": {"schema": {"const": "ok"}}}}}
_ANY = {"200": _json({"type": "object"})}
_ANY_LIST = {"200": _json(_arr({"type": "object"}))}
_RECIPIENT = _param("recipient", "query", "only this recipient")
_HOST = _param("name", "path", "host name")
def _text(description: str) -> Schema:
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


_404 = {"404": _text("no such message: 404 page not found")}
_SEARCH_ERRORS = {
    "400": _text("a query that cannot be read, named (nothing was changed)"),
    "503": _text("the search ran over its time budget (2 s): narrow it"),
}


def _bytes(media: str, description: str) -> Schema:
    return {
        "description": description,
        "content": {media: {"schema": {"type": "string", "format": "binary"}}},
    }


DOCS: dict[str, Schema] = {
    "/api/v1/messages": {
        "get": _op("List messages, newest first", {"200": _json(_ref("MessagesPage"))}, [_START, _LIMIT, _MAILBOX]),
        "delete": _op("Delete these messages (no IDs: all)", _OK, body=_ref("IDs")),
        "put": _op(
            "Mark messages read or unread: by IDs, by Search, or all (of ?mailbox=)",
            {**_OK, **_SEARCH_ERRORS},
            [_TZ, _MAILBOX],
            body=_ref("ReadState"),
        ),
    },
    "/api/v1/search": {
        "get": _op(
            "Search", {"200": _json(_ref("MessagesPage")), **_SEARCH_ERRORS}, [_QUERY, _START, _LIMIT, _TZ, _MAILBOX]
        ),
        "delete": _op("Delete every message matching a search", {**_OK, **_SEARCH_ERRORS}, [_QUERY, _TZ, _MAILBOX]),
    },
    "/api/v1/message/{ID}": {
        "get": _op("One message, parsed; marks it read", {"200": _json(_ref("Message")), **_404}, [_ID])
    },
    "/api/v1/message/{ID}/raw": {
        "get": _op(
            "The message source as received",
            {"200": _bytes("text/plain", "the raw message (message/rfc822 with dl=1)"), **_404},
            [_ID, _param("dl", "query", "1: download as an .eml attachment")],
        )
    },
    "/api/v1/message/{ID}/headers": {
        "get": _op(
            "Headers: Go's canonical keys (Message-Id), every value, as sent; keys alphabetical",
            {"200": _json({"type": "object", "additionalProperties": _arr(_S)}), **_404},
            [_ID],
        )
    },
    "/api/v1/message/{ID}/part/{PartID}": {
        "get": _op(
            "One MIME part, decoded (attachments, inline images)",
            {"200": _bytes("application/octet-stream", "the part with its own Content-Type"), **_404},
            [_ID, _param("PartID", "path", 'section number, e.g. "2" or "1.2"')],
        )
    },
    "/api/v1/message/{ID}/part/{PartID}/thumb": {
        "get": _op(
            "A 180x120 JPEG thumbnail of an image part (a blank one for anything else)",
            {"200": _bytes("image/jpeg", "the thumbnail"), **_404},
            [_ID, _param("PartID", "path", 'section number, e.g. "2" or "1.2"')],
        )
    },
    "/api/sandbox/message/{ID}/trace": {
        "get": _op(
            "Relay delivery attempts for a message (extra)",
            {"200": _json(_arr(_ref("Attempt"))), **_404},
            [_ID],
            tag="relay",
        )
    },
    "/api/v1/message/{ID}/trace": {
        "get": {
            **_op(
                "Relay delivery attempts for a message: the old path of /api/sandbox/message/{ID}/trace",
                {"200": _json(_arr(_ref("Attempt"))), **_404},
                [_ID],
                tag="relay",
            ),
            "deprecated": True,
        }
    },
    "/api/v1/info": {"get": _op("Version, counts, listeners", {"200": _json({"type": "object"})}, tag="server")},
    "/api/v1/webui": {
        "get": _op("Mailpit's web UI configuration", {"200": _json(_ref("WebUIConfiguration"))}, tag="server")
    },
    "/api/v1/tags": {
        "get": _op("Every tag in use, sorted case-insensitively", {"200": _json(_arr(_S))}, tag="tags"),
        "put": _op(
            "Set these messages' tags (replacing theirs; an empty list removes them); names are cleaned",
            {**_OK, "400": _text("IDs or Tags not a list of strings, or malformed JSON")},
            body=_obj(required=False, IDs=_arr(_S), Tags=_arr(_S)),
            tag="tags",
        ),
    },
    "/api/v1/tags/{Tag}": {
        "put": _op(
            "Rename a tag on every message that has it",
            {**_OK, "400": _text("invalid tag name: X, tag not found: X or tag already exists: X")},
            [_param("Tag", "path", "the tag, URL-encoded")],
            body=_obj(required=False, Name=_S),
            tag="tags",
        ),
        "delete": _op(
            "Take a tag off every message (the messages stay)",
            {**_OK, "400": _text("tag not found: X")},
            [_param("Tag", "path", "the tag, URL-encoded")],
            tag="tags",
        ),
    },
    "/api/v1/send": {
        "post": _op(
            "Send a message (Mailpit's JSON), captured as SMTP mail is; ID is empty for an ignored duplicate",
            {
                "200": _json(_obj(ID=_S)),
                "400": _json(_ref("Error"), "bad JSON, base64 or address; a missing From; a restricted header"),
                "413": _json(_ref("Error"), "over the message size limit"),
            },
            body=_obj(
                required=False,
                From=_obj(required=False, Email=_S, Name=_S),
                To=_arr(_obj(required=False, Email=_S, Name=_S)),
                Cc=_arr(_obj(required=False, Email=_S, Name=_S)),
                Bcc=_arr(_S),
                ReplyTo=_arr(_obj(required=False, Email=_S, Name=_S)),
                Subject=_S,
                Text=_S,
                HTML=_S,
                Attachments=_arr(_obj(required=False, Content=_S, Filename=_S, ContentType=_S, ContentID=_S)),
                Headers={"type": "object", "additionalProperties": _S},
                Tags=_arr(_S),
            ),
        )
    },
    "/view/{ID}.html": {
        "get": _op(
            "The HTML body for an iframe, under a CSP sandbox; remote resources removed unless remote=1",
            {
                "200": {
                    "description": "text/html; the X-Blocked-Remote header counts what was removed",
                    "headers": {"X-Blocked-Remote": {"schema": _I}},
                    "content": {"text/html": {"schema": _S}},
                },
                **_404,
            },
            [
                _ID,
                _param("remote", "query", "1: allow remote images, styles and fonts"),
                _param("embed", "query", '1: every link gets target="_blank" rel="noreferrer noopener"'),
            ],
            tag="view",
        )
    },
    "/view/{ID}.txt": {
        "get": _op("The plain-text body", {"200": _bytes("text/plain", "text"), **_404}, [_ID], tag="view")
    },
    "/api/sandbox/mailboxes": {
        "get": _op("Recipient mailboxes with counts", {"200": _json(_arr(_ref("Mailbox")))}, tag="sandbox")
    },
    "/view/latest": {
        "get": _op(
            "Redirect (302) to the newest message (matching ?query=) in the UI",
            {"302": {"description": "to /view/{ID}"}},
            [_param("query", "query", "a search")],
            tag="view",
        )
    },
    "/view/{ID}": {
        "get": _op("Redirect (302) to the UI showing this message", {"302": {"description": "to /#id=ID"}}, [_ID],
                   tag="view")
    },
    "/api/sandbox/message/{ID}/preview": {
        "get": _op("What the HTML preview blocks", {"200": _json(_ref("PreviewInfo")), **_404}, [_ID], tag="view")
    },
    "/api/sandbox/message/{ID}/auth": {
        "get": _op(
            "SPF, DKIM, DMARC and ARC as checked on arrival against the fake DNS (checked now if not yet)",
            {"200": _json(_ref("AuthResults")), **_404, "503": _json(_ref("Error"), "the checks are busy")},
            [_ID, _param("mailbox", "query", "the copy this address received, after the relay's hops")],
            tag="sandbox",
        )
    },
    "/api/sandbox/reset": {
        "post": _op("Empty every mailbox; reset queue, faults, DNS edits and clock", _OK, tag="sandbox")
    },
    "/api/sandbox/openapi.json": {"get": _op("This document", {"200": _json({"type": "object"})}, tag="server")},
    "/api/v1/swagger.json": {
        "get": _op("This document, where Mailpit serves its own", {"200": _json({"type": "object"})}, tag="server")
    },
    "/api/events": {
        "get": _op(
            "Live events (WebSocket upgrade). Each frame is an Event; see components.schemas.Event",
            {
                "101": {
                    "description": "switching protocols",
                    "content": {"application/json": {"schema": _ref("Event")}},
                }
            },
            tag="events",
        )
    },
    "/api/v1/message/{ID}/release": {
        "post": _op(
            "Release (relay) a captured message to real recipients through the configured upstream",
            {**_OK, **_404, "400": _text("Failed: ... (allow-list) or SMTP error: ...")},
            [_ID],
            body=_obj(To=_arr(_S)),
            tag="relay",
        )
    },
    "/api/sandbox/queue": {"get": _op("Deferred recipients, soonest retry first", _ANY_LIST, tag="relay")},
    "/api/sandbox/queue/{ID}/retry": {"post": _op("Retry a queued message now", _ANY, [_ID, _RECIPIENT], tag="relay")},
    "/api/sandbox/queue/{ID}": {
        "delete": _op("Drop a queued message without a bounce", _ANY, [_ID, _RECIPIENT], tag="relay")
    },
    "/api/sandbox/clock": {
        "get": _op("The sandbox clock, its offset and the next retry", _ANY, tag="relay"),
        "post": _op(
            'Move the clock: {"advance": seconds} or {"next_retry": true}',
            _ANY,
            body=_obj(required=False, advance={"type": "number"}, next_retry=_B),
            tag="relay",
        ),
    },
    "/api/sandbox/dns/records": {
        "get": _op("Every record of the fake DNS", _ANY_LIST, tag="dns"),
        "post": _op("Add records", {"201": _json(_arr(_ref("DnsRecord")))}, body=_ref("DnsRecord"), tag="dns"),
        "delete": _op("Remove records (JSON body or query)", _ANY, body=_ref("DnsRecord"), tag="dns"),
    },
    "/metrics": {
        "get": _op(
            "Prometheus metrics (--enable-prometheus true; or alone on --enable-prometheus HOST:PORT)",
            {
                "200": _text("the text exposition format, or OpenMetrics when the Accept header asks for it"),
                "503": _text("the collector is busy or the store is closing"),
            },
            tag="server",
        )
    },
    "/api/v1/chaos": {
        "get": _op("Mailpit's chaos triggers (400 unless --enable-chaos)", {
            "200": _json(_ref("ChaosTriggers")), "400": _text("Chaos is not enabled")}, tag="chaos"),
        "put": _op("Set Mailpit's chaos triggers; those left out go back to their defaults", {
            "200": _json(_ref("ChaosTriggers")), "400": _text("not enabled, or a bad code or probability")},
            body=_ref("ChaosTriggers"), tag="chaos"),
    },
    "/api/sandbox/chaos": {
        "get": _op("Chaos: Mailpit's triggers, our rules and rate limits", {"200": _json(_ref("Chaos"))},
                   tag="chaos"),
        "put": _op("Replace the rules and rate limits (and the triggers, when given)", {
            "200": _json(_ref("Chaos")), "400": _json(_ref("Error"), "not enabled, or a bad rule (nothing changed)")},
            body=_ref("Chaos"), tag="chaos"),
        "delete": _op("Every rule, rate limit and trigger off", {"200": _json(_ref("Chaos"))}, tag="chaos"),
    },
    "/api/sandbox/hosts": {"get": _op("Simulated MTA behaviours by host", _ANY, tag="relay")},
    "/api/sandbox/hosts/{name}": {
        "get": _op("One host's behaviour", _ANY, [_HOST], tag="relay"),
        "put": _op(
            "Set a host's behaviour (down, tempfail, reject, greylist, ...)",
            _ANY,
            [_HOST],
            body={"type": "object"},
            tag="relay",
        ),
        "delete": _op("Remove a host's behaviour", _ANY, [_HOST], tag="relay"),
    },
    "/livez": {"get": _op("Liveness", {"200": _bytes("text/plain", "ok")}, tag="server")},
    "/readyz": {
        "get": _op(
            "Readiness: a query through the store",
            {"200": _bytes("text/plain", "ok"), "503": _text("the store does not answer")},
            tag="server",
        )
    },
    "/api/v1/message/{ID}/html-check": {
        "get": _op(
            "HTML compatibility against the caniemail.com tables (Mailpit's HTML check)",
            {"200": _json(_ref("HTMLCheckResponse")), "400": _json(_ref("Error"), "no HTML part"), **_404},
            [_ID],
            tag="checks",
        )
    },
    "/api/sandbox/message/{ID}/html-check": {
        "get": _op(
            "The HTML check, each warning with Places ([{Line, Text}]: the source lines using it) (extra)",
            {"200": _json(_ref("HTMLCheckResponse")), "400": _json(_ref("Error"), "no HTML part"), **_404},
            [_ID],
            tag="checks",
        )
    },
    "/api/v1/message/{ID}/link-check": {
        "get": _op(
            "HEAD status of every link and image URL; internal addresses answer 451 unless"
            " --allow-internal-http-requests",
            {"200": _json(_ref("LinkCheckResponse")), **_404},
            [_ID, _param("follow", "query", "true or 1: follow up to 3 redirects, each checked again")],
            tag="checks",
        )
    },
    "/api/v1/message/{ID}/sa-check": {
        "get": _op(
            "SpamAssassin's score and rules from spamd (--spamassassin HOST:PORT); 404 when not configured",
            {"200": _json(_ref("SpamAssassinResponse")), **_404},
            [_ID],
            tag="checks",
        )
    },
}


# The table's path parameters, named as Mailpit's document names them.
_PARAM_NAMES = {"id": "ID", "part": "PartID", "tag": "Tag"}


def doc_path(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: "{" + _PARAM_NAMES.get(m.group(1), m.group(1)) + "}", path)


def success(shape: str) -> tuple[str, Schema]:
    """(status, response) of a table line's shape."""
    kind, _, named = shape.partition(":")
    if kind in KINDS and kind not in ("created", "ws"):
        status, media = KINDS[kind]
        if kind == "redirect":
            return str(status), {"description": "a redirect (Location)"}
        schema: Schema = {"const": "ok"} if kind == "ok" else {"type": "string", "format": "binary"}
        return str(status), {"description": "OK", "content": {media: {"schema": schema}}}
    status = KINDS[kind][0] if named else 200
    name = named or shape
    body = _arr(_ref(name[1:-1])) if name.startswith("[") else _ref(name)
    return str(status), _json(body)


def _operation(line: Line) -> Schema:
    path, method = doc_path(line.path), "get" if line.method == "WS" else line.method.lower()
    prose = DOCS.get(path, {}).get(method)
    if prose is None:
        raise KeyError(f"{line.method} {line.path}: no prose in web/openapi.py DOCS")
    op: Schema = copy.deepcopy(prose)
    status, response = success(line.shape)
    responses = {k: v for k, v in op["responses"].items() if not k.startswith(("1", "2", "3"))}
    description = next((v.get("description") for k, v in op["responses"].items() if k[0] in "123"), None)
    if description:
        response["description"] = description
    op["responses"] = {status: response, **responses}
    return op


def paths(table: tuple[Line, ...] = TABLE) -> dict[str, Schema]:
    out: dict[str, Schema] = {}
    for line in table:
        if documented(line):
            method = "get" if line.method == "WS" else line.method.lower()
            out.setdefault(doc_path(line.path), {})[method] = _operation(line)
    return out


def document(version: str = "0") -> dict[str, Any]:
    """The whole document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Mailsandbox API",
            "version": version,
            "description": (
                "Mailpit-compatible API v1 plus Mailsandbox extras under /api/sandbox. Errors on Mailpit's"
                " routes are its plain text (400 with the reason, 404 page not found); on our extras JSON"
                ' {"Error": "..."}. Any route: 413 for a request body over twice the message size limit'
                " plus 1 MiB, 431 for a request head over 16 KiB, 503 for a connection over the limits"
                " (--max-connections, --max-connections-per-client)."
            ),
        },
        "paths": paths(),
        "components": {"schemas": SHAPES},
    }


class OpenApi:
    """The "openapi" group of web/routes.py: the document, rendered once."""

    def __init__(self) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            ours = version("mailsandbox")
        except PackageNotFoundError:
            ours = "0"
        self._body = JSONResponse(document(ours)).body

    async def serve(self, request: Request) -> Response:
        return Response(self._body, media_type="application/json")
