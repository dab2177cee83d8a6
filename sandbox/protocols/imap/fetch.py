"""FETCH (RFC 3501 §6.4.5, §7.4.2): attribute grammar and per-message rendering."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from mailsandbox.protocols.imap.bodystructure import body_structure, envelope
from mailsandbox.protocols.imap.grammar import ParseError, Reader
from mailsandbox.protocols.imap.responses import astring, date_time, flag_list, literal, sexp
from mailsandbox.protocols.imap.search import Candidate

_NAME = re.compile(rb"[A-Za-z0-9.]+")
_PART = re.compile(rb"[1-9]\d{0,8}(?:\.[1-9]\d{0,8})*")
_SIMPLE = frozenset(
    "FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE UID RFC822 RFC822.HEADER RFC822.TEXT".split()
)
_MACROS = {  # RFC 3501 §6.4.5
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
_TEXTS = ("HEADER.FIELDS.NOT", "HEADER.FIELDS", "HEADER", "TEXT", "MIME")
_MAX_PART_DEPTH = 32


@dataclass(frozen=True)
class Attr:
    name: str  # one of _SIMPLE


@dataclass(frozen=True)
class Section:
    """BODY[section]<partial> and BODY.PEEK[...]."""

    peek: bool
    part: tuple[int, ...] = ()
    text: str = ""  # "", HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT or MIME
    fields: tuple[bytes, ...] = ()  # as the client spelt them, echoed back
    partial: tuple[int, int] | None = None

    def label(self) -> bytes:
        spec = ".".join(str(n) for n in self.part)
        if self.text:
            spec = f"{spec}.{self.text}" if spec else self.text
        out = b"BODY[" + spec.encode("ascii")
        if self.text.startswith("HEADER.FIELDS"):
            out += b" (" + b" ".join(astring(f) for f in self.fields) + b")"
        return out + b"]"


Item = Attr | Section


def sets_seen(item: Item) -> bool:
    """BODY[...] without .PEEK, RFC822 and RFC822.TEXT set \\Seen (RFC 3501 §6.4.5)."""
    if isinstance(item, Section):
        return not item.peek
    return item.name in ("RFC822", "RFC822.TEXT")


def parse_items(r: Reader) -> tuple[Item, ...]:
    """fetch-att / "(" fetch-att *(SP fetch-att) ")" / ALL / FAST / FULL."""
    if r.accept(b"("):
        items = [_parse_item(r)]
        while not r.accept(b")"):
            r.sp()
            items.append(_parse_item(r))
        return tuple(items)
    m = _NAME.match(r.data, r.pos)
    if m is not None and m.group(0).upper().decode() in _MACROS and r.data[m.end() : m.end() + 1] != b"[":
        r.pos = m.end()
        return tuple(Attr(name) for name in _MACROS[m.group(0).upper().decode()])
    return (_parse_item(r),)


def _parse_item(r: Reader) -> Item:
    m = _NAME.match(r.data, r.pos)
    if m is None:
        raise ParseError("expected a fetch attribute")
    r.pos = m.end()
    name = m.group(0).upper().decode("ascii")
    if name in ("BODY", "BODY.PEEK") and r.peek() == b"[":
        return _parse_section(r, peek=name == "BODY.PEEK")
    if name not in _SIMPLE:
        raise ParseError(f"unknown fetch attribute {name}")
    return Attr(name)


def _parse_section(r: Reader, peek: bool) -> Section:
    r.expect(b"[")
    part: tuple[int, ...] = ()
    m = _PART.match(r.data, r.pos)
    if m is not None:
        part = tuple(int(n) for n in m.group(0).split(b"."))
        if len(part) > _MAX_PART_DEPTH:
            raise ParseError("section part too deep")
        r.pos = m.end()
    text = ""
    if not part or r.accept(b"."):
        for candidate in _TEXTS:
            if r.accept(candidate.encode("ascii")):
                text = candidate
                break
        if (part and not text) or (text == "MIME" and not part):
            raise ParseError("bad section text")  # MIME only follows a part number
    fields: list[bytes] = []
    if text.startswith("HEADER.FIELDS"):
        # header-list = "(" header-fld-name *(SP header-fld-name) ")"
        r.sp()
        r.expect(b"(")
        fields.append(r.astring())
        while not r.accept(b")"):
            r.sp()
            fields.append(r.astring())
    r.expect(b"]")
    partial = None
    if r.accept(b"<"):
        start = r.number()
        r.expect(b".")
        partial = (start, r.nz_number())
        r.expect(b">")
    return Section(peek, part, text, tuple(fields), partial)


def _section_data(section: Section, names: frozenset[bytes], candidate: Candidate) -> bytes | None:
    text = section.text
    if not section.part:
        if text == "HEADER":
            return candidate.header().raw
        if text.startswith("HEADER.FIELDS"):
            return candidate.header().select(names, exclude=text.endswith(".NOT"))
        message = candidate.message()
        return message.text if text == "TEXT" else message.raw
    node = candidate.message().part(section.part)
    if node is None:
        return None
    if text == "":
        return node.body
    if text == "MIME":
        return node.header.raw
    if node.message is None:
        return None  # HEADER/TEXT after a part number apply to message/rfc822 parts only
    if text == "HEADER":
        return node.message.header.raw
    if text == "TEXT":
        return node.message.body
    return node.message.header.select(names, exclude=text.endswith(".NOT"))


Renderer = Callable[[Candidate], bytes]


def _section_renderer(section: Section) -> Renderer:
    names = frozenset(f.lower() for f in section.fields)
    label = section.label()
    partial = section.partial
    if partial is not None:
        label += b"<%d>" % partial[0]
    head = label + b" "

    def render(candidate: Candidate) -> bytes:
        data = _section_data(section, names, candidate)
        if data is None:
            return head + b"NIL"
        if partial is not None:
            data = data[partial[0] : partial[0] + partial[1]]
        return head + literal(data)

    return render


def _flags(candidate: Candidate) -> bytes:
    flags = sorted(candidate.flags)
    if candidate.recent:
        flags.append("\\Recent")
    return b"FLAGS " + flag_list(flags)


def _structure(name: str) -> Renderer:
    extensible = name == "BODYSTRUCTURE"
    head = name.encode("ascii") + b" "
    return lambda candidate: head + sexp(body_structure(candidate.message().root, extensible))


_ATTRS: dict[str, Renderer] = {
    "UID": lambda candidate: b"UID %d" % candidate.uid,
    "FLAGS": _flags,
    "INTERNALDATE": lambda candidate: b"INTERNALDATE " + date_time(candidate.internaldate),
    "RFC822.SIZE": lambda candidate: b"RFC822.SIZE %d" % candidate.size,
    "ENVELOPE": lambda candidate: b"ENVELOPE " + sexp(envelope(candidate.header())),
    "RFC822.HEADER": lambda candidate: b"RFC822.HEADER " + literal(candidate.header().raw),
    "RFC822": lambda candidate: b"RFC822 " + literal(candidate.message().raw),
    "RFC822.TEXT": lambda candidate: b"RFC822.TEXT " + literal(candidate.message().text),
    "BODY": _structure("BODY"),
    "BODYSTRUCTURE": _structure("BODYSTRUCTURE"),
}


def compile_items(items: tuple[Item, ...]) -> Renderer:
    """The msg-att list of one FETCH response (RFC 3501 §7.4.2), prepared once per command."""
    parts = [_section_renderer(item) if isinstance(item, Section) else _ATTRS[item.name] for item in items]
    return lambda candidate: b" ".join([part(candidate) for part in parts])
