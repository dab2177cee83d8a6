"""A byte-level scanner for the listing summary: finds headers, MIME boundaries and the text parts
without building a Message tree, so a 100 KB attachment costs a few bytes.find() calls, not a parse.
Anything it does not understand raises Unsupported and the caller falls back to the full parser."""

from __future__ import annotations

from mailsandbox.mime import params, tree, words
from mailsandbox.mime.parts import role

MAX_DEPTH = 8


class Unsupported(Exception):
    pass


_ASCII_SPACE = " \t\n\r\x0b\x0c"  # what bytes.strip() strips (str.strip() strips \x1c-\x1f too)


def head_of(raw: bytes, start: int, end: int) -> tuple[bytes, int]:
    """The header block of the part at raw[start:end] (a copy: it is small) and where its body starts.
    The body stays in place: slicing it would copy a 20 MB attachment once per nesting level."""
    head_end, body_start = tree.header_end(raw, start, end)
    return raw[start:head_end], body_start


def parse_headers(block: bytes) -> list[tuple[str, str]]:
    """RFC 5322 §2.2: unfold, split at the first colon; UTF-8 allowed (RFC 6532)."""
    try:
        text = block.decode("utf-8")  # the common case: one decode, not one a line
    except UnicodeDecodeError:
        return _parse_header_bytes(block)
    out: list[tuple[str, str]] = []
    for line in words.unfold(text).split("\n"):
        line = line.rstrip("\r")
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or not name.isascii() or " " in name.strip(_ASCII_SPACE):
            return _parse_header_bytes(block)  # the byte-wise loop decides (and names non-ASCII alike)
        out.append((name.strip(), value.lstrip(" \t")))
    return out


def _parse_header_bytes(block: bytes) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for line in words.unfold_bytes(block).split(b"\n"):
        line = line.rstrip(b"\r")
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep or not name or b" " in name.strip():
            if line[:5] == b"From ":  # an mbox separator line
                continue
            raise Unsupported("malformed header line")
        try:
            text = value.lstrip(b" \t").decode("utf-8")
        except UnicodeDecodeError:
            text = value.lstrip(b" \t").decode("latin-1")
        out.append((name.decode("ascii", "replace").strip(), text))
    return out


def _get(headers: list[tuple[str, str]], name: str) -> str:
    lname = name.lower()
    for key, value in headers:
        if key.lower() == lname:
            return value
    return ""


class _Mime:
    """Content-Type and Content-Disposition of one part, read as the part tree reads them."""

    def __init__(self, headers: list[tuple[str, str]]) -> None:
        ct, cd = _get(headers, "Content-Type"), _get(headers, "Content-Disposition")
        main, ct_params = params.split(ct) if ct else ("", [])
        self.disposition, cd_params = params.split(cd) if cd else ("", [])
        kind, slash, sub = main.partition("/")
        if not (slash and kind and sub):
            main, ct_params = "text/plain", []  # RFC 2045 §5.2 default, as the tree reads it
        self.ctype = main
        self.boundary = next((v for k, v in ct_params if k.lower() == "boundary"), None)  # as the tree reads it
        charset = params.get(ct_params, "charset")
        self.charset = charset.strip().lower() if charset else None
        found = params.get(cd_params, "filename")
        if found is None:
            found = params.get(ct_params, "name")
        self.filename = found.strip() if found else ""


class Scan:
    def __init__(self) -> None:
        self.text: str | None = None
        self.html: str | None = None
        self.attachments = 0
        self.inline = 0
        self.filenames: list[str] = []


def scan_part(headers: list[tuple[str, str]], raw: bytes, start: int, end: int, scan: Scan, depth: int) -> None:
    """The part whose body is raw[start:end]; only text and HTML bodies are copied out (to be decoded)."""
    if depth > MAX_DEPTH:
        raise Unsupported("nested too deep")
    holder = _Mime(headers)
    ctype = holder.ctype
    if ctype.startswith("multipart/"):
        boundary = holder.boundary
        if ctype == "multipart/digest":
            raise Unsupported("digest parts default to message/rfc822")
        if not boundary:
            raise Unsupported("multipart without boundary")
        if not boundary.isascii():
            raise Unsupported("8-bit boundary")
        for part_start, part_end in tree.split_multipart(raw, start, end, boundary.encode("ascii")):
            head, body_start = head_of(raw, part_start, part_end)
            scan_part(parse_headers(head), raw, body_start, part_end, scan, depth + 1)
        return
    content_id = _get(headers, "Content-ID").strip().strip("<>").strip()
    kind = role(ctype, holder.disposition, holder.filename, content_id, scan.text is not None, scan.html is not None)
    if kind == "attachment":
        scan.attachments += 1
        if holder.filename:
            scan.filenames.append(holder.filename)
    elif kind == "inline":
        scan.inline += 1
    elif kind in ("text", "html"):
        body = tree.decode_transfer(raw[start:end], _get(headers, "Content-Transfer-Encoding"))
        if kind == "text":
            scan.text = tree.to_text(body, holder.charset)
        else:
            scan.html = tree.to_text(body, holder.charset)
