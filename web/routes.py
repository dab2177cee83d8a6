"""The whole HTTP route table, one line a route, as Mailpit's server.go has it.

Each line is (method, path, handler, shape): `handler` is "group.attribute", where a group is one object
holding its collaborators (`Api`, `CheckApi`, `RelayApi`, ...) that `create_app` and the composition root
build; `shape` names the success answer: a schema of `web/schema.py`'s SHAPES ("Message"), a list of
one ("[Attempt]"), or one of KINDS (plain "ok", bytes of a media type, a redirect, a WebSocket).
`web/openapi.py` generates the document from this table and those shapes, so adding a route is adding a
line here (and its prose in openapi.DOCS); tests/web/test_openapi.py checks that every line is served,
documented, and that real answers validate against the document.

Order matters where paths overlap: /view/{id}.html before /view/{id}.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

# A success answer that is not a JSON schema: its status and content.
KINDS: dict[str, tuple[int, str]] = {
    "ok": (200, "text/plain"),  # the two letters, as Mailpit answers
    "text": (200, "text/plain"),
    "html": (200, "text/html"),
    "eml": (200, "text/plain"),  # message/rfc822 with ?dl=1
    "part": (200, "application/octet-stream"),  # the part's own Content-Type
    "jpeg": (200, "image/jpeg"),
    "redirect": (302, ""),
    "created": (201, "application/json"),  # with the shape after it: "created:[DnsRecord]"
    "ws": (101, "application/json"),  # WebSocket frames of the shape after it: "ws:Event"
    "mount": (200, ""),  # static files, not in the document
}


@dataclass(frozen=True)
class Line:
    method: str  # GET, POST, PUT, DELETE; WS for a WebSocket; MOUNT for a static folder
    path: str
    handler: str  # "group.attribute"
    shape: str


R = Line
TABLE: tuple[Line, ...] = (
    # Mailpit's API v1: messages
    R("GET", "/api/v1/messages", "api.list_messages", "MessagesPage"),
    R("DELETE", "/api/v1/messages", "api.delete_messages", "ok"),
    R("PUT", "/api/v1/messages", "api.set_read", "ok"),
    R("GET", "/api/v1/search", "api.search", "MessagesPage"),
    R("DELETE", "/api/v1/search", "api.delete_search", "ok"),
    R("GET", "/api/v1/message/{id}", "api.get_message", "Message"),
    R("GET", "/api/v1/message/{id}/raw", "api.raw", "eml"),
    R("GET", "/api/v1/message/{id}/headers", "api.headers", "Headers"),
    R("GET", "/api/v1/message/{id}/part/{part}", "api.part", "part"),
    R("GET", "/api/v1/message/{id}/part/{part}/thumb", "api.thumb", "jpeg"),
    R("GET", "/api/v1/message/{id}/html-check", "checks.html_check", "HTMLCheckResponse"),
    R("GET", "/api/v1/message/{id}/link-check", "checks.link_check", "LinkCheckResponse"),
    R("GET", "/api/v1/message/{id}/sa-check", "checks.sa_check", "SpamAssassinResponse"),
    R("GET", "/api/v1/message/{id}/trace", "relay.trace", "[Attempt]"),  # the old path of the next line
    R("POST", "/api/v1/message/{id}/release", "relay.release", "ok"),
    R("POST", "/api/v1/send", "send.send", "SendConfirmation"),
    # Mailpit's API v1: tags
    R("GET", "/api/v1/tags", "api.get_tags", "TagList"),
    R("PUT", "/api/v1/tags", "api.set_tags", "ok"),
    R("PUT", "/api/v1/tags/{tag}", "api.rename_tag", "ok"),
    R("DELETE", "/api/v1/tags/{tag}", "api.delete_tag", "ok"),
    # Mailpit's API v1: chaos on the capture server (and ours, with rules and rate limits)
    R("GET", "/api/v1/chaos", "chaos.get_mailpit", "ChaosTriggers"),
    R("PUT", "/api/v1/chaos", "chaos.put_mailpit", "ChaosTriggers"),
    R("GET", "/api/sandbox/chaos", "chaos.get_ours", "Chaos"),
    R("PUT", "/api/sandbox/chaos", "chaos.put_ours", "Chaos"),
    R("DELETE", "/api/sandbox/chaos", "chaos.delete_ours", "Chaos"),
    # Mailpit's API v1: the application
    R("GET", "/api/v1/info", "api.info", "Info"),
    R("GET", "/api/v1/webui", "api.webui", "WebUIConfiguration"),
    R("GET", "/api/v1/swagger.json", "openapi.serve", "OpenAPI"),
    R("GET", "/livez", "api.live", "text"),
    R("GET", "/readyz", "api.ready", "text"),
    R("GET", "/metrics", "metrics.metrics", "text"),  # Prometheus' text format (or OpenMetrics)
    # our extras
    R("GET", "/api/sandbox/mailboxes", "api.mailboxes", "[Mailbox]"),
    R("POST", "/api/sandbox/reset", "api.reset", "ok"),
    R("GET", "/api/sandbox/openapi.json", "openapi.serve", "OpenAPI"),
    R("GET", "/api/sandbox/message/{id}/html-check", "checks.html_places", "HTMLCheckPlaces"),
    R("GET", "/api/sandbox/message/{id}/auth", "auth.message_auth", "AuthResults"),
    R("GET", "/api/sandbox/message/{id}/trace", "relay.trace", "[Attempt]"),
    R("GET", "/api/sandbox/message/{id}/preview", "preview.info", "PreviewInfo"),
    R("GET", "/api/sandbox/queue", "relay.queue", "[QueueItem]"),
    R("POST", "/api/sandbox/queue/{id}/retry", "relay.retry", "Retried"),
    R("DELETE", "/api/sandbox/queue/{id}", "relay.drop", "Dropped"),
    R("GET", "/api/sandbox/clock", "relay.get_clock", "Clock"),
    R("POST", "/api/sandbox/clock", "relay.set_clock", "Clock"),
    R("GET", "/api/sandbox/dns/records", "relay.records", "[DnsRecord]"),
    R("POST", "/api/sandbox/dns/records", "relay.add_records", "created:[DnsRecord]"),
    R("DELETE", "/api/sandbox/dns/records", "relay.remove_records", "RemovedRecords"),
    R("GET", "/api/sandbox/hosts", "relay.list_hosts", "Hosts"),
    R("GET", "/api/sandbox/hosts/{name}", "relay.get_host", "Host"),
    R("PUT", "/api/sandbox/hosts/{name}", "relay.put_host", "Host"),
    R("DELETE", "/api/sandbox/hosts/{name}", "relay.delete_host", "RemovedHost"),
    R("WS", "/api/events", "events.endpoint", "ws:Event"),
    # the UI: the safe preview, Mailpit's /view/ addresses, the page and its assets
    R("GET", "/view/{id}.html", "preview.html", "html"),
    R("GET", "/view/{id}.txt", "preview.text", "text"),
    R("GET", "/view/latest", "preview.latest", "redirect"),
    R("GET", "/view/{id}", "preview.page", "redirect"),
    R("GET", "/", "ui.index", "html"),
    R("MOUNT", "/static", "ui.static", "mount"),
)  # fmt: skip


def documented(line: Line) -> bool:
    """Whether the OpenAPI document lists the line (the page and its assets are not API)."""
    return line.method != "MOUNT" and line.path != "/"


def _handler(groups: Mapping[str, object], name: str) -> Callable[..., Any]:
    group_name, attribute = name.split(".")
    group = groups[group_name]
    handler: Callable[..., Any] = getattr(group, attribute)
    wrap = getattr(group, "wrap", None)  # a group's own error handling around each handler (RelayApi's)
    return wrap(handler) if callable(wrap) else handler


def build(groups: Mapping[str, object], table: tuple[Line, ...] = TABLE) -> list[BaseRoute]:
    """Starlette routes for every line whose group was handed in. GET answers HEAD too (Starlette)."""
    routes: list[BaseRoute] = []
    for line in table:
        if line.handler.split(".")[0] not in groups:
            continue
        handler = _handler(groups, line.handler)
        if line.method == "WS":
            routes.append(WebSocketRoute(line.path, handler))
        elif line.method == "MOUNT":
            routes.append(Mount(line.path, app=handler, name="static"))
        else:
            routes.append(Route(line.path, handler, methods=[line.method]))
    return routes
