"""ENVELOPE, BODY and BODYSTRUCTURE (RFC 3501 §7.4.2) built from a parsed message."""

from __future__ import annotations

import re

from mailsandbox.mime.tree import Header, Part, parse_params
from mailsandbox.protocols.imap.responses import Concat, Sexp

_PIECE = re.compile(r'"(?:[^"\\]|\\.)*"?|\((?:[^()\\]|\\.)*\)?|<[^>]*>?|[,:;@]|[^\s",:;@<>()]+|\s+')

Address = tuple[str | None, str | None, str | None, str | None]  # name, adl, mailbox, host


def parse_addresses(value: str) -> list[Address]:
    """An RFC 5322 §3.4 address-list, groups included, as RFC 3501 §7.4.2 address structures."""
    out: list[Address] = []
    current: list[str] = []
    in_group = False
    for m in _PIECE.finditer(value):
        piece = m.group(0)
        if piece.isspace():
            current.append(" ")
        elif piece == ":" and not in_group and not any(t.startswith("<") for t in current):
            name = _phrase(current)
            out.append((None, None, name or "", None))  # start of a group: NIL host
            current = []
            in_group = True
        elif piece == ";" and in_group:
            _flush(current, out)
            out.append((None, None, None, None))  # end of group
            current = []
            in_group = False
        elif piece == ",":
            _flush(current, out)
            current = []
        else:
            current.append(piece)
    _flush(current, out)
    if in_group:
        out.append((None, None, None, None))
    return out


def _phrase(pieces: list[str]) -> str:
    words = []
    for piece in pieces:
        if piece.startswith("("):
            continue
        if piece.startswith('"'):
            inner = piece[1:-1] if piece.endswith('"') and len(piece) > 1 else piece[1:]
            piece = re.sub(r"\\(.)", r"\1", inner)
        words.append(piece)
    return re.sub(r"\s+", " ", "".join(words)).strip()


def _flush(pieces: list[str], out: list[Address]) -> None:
    if not any(t.strip() for t in pieces):
        return
    angle = next((t for t in pieces if t.startswith("<")), None)
    if angle is not None:
        name = _phrase(pieces[: pieces.index(angle)]) or None
        spec = angle[1:-1] if angle.endswith(">") else angle[1:]
        adl = None
        if spec.startswith("@") and ":" in spec:  # obs-route: "<@relay,@relay2:user@host>"
            adl, _, spec = spec.partition(":")
    else:
        comments = [t[1:-1] for t in pieces if t.startswith("(") and t.endswith(")")]
        name = comments[-1].strip() if comments else None
        adl = None
        spec = "".join(t for t in pieces if not t.startswith("(") and not t.isspace())
    local, at, host = spec.strip().rpartition("@")
    if not at:
        local, host = host, ""
    out.append((name or None, adl, _unquote_local(local), host))


def _unquote_local(local: str) -> str:
    if len(local) >= 2 and local.startswith('"') and local.endswith('"'):
        return re.sub(r"\\(.)", r"\1", local[1:-1])
    return local


def _addresses(header: Header, name: str, fallback: str | None = None) -> Sexp:
    value = header.text(name)
    if value is None and fallback is not None:
        value = header.text(fallback)
    if value is None:
        return None
    found = parse_addresses(value)
    return [list(address) for address in found] or None


def envelope(header: Header) -> Sexp:
    """RFC 3501 §7.4.2: the header fields as sent (not decoded); Sender and Reply-To default to From."""
    return [
        header.text("date"),
        header.text("subject"),
        _addresses(header, "from"),
        _addresses(header, "sender", "from"),
        _addresses(header, "reply-to", "from"),
        _addresses(header, "to"),
        _addresses(header, "cc"),
        _addresses(header, "bcc"),
        header.text("in-reply-to"),
        header.text("message-id"),
    ]


def _params(params: list[tuple[str, str]]) -> Sexp:
    # body-fld-param = "(" string SP string *(SP string SP string) ")" / nil
    if not params:
        return None
    flat: list[Sexp] = []
    for key, value in params:
        flat.extend((key, value))
    return flat


def _disposition(part: Part) -> Sexp:
    value = part.header.text("content-disposition")
    if not value:
        return None
    kind, params = parse_params(value)
    return [kind or "attachment", _params(params)]


def _language(part: Part) -> Sexp:
    value = part.header.text("content-language")
    if not value:
        return None
    tags = [tag.strip() for tag in value.split(",") if tag.strip()]
    return tags[0] if len(tags) == 1 else tags or None


def body_structure(part: Part, extensible: bool) -> Sexp:
    """BODYSTRUCTURE (extensible=True) or BODY (RFC 3501 §7.4.2) of one MIME entity."""
    if part.type == "multipart":
        children: list[Sexp] = [body_structure(child, extensible) for child in part.children]
        if not children:  # 1*body is required; an unsplittable multipart shows one empty part
            children = [["text", "plain", ["charset", "us-ascii"], None, None, "7BIT", 0, 0]]
        out: list[Sexp] = [Concat(children), part.subtype]
        if extensible:
            location = part.header.text("content-location")
            out += [_params(part.params), _disposition(part), _language(part), location]
        return out
    fields: list[Sexp] = [
        part.type,
        part.subtype,
        _params(part.params),
        part.header.text("content-id"),
        part.header.text("content-description"),
        part.encoding,
        part.end - part.body_start,
    ]
    if part.message is not None:  # body-type-msg: envelope, body, lines
        fields += [envelope(part.message.header), body_structure(part.message, extensible), part.lines()]
    elif part.type == "text":  # body-type-text: lines
        fields.append(part.lines())
    if extensible:
        fields += [
            part.header.text("content-md5"),
            _disposition(part),
            _language(part),
            part.header.text("content-location"),
        ]
    return fields
