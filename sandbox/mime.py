"""MIME: raw bytes -> summary for listing, full structure on demand. Pure functions."""

from __future__ import annotations

import contextlib
import email
import email.base64mime
import email.parser
import email.policy
import email.quoprimime
import html as html_lib
import re
from dataclasses import dataclass, field
from email.header import make_header
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from typing import cast

from sandbox import _fastmime, html_tokens
from sandbox.html_tokens import Kind
from sandbox.models import Address, Summary

SNIPPET_CHARS = 250
_UNFOLD = re.compile(r"\r?\n(?=[ \t])")  # RFC 5322 §2.2.3


def decode_words(value: str | None) -> str:
    """RFC 2047 encoded-words -> text; never raises on junk."""
    if not value:
        return ""
    if "=?" not in value:
        return value  # no encoded-words: nothing to decode (the common case)
    try:
        return str(make_header(_decode_header(value)))
    except Exception:
        return str(value)


# email.header.ecre; searched only up to the last "?=", where its lazy part can still end.
_ENCODED_WORD = re.compile(r"=\?(?P<charset>[^?]*?)\?(?P<encoding>[qQbB])\?(?P<encoded>.*?)\?=", re.M)


def _decode_header(header: str) -> list[tuple[bytes | str, str | None]]:
    """email.header.decode_header in linear time: the stdlib's pops list heads, re-joins bytes and lets
    its lazy pattern rescan to the end of the line from every "=?" that no "?=" follows (quadratic
    on a long Subject of encoded words). Same steps, same result."""
    last = header.rfind("?=")
    if last == -1 or not _ENCODED_WORD.search(header, 0, last + 2):
        return [(header, None)]
    words: list[tuple[str, str | None, str | None]] = []  # (text, encoding, charset)
    for line in header.splitlines():
        last = line.rfind("?=")
        pos = 0
        for match in _ENCODED_WORD.finditer(line, 0, last + 2 if last != -1 else 0):
            unencoded = line[pos : match.start()]
            if pos == 0:
                unencoded = unencoded.lstrip()
            if unencoded:
                words.append((unencoded, None, None))
            words.append((match.group("encoded"), match.group("encoding").lower(), match.group("charset").lower()))
            pos = match.end()
        rest = line[pos:].lstrip() if pos == 0 else line[pos:]
        if rest:
            words.append((rest, None, None))
    # Whitespace between two encoded words goes (RFC 2047 §6.2).
    drop = {n - 1 for n, w in enumerate(words) if n > 1 and w[1] and words[n - 2][1] and words[n - 1][0].isspace()}
    collapsed: list[tuple[bytes | str, str | None]] = []
    run: list[bytes] = []
    run_charset: str | None = None
    for n, (text, encoding, charset) in enumerate(words):
        if n in drop:
            continue
        if encoding is None:
            word = text.encode("raw-unicode-escape")
        elif encoding == "q":
            word = email.quoprimime.header_decode(text).encode("raw-unicode-escape")
        else:
            word = email.base64mime.decode(text + "==="[: (4 - len(text) % 4) % 4])
        if run and charset != run_charset:
            collapsed.append(((b" " if run_charset is None else b"").join(run), run_charset))
            run = []
        run.append(word)
        run_charset = charset
    collapsed.append(((b" " if run_charset is None else b"").join(run), run_charset))
    return collapsed


def header_values(msg: Message, name: str) -> list[str]:
    """Raw header values as text: UTF-8 headers (RFC 6532) arrive as surrogate-escaped bytes."""
    lname = name.lower()
    return [_header_text(value) for key, value in msg.raw_items() if key.lower() == lname]


def _header_text(value: object) -> str:
    text = str(value)
    try:
        text = text.encode("ascii", "surrogateescape").decode("utf-8")
    except UnicodeError:
        text = text.encode("ascii", "surrogateescape").decode("latin-1")
    return _UNFOLD.sub("", text)


_ATOM_ADDR = (
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]++(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]++)*+@[A-Za-z0-9-]++(?:\.[A-Za-z0-9-]++)*+"
)
# Only plain ASCII shapes take the fast path; quotes, comments, groups and UTF-8 go to the stdlib parser.
# Possessive, and the name's spaces apart from the other whitespace: a run of spaces has one reading.
_SIMPLE_ADDR = re.compile(rf"(?:([A-Za-z0-9 ._'-]*+)\s*+<({_ATOM_ADDR})>|({_ATOM_ADDR}))")


def _simple_addresses(value: str) -> list[Address] | None:
    """The common shapes ("a@b", "Name <a@b>", comma lists) without the stdlib's general parser."""
    out = []
    for item in value.split(","):
        match = _SIMPLE_ADDR.fullmatch(item.strip())
        if match is None:
            return None
        name, angle, bare = match.groups()
        out.append(Address((name or "").strip(), angle or bare))
    return out


def addresses(values: list[str]) -> tuple[Address, ...]:
    if not values:
        return ()
    if len(values) == 1 and "=?" not in values[0]:
        simple = _simple_addresses(values[0])
        if simple is not None:
            return tuple(simple)
    out = []
    for name, addr in getaddresses([decode_words(v) if "=?" in v else v for v in values]):
        if addr or name:
            out.append(Address(decode_words(name), addr))
    return tuple(out)


# What a reader of the rendered HTML does not see, and what ends a line.
_HIDDEN_RAW = frozenset({"script", "style", "title", "iframe", "noembed", "noframes"})
_HEAD_CONTENT = frozenset({"title", "style", "script", "meta", "link", "base", "noscript", "template", "basefont"})
_LINE_ENDS = frozenset({"p", "div", "tr", "li", "br", *(f"h{i}" for i in range(10))})


def html_to_text(markup: str) -> str:
    """The text a reader sees: <head>, scripts and styles dropped, each tag a space, the ends of
    paragraphs, blocks and rows and each <br> a newline, character references decoded."""
    pieces: list[str] = []
    in_head = False
    head_possible = True  # a <head> after body content is ignored (HTML §13.2.6.4.7)
    hidden = ""  # the element whose content is dropped, while inside it
    for token in html_tokens.tokens(markup):
        kind, name = token.kind, token.name
        if kind is Kind.TEXT:
            text = markup[token.start : token.end]
            if in_head and text.strip(" \t\n\r\x0c"):
                in_head = False  # text ends the head; a browser shows it
            if not in_head:
                pieces.append(text)
                head_possible = head_possible and not text.strip()
        elif kind is Kind.RAW:
            if not in_head and name not in _HIDDEN_RAW:
                pieces.append(markup[token.start : token.end])
        elif kind is Kind.START:
            if in_head and name not in _HEAD_CONTENT:
                in_head = False
            if in_head:
                continue
            if name == "head" and head_possible:
                in_head, head_possible = True, False
            elif name not in ("html", "head"):
                head_possible = False
            if name in _HIDDEN_RAW and not token.foreign:
                hidden = name
            pieces.append("\n" if name == "br" else " ")
        elif kind is Kind.END:
            if in_head:
                in_head = name != "head"
            elif token.closes_raw and name == hidden:
                hidden = ""  # the dropped element with its tags counts as one space
            else:
                pieces.append("\n" if name in _LINE_ENDS else " ")
        elif kind is Kind.OTHER and not in_head:
            pieces.append(" ")
    return html_lib.unescape("".join(pieces))


def _payload_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        text = payload.decode(charset, errors="replace")
    except LookupError:  # unknown charset name
        text = payload.decode("utf-8", errors="replace")
    return text.replace("\r\n", "\n")  # for display; the raw source keeps its CRLFs


def _is_attachment(part: Message) -> bool:
    if part.is_multipart():
        return False
    disposition = (part.get("Content-Disposition") or "").split(";")[0].strip().lower()
    if disposition == "attachment":
        return True
    ctype = part.get_content_type()
    if ctype in ("text/plain", "text/html") and disposition != "attachment":
        return False
    return part.get_filename() is not None or disposition == "inline" or not ctype.startswith("text/")


@dataclass(frozen=True)
class PartInfo:
    part_id: str  # IMAP-style section number: "1", "2.1"
    content_type: str
    filename: str
    content_id: str
    size: int
    disposition: str
    children: tuple[PartInfo, ...] = ()


@dataclass
class Parsed:
    """A whole message parsed for viewing."""

    message: Message
    text: str = ""
    html: str = ""
    attachments: list[PartInfo] = field(default_factory=list)
    inline: list[PartInfo] = field(default_factory=list)
    structure: PartInfo | None = None


def parse_bytes(raw: bytes) -> Message:
    try:
        return email.message_from_bytes(raw, policy=email.policy.compat32)
    except RecursionError:
        # Multiparts nested deeper than the stdlib parser recurses: the top headers, the rest one body.
        return email.parser.BytesParser(policy=email.policy.compat32).parsebytes(raw, headersonly=True)


def _walk(part: Message, part_id: str, parsed: Parsed) -> PartInfo:
    children: list[PartInfo] = []
    if part.is_multipart():
        subparts = part.get_payload()
        assert isinstance(subparts, list)
        for i, sub in enumerate(subparts, 1):
            child_id = f"{part_id}.{i}" if part_id else str(i)
            children.append(_walk(sub, child_id, parsed))
        size = 0
    else:
        payload = part.get_payload(decode=True)
        size = len(payload) if isinstance(payload, bytes) else 0
    ctype = part.get_content_type()
    info = PartInfo(
        part_id=part_id or "1",
        content_type=ctype,
        filename=decode_words(part.get_filename() or ""),
        content_id=(part.get("Content-ID") or "").strip().strip("<>"),
        size=size,
        disposition=(part.get("Content-Disposition") or "").split(";")[0].strip().lower(),
        children=tuple(children),
    )
    if not part.is_multipart() and ctype != "message/rfc822":
        if _is_attachment(part):
            if info.content_id and info.disposition != "attachment":
                parsed.inline.append(info)
            else:
                parsed.attachments.append(info)
        elif ctype == "text/plain" and not parsed.text:
            parsed.text = _payload_text(part)
        elif ctype == "text/html" and not parsed.html:
            parsed.html = _payload_text(part)
    return info


def parse(raw: bytes) -> Parsed:
    message = parse_bytes(raw)
    parsed = Parsed(message)
    parsed.structure = _walk(message, "", parsed)
    return parsed


def find_part(raw: bytes, part_id: str) -> Message | None:
    """Section number -> the MIME part (RFC 3501 §6.4.5 numbering)."""
    part: Message = parse_bytes(raw)
    if part_id in ("", "0"):
        return part
    for piece in part_id.split("."):
        if not piece.isdigit():
            return None
        if part.get_content_type() == "message/rfc822" and not part.is_multipart():
            return None
        if not part.is_multipart():
            if piece == "1":
                continue  # a single-part message's body is part 1
            return None
        payload = part.get_payload()
        index = int(piece) - 1
        if not isinstance(payload, list) or not 0 <= index < len(payload):
            return None
        part = cast(Message, payload[index])
    return part


def summarize(raw: bytes) -> Summary:
    """The fields the store keeps per message for listing and full-text search."""
    with contextlib.suppress(Exception):  # _fastmime.Unsupported, or anything odd: the full parser decides
        return _fast_summarize(raw)
    try:
        return _summarize(raw)
    except Exception:  # a message we cannot parse is still stored, just not summarized
        return Summary("", None, (), (), (), (), "", None, len(raw), 0, "", raw[:4096].decode("utf-8", "replace"))


def _summary(
    headers: list[tuple[str, str]], size: int, text: str, html: str, attachments: int, names: list[str],
    inline: int = 0,
) -> Summary:  # fmt: skip
    index: dict[str, list[str]] = {}  # lower-case name -> values, in order
    for key, value in headers:
        index.setdefault(key.lower(), []).append(value)

    def values(name: str) -> list[str]:
        return index.get(name, [])

    def first(name: str) -> str:
        found = index.get(name)
        return found[0] if found else ""

    date: float | None = None
    if first("date"):
        try:
            date = parsedate_to_datetime(first("date")).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            date = None
    body = text or (html_to_text(html) if html else "")
    froms = addresses(values("from"))
    return Summary(
        message_id=first("message-id").strip().strip("<>"),
        from_=froms[0] if froms else None,
        to=addresses(values("to")),
        cc=addresses(values("cc")),
        bcc=addresses(values("bcc")),
        reply_to=addresses(values("reply-to")),
        subject=decode_words(first("subject")),
        date=date,
        size=size,
        attachments=attachments,
        snippet=_snippet(body),
        text=body + "".join(" " + decode_words(n) for n in names),
        inline=inline,
    )


def _snippet(body: str) -> str:
    # The words of the first SNIPPET_CHARS * 4 characters, one space apart, cut at SNIPPET_CHARS. The words
    # of a shorter prefix give a prefix of that text (a cut word is a prefix of its word): when that prefix
    # is long enough, it is the answer, without splitting the rest.
    short = " ".join(body[: SNIPPET_CHARS + SNIPPET_CHARS // 2].split())
    if len(short) >= SNIPPET_CHARS or len(body) <= SNIPPET_CHARS + SNIPPET_CHARS // 2:
        return short[:SNIPPET_CHARS]
    return " ".join(body[: SNIPPET_CHARS * 4].split())[:SNIPPET_CHARS]


def _fast_summarize(raw: bytes) -> Summary:
    head, body = _fastmime.split_head(raw)
    headers = _fastmime.parse_headers(head)
    scan = _fastmime.Scan()
    _fastmime.scan_part(headers, body, scan, 0)
    return _summary(headers, len(raw), scan.text or "", scan.html or "", scan.attachments, scan.filenames, scan.inline)


def _summarize(raw: bytes) -> Summary:
    parsed = parse(raw)
    headers = [(key, _header_text(value)) for key, value in parsed.message.raw_items()]
    names = [a.filename for a in parsed.attachments]
    return _summary(headers, len(raw), parsed.text, parsed.html, len(parsed.attachments), names, len(parsed.inline))


def header_pairs(raw: bytes) -> list[tuple[str, str]]:
    msg = parse_bytes(raw)
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    for key, _ in msg.raw_items():
        if key.lower() not in seen:
            seen.add(key.lower())
            out.extend((key, decode_words(v)) for v in header_values(msg, key))
    return out
