"""Content-Type / Content-Disposition values: the main value and its parameters (RFC 2045 §5.1), with
RFC 2231 continuations, charsets and percent-encoding. One left-to-right scan: linear on any input."""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from mailsandbox.mime.words import decode_words

Params = list[tuple[str, str]]  # (name as written, value with its quoting undone), in order

_NAME = re.compile(r"[^=;]*+")
_BARE = re.compile(r"[^;]*+")
_QUOTED = re.compile(r'(?:[^"\\]|\\.)*+', re.S)
_UNESCAPE = re.compile(r"\\(.)", re.S)
_COMMENT = re.compile(r"\([^()]*+\)")
_SECTION = re.compile(r"\*([0-9]{1,3})(\*?)")  # RFC 2231 §3: name*0, name*1*, ...


def split(value: str) -> tuple[str, Params]:
    """'Type/Sub (comment); a=b; c="d;e"' -> ("type/sub", [("a", "b"), ("c", "d;e")])."""
    semi = value.find(";")
    main = value if semi == -1 else value[:semi]
    params: Params = []
    pos = len(value) if semi == -1 else semi + 1
    end = len(value)
    while pos < end:
        match = _NAME.match(value, pos)
        assert match is not None  # *+ always matches
        name = match.group(0).strip()
        pos = match.end()
        if pos >= end or value[pos] == ";":  # a name without "=": skipped, as every mail reader does
            pos += 1
            continue
        pos += 1  # "="
        while pos < end and value[pos] in " \t":
            pos += 1
        if pos < end and value[pos] == '"':
            quoted = _QUOTED.match(value, pos + 1)
            assert quoted is not None
            text = _UNESCAPE.sub(r"\1", quoted.group(0))
            pos = quoted.end() + 1  # past the closing quote (or the end, if it never came)
            tail = _BARE.match(value, min(pos, end))
            assert tail is not None
            pos = tail.end() + 1
        else:
            bare = _BARE.match(value, pos)
            assert bare is not None
            text = bare.group(0).strip()
            pos = bare.end() + 1
        if name:
            params.append((name, text))
    return _COMMENT.sub("", main).strip().lower(), params


def get(params: Params, name: str) -> str | None:
    """A parameter's value as text: RFC 2231 sections joined and decoded, else the plain value with any
    RFC 2047 encoded-words decoded (what Outlook and Gmail write in filename="...")."""
    wanted = name.lower()
    plain: str | None = None
    extended: str | None = None
    sections: dict[int, tuple[str, bool]] = {}
    for key, value in params:
        key = key.lower()
        if key == wanted:
            plain = value if plain is None else plain
        elif key.startswith(wanted) and key[len(wanted) : len(wanted) + 1] == "*":
            rest = key[len(wanted) :]
            if rest == "*":
                extended = value if extended is None else extended
            else:
                section = _SECTION.fullmatch(rest)
                if section:
                    sections.setdefault(int(section.group(1)), (value, bool(section.group(2))))
    if extended is not None:
        return _extended([(extended, True)])
    if 0 in sections:
        ordered = []
        for number in range(len(sections)):
            if number not in sections:
                break
            ordered.append(sections[number])
        return _extended(ordered)
    return None if plain is None else decode_words(plain)


def _extended(pieces: list[tuple[str, bool]]) -> str:
    """RFC 2231 §4: charset'language'%XX in the first encoded section; later ones are %XX in that charset."""
    charset = "utf-8"
    data = bytearray()
    for n, (value, encoded) in enumerate(pieces):
        if encoded:
            if n == 0 and value.count("'") >= 2:
                charset, _, value = value.split("'", 2)
                charset = charset.strip() or "utf-8"
            data += unquote_to_bytes(value)
        else:
            data += value.encode("utf-8", "surrogateescape")
    try:
        return data.decode(charset, "replace")
    except LookupError:
        return data.decode("utf-8", "replace")
