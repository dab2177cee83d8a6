"""Header text: RFC 2047 encoded-words, raw UTF-8 (RFC 6532) and addresses. Linear on any input."""

from __future__ import annotations

import codecs
import email.base64mime
import email.quoprimime
import functools
import re
from email.utils import getaddresses
from typing import AnyStr

from mailsandbox.models import Address


# RFC 5322 §2.2.3: unfolding removes each line break that white space follows. Not a regex: a header of
# 150,000 folds took re.sub 54 ms, all of it holding the interpreter lock. With CRLF breaks only, two
# replaces (C speed, single passes, the same result); with bare LFs, a pass over the lines (pure Python,
# which lets other threads run).
def unfold(value: str) -> str:
    if "\n" not in value:
        return value
    if value.count("\n") == value.count("\r\n"):
        return value.replace("\r\n ", " ").replace("\r\n\t", "\t")
    return _unfold_lines(value, "\n", "\r", (" ", "\t"))


def unfold_bytes(value: bytes) -> bytes:
    if b"\n" not in value:
        return value
    if value.count(b"\n") == value.count(b"\r\n"):
        return value.replace(b"\r\n ", b" ").replace(b"\r\n\t", b"\t")
    return _unfold_lines(value, b"\n", b"\r", (b" ", b"\t"))


def _unfold_lines(value: AnyStr, lf: AnyStr, cr: AnyStr, blanks: tuple[AnyStr, AnyStr]) -> AnyStr:
    lines = value.split(lf)
    pieces = [lines[0]]
    for line in lines[1:]:
        if line[:1] in blanks:  # a fold: the break goes, with the CR right before it
            if pieces[-1].endswith(cr):
                pieces[-1] = pieces[-1][:-1]
        else:
            pieces.append(lf)
        pieces.append(line)
    return value[:0].join(pieces)


_SPACES = re.compile(r"\s{2,}")
# email.header.ecre; searched only up to the last "?=", where its lazy part can still end.
_ENCODED_WORD = re.compile(r"=\?(?P<charset>[^?]*?)\?(?P<encoding>[qQbB])\?(?P<encoded>.*?)\?=", re.M)

_Word = tuple[str, str | None, str | None]  # (text, encoding, charset); encoding None: literal text


def header_text(value: bytes) -> str:
    """A raw header value as text: UTF-8 (RFC 6532), else Latin-1 for legacy 8-bit bytes; unfolded."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        text = value.decode("latin-1")
    return unfold(text)


def _words(header: str) -> list[_Word]:
    """email.header.decode_header's split in linear time: the stdlib's lazy pattern rescans to the end of
    the line from every "=?" that no "?=" follows (quadratic on a long Subject of encoded words)."""
    words: list[_Word] = []
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
    return [w for n, w in enumerate(words) if n not in drop]


def _word_bytes(text: str, encoding: str) -> bytes:
    if encoding == "q":
        return email.quoprimime.header_decode(text).encode("raw-unicode-escape")
    return email.base64mime.decode(text + "==="[: (4 - len(text) % 4) % 4])


def _decode_header(header: str) -> list[tuple[bytes | str, str | None]]:
    """email.header.decode_header's result, computed in linear time (tested against the stdlib)."""
    last = header.rfind("?=")
    if last == -1 or not _ENCODED_WORD.search(header, 0, last + 2):
        return [(header, None)]
    collapsed: list[tuple[bytes | str, str | None]] = []
    run: list[bytes] = []
    run_charset: str | None = None
    for text, encoding, charset in _words(header):
        word = text.encode("raw-unicode-escape") if encoding is None else _word_bytes(text, encoding)
        if run and charset != run_charset:
            collapsed.append(((b" " if run_charset is None else b"").join(run), run_charset))
            run = []
        run.append(word)
        run_charset = charset
    collapsed.append(((b" " if run_charset is None else b"").join(run), run_charset))
    return collapsed


@functools.lru_cache(maxsize=64)
def _codec(charset: str) -> str:
    """A charset label we can decode with: unknown labels read as UTF-8 (looked up once, not per word)."""
    charset = charset.partition("*")[0] or "us-ascii"  # RFC 2231 §5: "utf-8*en" carries a language
    try:
        codecs.lookup(charset)
    except LookupError:
        return "utf-8"
    return charset


def _charset_decode(data: bytes, charset: str) -> str:
    return data.decode(_codec(charset), "replace")


def decode_words(value: str | None) -> str:
    """RFC 2047 encoded-words -> text, literal text (raw UTF-8 included, RFC 6532) kept as it is;
    adjacent words in one charset are decoded together (a character may span two). Never raises."""
    if not value:
        return ""
    last = value.rfind("?=")
    if last == -1 or not _ENCODED_WORD.search(value, 0, last + 2):
        return value  # no encoded-words: nothing to decode (the common case)
    out: list[str] = []
    run = bytearray()
    run_charset = ""
    literal_before = False
    for text, encoding, charset in _words(value):
        if encoding is None:
            if run:
                out.append(_charset_decode(bytes(run), run_charset))
                run = bytearray()
            out.append((" " if literal_before else "") + text)
            literal_before = True
            continue
        assert charset is not None
        if run and charset != run_charset:
            out.append(_charset_decode(bytes(run), run_charset))
            run = bytearray()
        try:
            run += _word_bytes(text, encoding)
        except (ValueError, TypeError):  # broken base64: the word stays as written
            out.append(f"=?{charset}?{encoding}?{text}?=")
            continue
        run_charset = charset
        literal_before = False
    if run:
        out.append(_charset_decode(bytes(run), run_charset))
    return "".join(out)


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
    """Address-list header values (already text: UTF-8 addresses stay real characters) -> Addresses."""
    if not values:
        return ()
    if len(values) == 1 and "=?" not in values[0]:
        simple = _simple_addresses(values[0])
        if simple is not None:
            return tuple(simple)
    out = []
    # Runs of whitespace read as one space (RFC 5322 §3.2.2 folding): the stdlib parser walks each one.
    values = [_SPACES.sub(" ", decode_words(v) if "=?" in v else v) for v in values]
    for name, addr in getaddresses(values):
        if addr or name:
            out.append(Address(decode_words(name), addr))
    return tuple(out)
