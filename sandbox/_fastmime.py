"""A byte-level scanner for the listing summary: finds headers, MIME boundaries and the text parts
without building a Message tree, so a 100 KB attachment costs a few bytes.find() calls, not a parse.
Anything it does not understand raises Unsupported and the caller falls back to the full parser."""

from __future__ import annotations

import binascii
import itertools
import re
from email.message import Message

MAX_DEPTH = 8


class Unsupported(Exception):
    pass


_FOLD = re.compile(rb"\r?\n(?=[ \t])")  # RFC 5322 §2.2.3: unfolding removes the CRLF only
_FOLD_TEXT = re.compile(r"\r?\n(?=[ \t])")
_ASCII_SPACE = " \t\n\r\x0b\x0c"  # what bytes.strip() strips (str.strip() strips \x1c-\x1f too)


def split_head(raw: bytes) -> tuple[bytes, bytes]:
    """Header block and body, split at the first empty line (CRLF or bare LF)."""
    if raw.startswith((b"\r\n", b"\n")):
        return b"", raw[2 if raw.startswith(b"\r\n") else 1 :]
    crlf = raw.find(b"\r\n\r\n")
    lf = raw.find(b"\n\n", 0, crlf if crlf != -1 else len(raw))  # only an earlier one matters: don't scan on
    if crlf != -1 and (lf == -1 or crlf < lf):
        return raw[:crlf], raw[crlf + 4 :]
    if lf != -1:
        return raw[:lf], raw[lf + 2 :]
    return raw, b""


def parse_headers(block: bytes) -> list[tuple[str, str]]:
    """RFC 5322 §2.2: unfold, split at the first colon; UTF-8 allowed (RFC 6532)."""
    try:
        text = block.decode("utf-8")  # the common case: one decode, not one a line
    except UnicodeDecodeError:
        return _parse_header_bytes(block)
    out: list[tuple[str, str]] = []
    for line in _FOLD_TEXT.sub("", text).split("\n"):
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
    for line in _FOLD.sub(b"", block).split(b"\n"):
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


_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")


def _fast_params(value: str) -> tuple[str, dict[str, str]] | None:
    """'type/sub; a=b; c="d"' in the plain form; None for anything RFC 2231 or quoted-special."""
    if "*" in value or "\\" in value or "(" in value:
        return None
    pieces = value.split(";")
    ctype = pieces[0].strip().lower()
    params: dict[str, str] = {}
    for piece in pieces[1:]:
        piece = piece.strip()
        if not piece:
            continue
        key, sep, val = piece.partition("=")
        key, val = key.strip().lower(), val.strip()
        if not sep or not _TOKEN.fullmatch(key):
            return None
        if val.startswith('"'):
            if len(val) < 2 or not val.endswith('"') or '"' in val[1:-1]:
                return None
            val = val[1:-1]
        elif not _TOKEN.fullmatch(val) and val:
            return None
        params.setdefault(key, val)
    return ctype, params


class _Mime:
    """Content-Type and Content-Disposition of one part: the fast path, else the stdlib's parser."""

    def __init__(self, headers: list[tuple[str, str]]) -> None:
        ct, cd = _get(headers, "Content-Type"), _get(headers, "Content-Disposition")
        fast_ct, fast_cd = _fast_params(ct) if ct else ("", {}), _fast_params(cd) if cd else ("", {})
        if fast_ct is None or fast_cd is None or (ct and "/" not in fast_ct[0]):
            holder = _content_type(headers)
            self.ctype = holder.get_content_type()
            self.boundary = holder.get_boundary()
            self.charset = holder.get_content_charset()
            self.filename = holder.get_filename()
            self.disposition = (holder.get("Content-Disposition") or "").split(";")[0].strip().lower()
            return
        self.ctype = fast_ct[0] or "text/plain"
        self.boundary = fast_ct[1].get("boundary")
        charset = fast_ct[1].get("charset")
        self.charset = charset.lower() if charset else None
        self.filename = fast_cd[1].get("filename") or fast_ct[1].get("name")
        self.disposition = fast_cd[0]


def _content_type(headers: list[tuple[str, str]]) -> Message:
    # A tiny Message holding only the MIME headers gives RFC 2045/2231 parameter parsing for free.
    holder = Message()
    for key in ("Content-Type", "Content-Disposition"):
        value = _get(headers, key)
        if value:
            holder[key] = value
    return holder


def decode_body(body: bytes, cte: str) -> bytes:
    cte = cte.strip().lower()
    if cte == "base64":
        try:
            return binascii.a2b_base64(body)
        except binascii.Error as exc:
            raise Unsupported("bad base64") from exc
    if cte == "quoted-printable":
        return binascii.a2b_qp(body)
    return body


def to_text(body: bytes, charset: str | None) -> str:
    try:
        text = body.decode(charset or "utf-8", errors="replace")
    except LookupError:
        text = body.decode("utf-8", errors="replace")
    return text.replace("\r\n", "\n")


class Scan:
    def __init__(self) -> None:
        self.text: str | None = None
        self.html: str | None = None
        self.attachments = 0
        self.inline = 0
        self.filenames: list[str] = []


def _is_attachment(ctype: str, disposition: str, filename: str | None) -> bool:
    if disposition == "attachment":
        return True
    if ctype in ("text/plain", "text/html"):
        return False
    return filename is not None or disposition == "inline" or not ctype.startswith("text/")


def scan_part(headers: list[tuple[str, str]], body: bytes, scan: Scan, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise Unsupported("nested too deep")
    holder = _Mime(headers)
    ctype = holder.ctype
    if ctype.startswith("multipart/"):
        boundary = holder.boundary
        if not boundary:
            raise Unsupported("multipart without boundary")
        for part in split_multipart(body, boundary.encode("utf-8", "surrogateescape")):
            head, part_body = split_head(part)
            scan_part(parse_headers(head), part_body, scan, depth + 1)
        return
    if ctype == "message/rfc822":
        return  # an attached message: not our text, not an attachment file (as the full parser counts it)
    disposition = holder.disposition
    filename = holder.filename
    if _is_attachment(ctype, disposition, filename):
        content_id = _get(headers, "Content-ID")
        if not (content_id and disposition != "attachment"):  # inline cid: images are not attachments
            scan.attachments += 1
            if filename:
                scan.filenames.append(filename)
        else:
            scan.inline += 1
        return
    if ctype == "text/plain" and scan.text is None:
        scan.text = to_text(decode_body(body, _get(headers, "Content-Transfer-Encoding")), holder.charset)
    elif ctype == "text/html" and scan.html is None:
        scan.html = to_text(decode_body(body, _get(headers, "Content-Transfer-Encoding")), holder.charset)


def split_multipart(body: bytes, boundary: bytes) -> list[bytes]:
    """RFC 2046 §5.1.1: parts lie between "--boundary" delimiter lines; "--boundary--" closes."""
    delimiter = b"--" + boundary
    parts: list[bytes] = []
    pos = 0
    starts: list[int] = []
    while True:
        found = body.find(delimiter, pos)
        if found == -1:
            break
        at_line_start = found == 0 or body[found - 1 : found] == b"\n"
        end = found + len(delimiter)
        if at_line_start:
            starts.append(found)
            if body[end : end + 2] == b"--":
                break
        pos = end
    if not starts:
        raise Unsupported("no boundary in body")
    for this, following in itertools.pairwise(starts):
        start = body.find(b"\n", this) + 1
        # The CRLF before a delimiter belongs to the delimiter (cut by index: a part is copied once).
        if body[following - 2 : following] == b"\r\n":
            following -= 2
        elif body[following - 1 : following] == b"\n":
            following -= 1
        parts.append(body[start : max(start, following)])
    return parts
