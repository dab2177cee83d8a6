"""What each part of a message is for the reader: the text body, the HTML body, an attachment, an inline
part, or nothing to list. One rule, used by the API, the preview, the summary scanner and the plugin."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from mailsandbox.mime.html_text import html_to_text
from mailsandbox.mime.tree import Message, Part, to_text
from mailsandbox.mime.words import header_text

Role = Literal["text", "html", "attachment", "inline", "none"]
ENCAPSULATED = frozenset({"message/rfc822", "message/global"})  # RFC 2046 §5.2.1, RFC 6532 §3.7


def role(ctype: str, disposition: str, filename: str, content_id: str, have_text: bool, have_html: bool) -> Role:
    """The attachment/inline rule for one leaf part (multiparts are containers, not leaves):
    - an attached message (message/rfc822) is an attachment, as a whole;
    - Content-Disposition: attachment is an attachment;
    - the first unnamed text/plain and text/html are the bodies; later unnamed ones are not listed;
    - Content-Disposition: inline, or a Content-ID (a cid: target), is inline;
    - anything else (a named text part, an image without a disposition, ...) is an attachment."""
    if ctype in ENCAPSULATED or disposition == "attachment":
        return "attachment"
    if ctype == "text/plain" and not filename:
        return "none" if have_text else "text"
    if ctype == "text/html" and not filename:
        return "none" if have_html else "html"
    if disposition == "inline" or content_id:
        return "inline"
    return "attachment"


@dataclass(frozen=True)
class PartInfo:
    part_id: str  # RFC 3501 §6.4.5 section number: "1", "2.1"; "" for a top multipart (it has none)
    content_type: str
    filename: str
    content_id: str
    size: int  # decoded bytes
    disposition: str
    children: tuple[PartInfo, ...] = ()
    part: Part | None = field(default=None, compare=False, repr=False)
    data: bytes = field(default=b"", compare=False, repr=False)

    def content(self) -> bytes:
        """The decoded bytes (for an attached message: the message itself)."""
        return self.data


@dataclass
class Parsed:
    """A whole message read for viewing."""

    message: Message
    text: str = ""
    html: str = ""
    attachments: list[PartInfo] = field(default_factory=list)
    inline: list[PartInfo] = field(default_factory=list)
    structure: PartInfo | None = None
    bodies: set[str] = field(default_factory=set, repr=False)  # which of "text", "html" were found

    def header(self, name: str) -> str:
        """The first `name` field of the top header as text (UTF-8 decoded, encoded-words kept)."""
        return self.message.header.unicode(name)

    def display_text(self) -> str:
        """The text body, or for HTML-only mail the text its HTML shows (as Mailpit gives it)."""
        return self.text or (html_to_text(self.html) if self.html else "")


def _walk(part: Part, part_id: str, parsed: Parsed, listing: bool) -> PartInfo:
    children: list[PartInfo] = []
    if part.children:
        for i, child in enumerate(part.children, 1):
            children.append(_walk(child, f"{part_id}.{i}" if part_id else str(i), parsed, listing))
    elif part.message is not None:
        # RFC 3501 §6.4.5: an encapsulated message's parts number from N.1, as if it were the top message.
        inner = part.message
        if inner.children:
            children = [_walk(c, f"{part_id}.{i}", parsed, False) for i, c in enumerate(inner.children, 1)]
        else:
            children = [_walk(inner, f"{part_id}.1", parsed, False)]
    leaf = not part.children and part.type != "multipart"
    data = part.decoded() if leaf else b""
    info = PartInfo(
        part_id=part_id,
        content_type=part.content_type,
        filename=part.filename,
        content_id=part.content_id,
        size=len(data),
        disposition=part.disposition,
        children=tuple(children),
        part=part,
        data=data,
    )
    if listing and leaf:
        kind = role(info.content_type, info.disposition, info.filename, info.content_id,
                    "text" in parsed.bodies, "html" in parsed.bodies)  # fmt: skip
        if kind == "attachment":
            parsed.attachments.append(info)
        elif kind == "inline":
            parsed.inline.append(info)
        elif kind == "text":
            parsed.text = to_text(data, part.charset)
        elif kind == "html":
            parsed.html = to_text(data, part.charset)
        if kind in ("text", "html"):
            parsed.bodies.add(kind)
    return info


def parse(raw: bytes) -> Parsed:
    message = Message(raw)
    parsed = Parsed(message)
    root = message.root
    parsed.structure = _walk(root, "" if root.type == "multipart" else "1", parsed, True)
    return parsed


def find_part(raw: bytes, part_id: str) -> Part | None:
    """Section number ("2.1") -> the MIME entity, numbered as IMAP numbers it (RFC 3501 §6.4.5)."""
    pieces = part_id.split(".")
    if not part_id or not all(p.isdigit() and len(p) <= 6 for p in pieces):
        return None
    return Message(raw).part(tuple(int(p) for p in pieces))


def header_pairs(raw: bytes) -> list[tuple[str, str]]:
    """The top header's fields in order as (name, value): raw UTF-8 as text, encoded-words as written,
    folded lines joined with one space (as Go's net/textproto, which Mailpit's /headers answers with)."""
    message = Message(raw)
    return [(name, " ".join(value.split("\n")) if "\n" in value else value) for name, value in _fields(message)]


def _fields(message: Message) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for _, line in message.header.fields:
        name, colon, value = line.partition(b":")
        if not colon:
            continue
        lines = value.replace(b"\r\n", b"\n").rstrip(b"\n").split(b"\n")
        text = "\n".join(header_text(piece).strip(" \t") for piece in lines)
        out.append((name.decode("ascii", "replace").strip(), text))
    return out
