"""The MIME part tree of a raw message, as byte offsets into its bytes (nothing is copied until asked):
header fields, bodies, encapsulated messages, and RFC 3501 §6.4.5 part numbers. Linear on any input."""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterator

from mailsandbox.mime import params as _params
from mailsandbox.mime.words import decode_words, header_text, unfold_bytes

MAX_DEPTH = 32  # hostile nesting stops here; deeper parts are treated as opaque bodies
_FIELD_SPLIT = re.compile(rb"\r?\n(?![ \t])")
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]+")


def header_end(data: bytes, start: int, end: int) -> tuple[int, int]:
    """(end of the header block including its blank line, start of the body): the first empty line,
    CRLF or bare LF, ends the header (RFC 5322 §2.1)."""
    # Bounded by `end` like the finds below: an empty part must not claim its next delimiter's CRLF.
    if data.startswith(b"\r\n", start, end):  # no header fields at all
        return start + 2, start + 2
    if data.startswith(b"\n", start, end):
        return start + 1, start + 1
    crlf = data.find(b"\r\n\r\n", start, end)
    lf = data.find(b"\n\n", start, crlf if crlf >= 0 else end)  # only an earlier one matters
    if lf >= 0:
        return lf + 2, lf + 2
    if crlf >= 0:
        return crlf + 4, crlf + 4
    return end, end


def decode_transfer(body: bytes, cte: str) -> bytes:
    """A body with its Content-Transfer-Encoding undone (RFC 2045 §6); broken base64 as far as it goes."""
    cte = cte.strip().lower()
    if cte == "base64":
        try:
            return binascii.a2b_base64(body)
        except binascii.Error:
            data = _NOT_BASE64.sub(b"", body)
            return binascii.a2b_base64(data[: len(data) - len(data) % 4]) if len(data) >= 4 else b""
    if cte == "quoted-printable":
        return binascii.a2b_qp(body)
    return body


def to_text(payload: bytes, charset: str | None) -> str:
    """Decoded bytes as text in their charset; unknown charsets and us-ascii (often 8-bit in fact) as UTF-8."""
    if not charset or charset == "us-ascii":
        charset = "utf-8"
    try:
        text = payload.decode(charset, "replace")
    except LookupError:
        text = payload.decode("utf-8", "replace")
    return text.replace("\r\n", "\n")


class Header:
    """One header block (RFC 5322 §2.2): the bytes and the fields in order."""

    __slots__ = ("_index", "_selected", "fields", "raw")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self._selected: dict[tuple[frozenset[bytes], bool], bytes] = {}
        self._index: dict[bytes, list[bytes]] | None = None
        self.fields: list[tuple[bytes, bytes]] = []  # (lower-cased name, the field's lines with CRLF)
        body = raw[:-2] if raw.endswith(b"\r\n\r\n") else raw
        for line in _FIELD_SPLIT.split(body):
            if not line:
                continue
            name, colon, _ = line.partition(b":")
            key = name.rstrip().lower() if colon else b""
            self.fields.append((key, line + b"\r\n"))

    def values(self, name: str) -> list[bytes]:
        """Unfolded values of every field called `name`, in order."""
        if self._index is None:  # built on first use: SEARCH asks every cached header again and again
            index: dict[bytes, list[bytes]] = {}
            for field_name, line in self.fields:
                value = unfold_bytes(line.partition(b":")[2]).strip()
                index.setdefault(field_name, []).append(value)
            self._index = index
        return self._index.get(name.lower().encode("ascii", "replace"), [])

    def get(self, name: str) -> bytes | None:
        found = self.values(name)
        return found[0] if found else None

    def text(self, name: str) -> str | None:
        value = self.get(name)
        return None if value is None else value.decode("utf-8", "surrogateescape")

    def unicode(self, name: str) -> str:
        """The first `name` field as text for people: raw UTF-8 decoded (RFC 6532), encoded-words not."""
        value = self.get(name)
        return "" if value is None else header_text(value)

    def decoded(self, name: str) -> str:
        """The first `name` field with its encoded-words decoded too (RFC 2047): a Subject as shown."""
        return decode_words(self.unicode(name))

    def items(self) -> Iterator[tuple[str, str]]:
        """Every field in order as (name as written, unfolded text value)."""
        for _, line in self.fields:
            name, colon, value = line.partition(b":")
            if colon:
                yield name.decode("ascii", "replace").strip(), header_text(value.rstrip(b"\r\n")).lstrip(" \t")

    def select(self, names: frozenset[bytes], exclude: bool) -> bytes:
        """BODY[HEADER.FIELDS (...)] and .NOT (RFC 3501 §6.4.5): matching lines, then the blank line."""
        found = self._selected.get((names, exclude))
        if found is None:
            lines = [line for key, line in self.fields if (key in names) != exclude]
            lines.append(b"\r\n")
            found = b"".join(lines)
            if len(self._selected) < 8:  # a client asks for the same few field lists again and again
                self._selected[(names, exclude)] = found
        return found


def _text(value: str) -> str:
    # Parameters come from surrogate-escaped header text: 8-bit bytes that were not UTF-8 become Latin-1.
    return header_text(value.encode("utf-8", "surrogateescape")) if not value.isascii() else value


def parse_params(value: str) -> tuple[str, list[tuple[str, str]]]:
    """Content-Type / Content-Disposition value -> (lower-cased main value, [(name, value)])."""
    return _params.split(value)


class Part:
    """One MIME entity: its header, its body's byte range and, lazily, what it contains."""

    __slots__ = tuple("body_start children data end header message params start subtype type".split())

    def __init__(self, data: bytes, start: int, end: int, depth: int = 0, digest: bool = False) -> None:
        self.data = data
        self.start = start
        self.end = end
        head_end, self.body_start = header_end(data, start, end)
        self.header = Header(data[start:head_end])
        ctype = self.header.text("content-type")
        default = "message/rfc822" if digest else "text/plain"  # RFC 2046 §5.1.5 multipart/digest
        main, self.params = parse_params(ctype) if ctype else (default, [])
        self.type, slash, self.subtype = main.partition("/")
        if not slash or not self.type or not self.subtype:
            self.type, self.subtype, self.params = "text", "plain", []
        if self.type == "text" and self.param("charset") is None:
            self.params = [("charset", "us-ascii"), *self.params]  # RFC 2045 §5.2 default
        self.children: list[Part] = []
        self.message: Part | None = None
        if depth >= MAX_DEPTH:
            return
        if self.type == "multipart":
            boundary = self.param("boundary")
            if boundary:
                sub_digest = self.subtype == "digest"
                ranges = split_multipart(data, self.body_start, end, boundary.encode("utf-8", "surrogateescape"))
                self.children = [Part(data, a, b, depth + 1, sub_digest) for a, b in ranges]
        elif self.type == "message" and self.subtype in ("rfc822", "global"):
            self.message = Part(data, self.body_start, end, depth + 1)

    def param(self, name: str) -> str | None:
        for key, value in self.params:
            if key.lower() == name:
                return value
        return None

    @property
    def body(self) -> bytes:
        return self.data[self.body_start : self.end]

    @property
    def encoding(self) -> str:
        value = self.header.text("content-transfer-encoding")
        return value.strip().upper() if value else "7BIT"

    @property
    def content_type(self) -> str:
        return f"{self.type}/{self.subtype}"

    @property
    def disposition(self) -> str:
        """ "attachment", "inline" or "" (RFC 2183), lower-cased."""
        value = self.header.text("content-disposition")
        return parse_params(value)[0] if value else ""

    @property
    def filename(self) -> str:
        """RFC 2183 filename, else the Content-Type name (RFC 2046 §4.5.1), decoded (RFC 2231, RFC 2047)."""
        value = self.header.text("content-disposition")
        found = _params.get(parse_params(value)[1], "filename") if value else None
        if found is None:
            found = _params.get(self.params, "name")
        return _text(found).strip() if found else ""

    @property
    def content_id(self) -> str:
        return self.header.unicode("content-id").strip().strip("<>").strip()

    @property
    def charset(self) -> str | None:
        value = _params.get(self.params, "charset")
        return value.strip().lower() if value else None

    def text(self) -> str:
        """The decoded body as text, in its charset, with LF line ends."""
        return to_text(self.decoded(), self.charset)

    def decoded(self) -> bytes:
        """The body with its transfer encoding undone (RFC 2045 §6). Not kept: IMAP's cache holds parts."""
        return decode_transfer(self.body, self.encoding)

    def lines(self) -> int:
        body = self.body
        count = body.count(b"\n")
        return count + 1 if body and not body.endswith(b"\n") else count


def split_multipart(data: bytes, start: int, end: int, boundary: bytes) -> list[tuple[int, int]]:
    """Body-part ranges between "--boundary" lines (RFC 2046 §5.1.1).

    The CRLF before a delimiter line belongs to the delimiter, not to the part."""
    delimiter = b"--" + boundary
    out: list[tuple[int, int]] = []
    current: int | None = None
    pos = start
    while True:
        at = data.find(delimiter, pos, end)
        if at < 0:
            break
        after = at + len(delimiter)
        at_line_start = at == start or data[at - 1 : at] == b"\n"
        tail = data[after : after + 1]
        if not at_line_start or tail not in (b"", b"\r", b"\n", b"-", b" ", b"\t"):
            pos = at + 1
            continue
        if current is not None:
            stop = at - 2 if data[at - 2 : at] == b"\r\n" else at - 1 if data[at - 1 : at] == b"\n" else at
            out.append((current, max(current, stop)))
            current = None
        if data[after : after + 2] == b"--":
            return out
        newline = data.find(b"\n", after, end)
        current = end if newline < 0 else newline + 1
        pos = current
    if current is not None:
        out.append((current, end))  # no close delimiter: the last part runs to the end
    return out


class Message:
    """A raw message, parsed as far as asked: the top header eagerly, the part tree on first use."""

    __slots__ = ("_root", "header", "header_end", "raw")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.header_end, _ = header_end(raw, 0, len(raw))
        self.header = Header(raw[: self.header_end])
        self._root: Part | None = None

    @property
    def root(self) -> Part:
        if self._root is None:
            self._root = Part(self.raw, 0, len(self.raw))
        return self._root

    @property
    def text(self) -> bytes:
        return self.raw[self.header_end :]

    def part(self, path: tuple[int, ...]) -> Part | None:
        """RFC 3501 §6.4.5 part specifier: numbers count within the enclosing (encapsulated) message."""
        node = self.root
        for depth, number in enumerate(path):
            if depth and not node.children:
                if node.message is None:
                    return None  # a leaf has no sub-parts
                node = node.message
            if number < 1:
                return None
            if node.children:
                if number > len(node.children):
                    return None
                node = node.children[number - 1]
            elif number != 1:
                return None  # a non-multipart body is its own part 1
        return node

    def body_text(self) -> str:
        """Decoded text of every text/* part, for SEARCH BODY/TEXT (RFC 3501 §6.4.4)."""
        chunks: list[str] = []
        _collect_text(self.root, chunks)
        return "\n".join(chunks)


def _collect_text(part: Part, out: list[str]) -> None:
    if part.children:
        for child in part.children:
            _collect_text(child, out)
    elif part.message is not None:
        out.append(decode_words(part.message.header.raw.decode("utf-8", "surrogateescape")))
        _collect_text(part.message, out)
    elif part.type == "text":
        out.append(part.text())
