"""Safe preview of hostile mail HTML: /view/{ID}.html and /view/{ID}.txt under a CSP sandbox.

Two independent barriers keep message HTML away from the UI and its API: the UI's iframe carries
`sandbox` without allow-scripts / allow-same-origin, and this response carries its own CSP `sandbox`
plus `default-src 'none'`, so the page is inert even when opened directly. Remote images, styles
and fonts are removed (and counted) unless the request says ?remote=1; `cid:` references are
rewritten to this message's parts.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute

from mailsandbox import mime
from mailsandbox.html_tokens import Kind, Token, ascii_lower, attributes, tokens
from mailsandbox.store import NoSuchMessage, Store
from mailsandbox.store._search import QueryTooSlow
from mailsandbox.web.routes import build

# Attributes whose value is a URL the browser fetches by itself when the page renders.
_FETCH_ATTRS = {"src", "background", "poster", "lowsrc", "dynsrc", "data", "profile", "longdesc"}
_HREF_FETCH_TAGS = {"link", "image", "use", "feimage"}  # an href these tags load without a click
_SRCSET_ATTRS = {"srcset", "imagesrcset"}
# CSS url() and @import, after CSS Syntax §4.3.6 (url token) and §4.3.5 (string): possessive, so a value
# that never closes ends at the end of the text in one step (a browser closes it there too).
_CSS_URL = re.compile(r"""url\(\s*+("[^"\n]*+"?|'[^'\n]*+'?|[^)\s"']*+)\s*+\)?""", re.I)
_CSS_IMPORT = re.compile(r"""@import\s*+("[^"\n]*+"?|'[^'\n]*+'?)""", re.I)
_CSS_ESCAPE = re.compile(r"\\(?:([0-9a-fA-F]{1,6})[ \t\n\r\f]?|(.))", re.S)
_SRCDOC_DEPTH = 2  # an iframe's srcdoc is a document of its own; deeper ones are dropped, not rewritten
_URL_NOISE = re.compile(r"[\t\n\r]")  # browsers drop these inside URLs (WHATWG URL parser)
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")


@dataclass
class Rewrite:
    """The outcome of preparing one message's HTML: what was blocked, from where."""

    allow_remote: bool
    cids: dict[str, str]  # Content-ID -> our part URL
    embed: bool = False  # Mailpit's ?embed=1: every <a> gets target="_blank" rel="noreferrer noopener"
    blocked: int = 0
    hosts: set[str] = field(default_factory=set)

    def url(self, value: str) -> str | None:
        """The value to keep for a fetched URL, or None to drop it."""
        clean = _URL_NOISE.sub("", html.unescape(value)).strip().replace("\\", "/")
        lowered = clean.lower()
        if lowered.startswith("cid:"):
            return self.cids.get(clean[4:].strip("<>"), value)
        scheme = _SCHEME.match(clean)
        web = scheme is not None and scheme.group(1).lower() in ("http", "https")
        remote = web or clean.startswith("//")
        if not remote:
            # data:, relative paths and other schemes cannot reach the network past the CSP.
            return value if lowered.startswith("data:") or scheme is None else None
        if self.allow_remote:
            return value
        self.blocked += 1
        host = urlsplit(clean if scheme else "http:" + clean).hostname
        if host:
            self.hosts.add(host)
        return None

    def css(self, text: str) -> str:
        def one(match: re.Match[str]) -> str:
            value = _css_value(match.group(1))
            kept = self.url(value)
            if kept == value:
                return match.group(0)
            # `none` is what an image-valued property takes for "no image"; it fetches nothing.
            return f'url("{kept}")' if kept is not None else "none"

        def imported(match: re.Match[str]) -> str:
            kept = self.url(_css_value(match.group(1)))
            return match.group(0) if kept is not None else ""

        return _CSS_URL.sub(one, _CSS_IMPORT.sub(imported, text))

    def srcset(self, value: str) -> str | None:
        kept: list[str] = []
        for candidate in html.unescape(value).split(","):
            pieces = candidate.strip().split(None, 1)
            if not pieces:
                continue
            url = self.url(pieces[0])
            if url is not None:
                kept.append(" ".join([url, *pieces[1:]]))
        return ", ".join(kept) if kept else None

    def tag(self, markup: str, token: Token, depth: int) -> str:
        """A start tag as the browser would see it, with what fetches by itself removed ("" drops it)."""
        name = token.name
        if name == "base":
            return ""  # ours sets the link target; a sender's base could retarget relative URLs
        attrs = attributes(markup, token)
        first: dict[str, str] = {}  # a browser keeps the first of duplicate attributes
        for attr in attrs:
            first.setdefault(attr.lname, attr.value or "")
        if name == "meta" and ascii_lower(html.unescape(first.get("http-equiv", ""))) == "refresh":
            # A refresh can send the frame to a tracking URL without any script.
            if not self.allow_remote:
                self.blocked += 1
            return ""
        out: list[str] = []
        link = self.embed and name == "a" and not token.foreign
        changed = link
        for attr in attrs:
            low, value = attr.lname, attr.value
            new: str | None = value
            if link and low in ("target", "rel"):
                continue  # set below, as Mailpit's embed does
            if low == "ping":
                new = None  # <a ping> reports clicks to a remote host
            elif value is None:
                pass
            elif low in _FETCH_ATTRS or (low in ("href", "xlink:href") and name in _HREF_FETCH_TAGS):
                new = self.url(value)
            elif low in _SRCSET_ATTRS:
                new = self.srcset(value)
            elif low == "style":
                new = self.css(html.unescape(value))
            elif low == "srcdoc" and name == "iframe":
                new = self.markup(html.unescape(value), depth + 1) if depth < _SRCDOC_DEPTH else None
            if new == value:
                out.append(markup[attr.start : attr.end])
            else:
                changed = True
                if new is not None:
                    out.append(f'{attr.name}="{html.escape(new)}"')
        if not changed:
            return markup[token.start : token.end]
        if link:
            out += ['target="_blank"', 'rel="noreferrer noopener"']
        start = markup[token.start : token.start + 1 + len(name)]
        return f"{start}{''.join(' ' + a for a in out)}{' /' if token.self_closing else ''}>"

    def markup(self, markup: str, depth: int = 0) -> str:
        """The rewritten markup (for a srcdoc: no <base> of ours)."""
        return "".join(self._pieces(markup, depth)[0])

    def _pieces(self, markup: str, depth: int) -> tuple[list[str], int]:
        parts: list[str] = []
        head_at: int | None = None  # where our <base> goes: after the first <head>,
        doctype_at = 0  # else after a leading doctype, else first
        leading = True  # only whitespace so far (a doctype may follow it)
        in_svg_style = False
        for token in tokens(markup):
            kind = token.kind
            source = markup[token.start : token.end]
            if kind is Kind.START:
                piece = self.tag(markup, token, depth)
                if not piece and parts and parts[-1].endswith("<"):
                    # "<" + "<base>" + "img ..." must not become a tag once <base> is gone.
                    parts[-1] = parts[-1][:-1] + "&lt;"
                parts.append(piece)
                if token.name == "head" and head_at is None and not token.foreign:
                    head_at = len(parts)
                in_svg_style = token.foreign and token.name == "style" and not token.self_closing
            elif (kind is Kind.RAW and token.name == "style") or (kind is Kind.TEXT and in_svg_style):
                parts.append(self.css(source))  # an SVG <style> is CSS too, read in the data state
            else:
                if kind is Kind.END:
                    in_svg_style = False
                parts.append(source)
                if leading and kind is Kind.OTHER and ascii_lower(source[:9]) == "<!doctype":
                    doctype_at = len(parts)
            leading = leading and kind is Kind.TEXT and not source.strip()
        return parts, doctype_at if head_at is None else head_at

    def document(self, markup: str) -> str:
        parts, at = self._pieces(markup, 0)
        # Links open in a new tab (the iframe may not navigate its parent).
        parts.insert(at, '<base target="_blank">')
        return "".join(parts)


def _css_value(raw: str) -> str:
    """A url() or @import value without its quotes, CSS escapes decoded (CSS Syntax §4.3.7)."""
    if raw[:1] in ("'", '"'):
        raw = raw[1:-1] if len(raw) > 1 and raw[-1] == raw[0] else raw[1:]
    return _CSS_ESCAPE.sub(_css_unescape, raw) if "\\" in raw else raw


def _css_unescape(match: re.Match[str]) -> str:
    if match.group(1) is None:
        return match.group(2)
    code = int(match.group(1), 16)
    return chr(code) if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else "\ufffd"


def part_url(message_id: str, part_id: str) -> str:
    return f"/api/v1/message/{message_id}/part/{part_id}"


def rewrite_html(
    markup: str, message_id: str, cids: dict[str, str], allow_remote: bool, embed: bool = False
) -> tuple[str, Rewrite]:
    """The sender's HTML made safe to show: `cids` maps Content-ID -> part ID of this message."""
    rewrite = Rewrite(allow_remote, {cid: part_url(message_id, pid) for cid, pid in cids.items()}, embed)
    return rewrite.document(markup), rewrite


def preview_csp(origin: str | None, message_id: str, allow_remote: bool) -> str:
    """The preview's own policy: a sandbox with no scripts, no same-origin, no forms, nothing remote.
    Images may come only from this message's parts (`origin` None: from 'self')."""
    remote = " http: https:" if allow_remote else ""
    parts = f"{origin}{part_url(message_id, '')}" if origin else "'self'"
    return "; ".join(
        [
            # CSP3 §6.3.2.6: a sandbox without allow-scripts / allow-same-origin; links may open tabs.
            "sandbox allow-popups allow-popups-to-escape-sandbox",
            "default-src 'none'",
            f"img-src data: cid: {parts}{remote}",
            f"style-src 'unsafe-inline'{remote}",
            f"font-src data:{remote}",
            f"media-src data:{remote}",
            "form-action 'none'",
            "base-uri 'none'",
            "frame-ancestors 'self'",
        ]
    )


_PLAIN_CSP = "sandbox; default-src 'none'; frame-ancestors 'self'"


@dataclass(frozen=True)
class Prepared:
    html: str | None
    text: str
    blocked: int
    hosts: tuple[str, ...]


def prepare(
    raw: bytes, message_id: str, allow_remote: bool, want_text: bool = True, embed: bool = False
) -> Prepared:
    parsed = mime.parse(raw)
    markup: str | None = None
    blocked = 0
    hosts: tuple[str, ...] = ()
    if parsed.html:
        cids = {p.content_id: p.part_id for p in [*parsed.inline, *parsed.attachments] if p.content_id}
        markup, rewrite = rewrite_html(parsed.html, message_id, cids, allow_remote, embed)
        blocked, hosts = rewrite.blocked, tuple(sorted(rewrite.hosts))
    text = ""
    if want_text:
        text = parsed.display_text()
    return Prepared(markup, text, blocked, hosts)


# Renders at once: each is CPU work holding the GIL in turns with the event loop, so more threads than
# cores would only make the loop wait longer for its turn.
RENDER_THREADS = 2


class Preview:
    """The preview endpoints over a Store (the "preview" group of web/routes.py)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._renders: anyio.CapacityLimiter | None = None  # made on the app's own loop, at first use

    def _prepare(
        self, key: str, allow_remote: bool, want_text: bool, embed: bool = False
    ) -> tuple[str, Prepared] | None:
        message = self._store.get(key)
        if message is None:
            return None
        try:
            raw = self._store.raw(message.id)
        except NoSuchMessage:
            return None
        return message.id, prepare(raw, message.id, allow_remote, want_text, embed)

    async def _load(
        self, request: Request, allow_remote: bool, want_text: bool = True, embed: bool = False
    ) -> tuple[str, Prepared] | Response:
        # Reading and parsing a large message is blocking work: off the loop the SMTP server shares.
        key = request.path_params["id"]
        loaded = await anyio.to_thread.run_sync(
            self._prepare, key, allow_remote, want_text, embed, limiter=self._limiter()
        )
        if loaded is None:
            return PlainTextResponse("Message not found", status_code=404)  # Mailpit's words
        return loaded

    async def html(self, request: Request) -> Response:
        allow_remote = request.query_params.get("remote", "") in ("1", "true", "yes")
        embed = request.query_params.get("embed") == "1"
        loaded = await self._load(request, allow_remote, want_text=False, embed=embed)
        if isinstance(loaded, Response):
            return loaded
        message_id, prepared = loaded
        headers = {
            "Content-Security-Policy": preview_csp(_origin(request), message_id, allow_remote),
            "X-Blocked-Remote": str(prepared.blocked),
            "Cache-Control": "no-cache",
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
        }
        if prepared.html is None:
            return PlainTextResponse("This message does not contain a HTML part", status_code=404, headers=headers)
        return Response(prepared.html, media_type="text/html; charset=utf-8", headers=headers)

    async def text(self, request: Request) -> Response:
        loaded = await self._load(request, False)
        if isinstance(loaded, Response):
            return loaded
        headers = {"Content-Security-Policy": _PLAIN_CSP, "X-Content-Type-Options": "nosniff"}
        return PlainTextResponse(loaded[1].text, headers=headers)

    def _latest(self, query: str) -> str | None:
        page = self._store.search(query, 0, 1) if query else self._store.list(0, 1)
        return page.messages[0].id if page.messages else None

    async def latest(self, request: Request) -> Response:
        """GET /view/latest[?query=...]: Mailpit's redirect to the newest message (matching the search) in
        the UI, or to the UI when there is none."""
        query = request.query_params.get("query", "").strip()
        try:
            found = await anyio.to_thread.run_sync(self._latest, query, limiter=self._limiter())
        except (ValueError, QueryTooSlow) as exc:
            return PlainTextResponse(str(exc), status_code=400)
        return RedirectResponse(f"/view/{quote(found, safe='')}" if found else "/", status_code=302)

    async def page(self, request: Request) -> Response:
        """GET /view/{ID}: Mailpit's address of a message in the UI; ours keeps it in the fragment."""
        return RedirectResponse(f"/#id={quote(request.path_params['id'], safe='')}", status_code=302)

    def _limiter(self) -> anyio.CapacityLimiter:
        if self._renders is None:
            self._renders = anyio.CapacityLimiter(RENDER_THREADS)
        return self._renders

    async def info(self, request: Request) -> Response:
        """GET /api/sandbox/message/{ID}/preview: what the HTML preview blocked."""
        loaded = await self._load(request, False, want_text=False)
        if isinstance(loaded, Response):
            return loaded
        message_id, prepared = loaded
        return JSONResponse(
            {
                "ID": message_id,
                "HTML": prepared.html is not None,
                "RemoteBlocked": prepared.blocked,
                "RemoteHosts": list(prepared.hosts),
            }
        )


_HOST = re.compile(r"[A-Za-z0-9.:\[\]-]+")


def _origin(request: Request) -> str | None:
    # The Host the browser used, so the CSP's host-source matches the URLs it resolves; anything
    # odd in it (it lands inside a header value) falls back to 'self'.
    host = request.headers.get("host") or request.url.netloc
    if not _HOST.fullmatch(host):
        return None
    return f"{request.url.scheme}://{host}"


def preview_routes(store: Store) -> list[BaseRoute]:
    return build({"preview": Preview(store)})
