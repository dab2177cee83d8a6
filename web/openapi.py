"""The OpenAPI 3.1 document of the whole HTTP API, served at /api/sandbox/openapi.json."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

OPENAPI_PATH = "/api/sandbox/openapi.json"
SWAGGER_PATH = "/api/v1/swagger.json"  # where Mailpit serves its document: the same one

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: bool = True, **props: Schema) -> Schema:
    out: Schema = {"type": "object", "properties": props}
    if required:
        out["required"] = list(props)
    return out


def _arr(item: Schema) -> Schema:
    return {"type": "array", "items": item}


_S: Schema = {"type": "string"}
_I: Schema = {"type": "integer"}
_B: Schema = {"type": "boolean"}
_N: Schema = {"type": "number"}
_TIME: Schema = {"type": "string", "format": "date-time"}

SCHEMAS: dict[str, Schema] = {
    "WebUIConfiguration": _obj(
        Label=_S,
        MessageRelay=_obj(
            Enabled=_B,
            SMTPServer=_S,
            ReturnPath=_S,
            AllowedRecipients=_S,
            BlockedRecipients=_S,
            OverrideFrom=_S,
            PreserveMessageIDs=_B,
            RecipientAllowlist=_S,
        ),
        SpamAssassin=_B,
        ChaosEnabled=_B,
        DuplicatesIgnored=_B,
        HideDeleteAllButton=_B,
    ),
    "ChaosTrigger": _obj(ErrorCode=_I, Probability=_I),
    "ChaosTriggers": _obj(
        required=False, Sender=_ref("ChaosTrigger"), Recipient=_ref("ChaosTrigger"),
        Authentication=_ref("ChaosTrigger"),
    ),
    "Chaos": _obj(
        required=False,
        Enabled=_B,
        Triggers=_ref("ChaosTriggers"),
        Rules=_arr({"oneOf": [_S, _obj(required=False, Stage=_S, ErrorCode=_I, Text=_S, Every=_I, Sender=_S,
                                        Recipient=_S, Probability=_I, Delay=_N)]}),
        RateLimit=_obj(required=False, Messages=_I, Connections=_I),
        Stages=_arr(_S),
    ),
    "Address": _obj(Name=_S, Address=_S),
    "Envelope": _obj(
        MailFrom=_S,
        RcptTo=_arr(_S),
        Peer=_S,
        Helo=_S,
        TLS=_B,
        Auth={"type": ["string", "null"]},
        SMTPUTF8=_B,
        Body8Bit=_B,
    ),
    "MessageSummary": _obj(
        ID=_S,
        MessageID=_S,
        Read=_B,
        From={"oneOf": [_ref("Address"), {"type": "null"}]},
        To=_arr(_ref("Address")),
        Cc=_arr(_ref("Address")),
        Bcc=_arr(_ref("Address")),
        ReplyTo=_arr(_ref("Address")),
        Subject=_S,
        Created=_TIME,
        Username=_S,
        Tags=_arr(_S),
        Size=_I,
        Attachments={**_I, "description": "number of attachments"},
        Snippet=_S,
        Mailboxes={**_arr(_S), "description": "extra: the mailboxes (users) it was delivered to"},
    ),
    "MessagesPage": _obj(
        total={**_I, "description": "all messages in the store"},
        unread={**_I, "description": "unread messages in the store"},
        count={**_I, "description": "messages in this page"},
        messages_count={**_I, "description": "messages matching the search (or mailbox), before paging"},
        messages_unread={**_I, "description": "unread messages matching the search (or mailbox)"},
        start=_I,
        tags={**_arr(_S), "description": "every tag in the store"},
        messages=_arr(_ref("MessageSummary")),
    ),
    "Attachment": _obj(
        PartID=_S,
        FileName=_S,
        ContentType=_S,
        ContentID=_S,
        Size=_I,
        Checksums=_obj(MD5=_S, SHA1=_S, SHA256=_S),
    ),
    "Part": _obj(
        PartID=_S,
        ContentType=_S,
        FileName=_S,
        ContentID=_S,
        Disposition=_S,
        Size=_I,
        Parts=_arr(_ref("Part")),
    ),
    "Message": {
        "allOf": [
            _obj(
                ID=_S,
                MessageID=_S,
                From={"oneOf": [_ref("Address"), {"type": "null"}]},
                To=_arr(_ref("Address")),
                Cc=_arr(_ref("Address")),
                Bcc=_arr(_ref("Address")),
                ReplyTo=_arr(_ref("Address")),
                ReturnPath=_S,
                Subject=_S,
                Date=_TIME,
                Created=_TIME,
                Tags=_arr(_S),
                Text=_S,
                HTML=_S,
                Size=_I,
                Inline=_arr(_ref("Attachment")),
                Attachments=_arr(_ref("Attachment")),
                ListUnsubscribe=_obj(Header=_S, Links=_arr(_S), Errors=_S, HeaderPost=_S),
                Username=_S,
                Read=_B,
            ),
            _obj(
                required=False,
                Envelope={**_ref("Envelope"), "description": "extra: the SMTP envelope (Bcc shows here)"},
                Mailboxes=_arr(_S),
                Structure={"description": "extra: the MIME tree", "oneOf": [_ref("Part"), {"type": "null"}]},
            ),
        ]
    },
    "IDs": _obj(required=False, IDs={**_arr(_S), "description": "message IDs; empty or absent: all"}),
    "ReadState": _obj(
        required=False,
        IDs={**_arr(_S), "description": "message IDs; neither IDs nor Search: all"},
        Search={**_S, "description": "a search: only its matches change (not with IDs)"},
        Read={**_B, "description": "absent: false (unread), as in Mailpit"},
    ),
    "Mailbox": _obj(Mailbox=_S, Total=_I, Unread=_I),
    "PreviewInfo": _obj(ID=_S, HTML=_B, RemoteBlocked=_I, RemoteHosts=_arr(_S)),
    # RFC 8601 result words: pass, fail, softfail, neutral, none, temperror, permerror
    "AuthResults": _obj(
        SPF=_obj(Result=_S, Domain=_S, ClientIP=_S, Reason=_S),
        DKIM=_arr(_obj(Result=_S, Domain=_S, Selector=_S, Reason=_S)),
        DMARC=_obj(Result=_S, Policy=_S, Domain=_S, Reason=_S),
        ARC=_obj(Result=_S, Reason=_S),
        AuthenticationResults=_S,
    ),
    "Error": _obj(Error=_S),
    "DnsRecord": _obj(required=False, Name=_S, Type=_S, Value=_S, TTL=_I),
    "Attempt": _obj(
        Recipient=_S,
        Hop=_I,
        Host=_S,
        Preference={"type": ["integer", "null"]},
        Code=_I,
        Reply=_S,
        Status={"enum": ["accepted", "deferred", "rejected", "no-connection", "dropped"]},
        Time=_TIME,
        Timestamp={"type": "number"},
        Dialogue=_arr(_S),
    ),
    "Event": {
        "description": "One frame of the /api/events WebSocket.",
        "oneOf": [
            _obj(Type={"const": "new"}, Data=_ref("MessageSummary")),
            _obj(Type={"const": "delete"}, Data=_obj(ID=_S)),  # one frame per message
            _obj(Type={"const": "update"}, Data=_obj(ID=_S, Read=_B)),  # one frame per message changed
            _obj(Type={"enum": ["truncate", "prune"]}, Data={"type": "null"}),
            _obj(Type={"const": "stats"}, Data=_obj(Total=_I, Unread=_I, Version=_S)),
            _obj(
                Type={"const": "delivery"},
                Data=_obj(ID=_S, Recipient=_S, Host=_S, Code=_I, Status=_S),
            ),
        ],
    },
    # The message checks, Mailpit's shapes (HTMLCheckResponse, LinkCheckResponse, SpamAssassinResponse).
    "HTMLCheckResult": _obj(
        Name=_S, Platform=_S, Family=_S, Version=_S, Support={"enum": ["yes", "no", "partial"]}, NoteNumber=_S
    ),
    "HTMLCheckScore": _obj(Found=_I, Supported=_N, Partial=_N, Unsupported=_N),
    "HTMLCheckWarning": _obj(
        Slug=_S,
        Title=_S,
        Description=_S,
        URL=_S,
        Category=_S,
        Tags=_arr(_S),
        Keywords=_S,
        Results=_arr(_ref("HTMLCheckResult")),
        NotesByNumber={"type": "object", "additionalProperties": _S},
        Score=_ref("HTMLCheckScore"),
    ),
    "HTMLCheckTotal": _obj(Tests=_I, Nodes=_I, Supported=_N, Partial=_N, Unsupported=_N),
    "HTMLCheckResponse": _obj(
        Warnings=_arr(_ref("HTMLCheckWarning")),
        Platforms={"type": "object", "additionalProperties": _arr(_S)},
        Total=_ref("HTMLCheckTotal"),
    ),
    "LinkCheckLink": _obj(URL=_S, StatusCode=_I, Status=_S),
    "LinkCheckResponse": _obj(Errors=_I, Links=_arr(_ref("LinkCheckLink"))),
    "SpamAssassinRule": _obj(Score=_N, Name=_S, Description=_S),
    "SpamAssassinResponse": _obj(
        IsSpam=_B, Error=_S, Score=_N, Rules={"oneOf": [_arr(_ref("SpamAssassinRule")), {"type": "null"}]}
    ),
}


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


PATHS: dict[str, Schema] = {
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
    "/api/v1/message/{ID}/trace": {
        "get": _op(
            "Relay delivery attempts for a message (extra)",
            {"200": _json(_arr(_ref("Attempt"))), **_404},
            [_ID],
            tag="relay",
        )
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


def document(extra_paths: dict[str, Schema] | None = None, version: str = "0") -> dict[str, Any]:
    """The whole document; `extra_paths` lets optional parts (relay, DNS) describe their routes."""
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
        "paths": {**PATHS, **(extra_paths or {})},
        "components": {"schemas": SCHEMAS},
    }


def openapi_routes(extra_paths: dict[str, Schema] | None = None) -> list[Route]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("mailsandbox")
    except PackageNotFoundError:
        ours = "0"
    body = document(extra_paths, ours)

    async def serve(request: Request) -> Response:
        return JSONResponse(body)

    return [Route(OPENAPI_PATH, serve, methods=["GET"], name="openapi"), Route(SWAGGER_PATH, serve, methods=["GET"])]
