"""The search language (Mailpit's), read once into neutral terms that each store backend compiles.

    from:bob  to:"Ann Lee"  cc:x  bcc:x  reply-to:x  addressed:x  subject:invoice  message-id:<x@y>
    tag:urgent  is:read  is:unread  is:tagged  has:attachment  has:inline  larger:1M  smaller:10k
    before:2024-05-01  after:2024-04-01  after:3d  "exact phrase"  words  -negated  !negated
    auth:dkim=fail  auth:spf=pass  auth:dmarc=fail  auth:arc=none   (results of sandbox/auth's checks)

As in Mailpit, the address filters, `subject:` and `message-id:` match a substring of their own field
(case-insensitive), `tag:` a whole tag (also case-insensitive), plain words the indexed text (a prefix
unless quoted). A filter that is unknown (`is:foo`) or whose value cannot be read (`before:soon`, `to:`)
is a ValueError that names it: a query is run exactly as written, or not at all.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MAX_TERMS = 50  # more is refused: each text term is a full-text lookup, and 2,000 of them took minutes
MAX_VALUE = 1000  # characters in one filter's value: a substring test costs its length times the field's
_MAX_SIZE = 2**62  # sizes beyond this match like it, rather than overflow a 64-bit integer

# substring filters -> the field they name (msgid is message-id's other spelling)
SUBSTRING_FIELDS = {
    "to": "to", "from": "from", "cc": "cc", "bcc": "bcc", "reply-to": "reply-to", "addressed": "addressed",
    "subject": "subject", "message-id": "message-id", "msgid": "message-id",
}  # fmt: skip
# is:/has: values -> the flag they test
_FLAGS = {
    ("is", "read"): "read", ("is", "seen"): "read", ("is", "unread"): "unread", ("is", "new"): "unread",
    ("is", "tagged"): "tagged", ("has", "attachment"): "attachment", ("has", "attachments"): "attachment",
    ("has", "inline"): "inline", ("has", "inlines"): "inline",
}  # fmt: skip
AUTH_METHODS = ("spf", "dkim", "dmarc", "arc")
# RFC 8601's result words, as sandbox/auth/results.py RESULTS (the store may not import auth; a test compares
# them): a misspelt word is an unknown filter, not a query that quietly finds nothing.
AUTH_RESULTS = ("pass", "fail", "softfail", "neutral", "none", "temperror", "permerror", "policy")
_KEYS = {*SUBSTRING_FIELDS, "body", "tag", "is", "has", "before", "after", "larger", "smaller", "auth"}
_RELATIVE = re.compile(r"(\d{1,6})([hdwmy])")
_RELATIVE_SECONDS = {"h": 3600, "d": 86400, "w": 7 * 86400, "m": 30 * 86400, "y": 365 * 86400}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmg]?)i?b?")
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y/%m/%d")


@dataclass(frozen=True)
class Term:
    """One whitespace-separated piece of a query, after quotes are resolved."""

    key: str  # "" for plain text
    value: str
    quoted: bool  # a quoted value is an exact phrase; an unquoted one matches as a prefix
    negated: bool

    def __str__(self) -> str:
        return ("-" if self.negated else "") + (f"{self.key}:" if self.key else "") + self.value


def tokenize(query: str, max_terms: int | None = None) -> list[Term]:
    """Split a query into terms. `key:"two words"` and `"a phrase"` keep their spaces; an
    unterminated quote runs to the end; a key that is not a filter (`re:`, `http:`) is plain text. More
    than `max_terms` terms raise ValueError (before the rest is read)."""
    text = query.replace("\x00", " ")
    terms: list[Term] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        if max_terms is not None and len(terms) >= max_terms:
            raise ValueError(f"a search may have at most {max_terms} terms")
        negated = False
        if text[i] in "-!" and i + 1 < n and not text[i + 1].isspace():
            negated = True
            i += 1
        chunk: list[str] = []
        head = ""  # the text before the first quote: only there can a `key:` stand
        quoted = False
        while i < n and not text[i].isspace():
            if text[i] == '"':
                if not quoted:
                    head = "".join(chunk)
                quoted = True
                end = text.find('"', i + 1)
                end = n if end < 0 else end
                chunk.append(text[i + 1 : end])
                i = end + 1
            else:
                chunk.append(text[i])
                i += 1
        raw = "".join(chunk)
        if not quoted:
            head = raw
        key, sep, _ = head.partition(":")
        if sep and key.lower() in _KEYS:
            terms.append(Term(key.lower(), raw[len(key) + 1 :], quoted, negated))
        else:
            terms.append(Term("", raw, quoted, negated))
    return terms


def _has_token(text: str) -> bool:
    """Whether FTS5's unicode61 tokenizer finds a word in `text` (letters, numbers, private use)."""
    return any(unicodedata.category(c)[0] in "LN" or unicodedata.category(c) == "Co" for c in text)


def time_zone(name: str | None) -> tzinfo | None:
    """The IANA zone `name` (Mailpit's `tz` parameter); None for the server's own. ValueError if unknown."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "../x" and friends
        raise ValueError(f'unknown time zone "{name}"') from None


def _midnight(day: datetime) -> float:
    return day.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def parse_when(value: str, now: float, zone: tzinfo | None = None) -> float | None:
    """A date (in `zone`, else server-local time), `today`, `yesterday`, or an age like `3d` / `12h`."""
    try:
        return _when(value.strip().lower(), now, zone)
    except (OverflowError, OSError, ValueError):  # a year the platform's time functions cannot take
        return None


def _when(text: str, now: float, zone: tzinfo | None) -> float | None:
    if text == "today":
        return _midnight(datetime.fromtimestamp(now, zone))
    if text == "yesterday":
        return _midnight(datetime.fromtimestamp(now, zone) - timedelta(days=1))
    rel = _RELATIVE.fullmatch(text)
    if rel:
        return now - int(rel.group(1)) * _RELATIVE_SECONDS[rel.group(2)]
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text.upper(), fmt).replace(tzinfo=zone).timestamp()
        except ValueError:
            continue
    return None


def parse_size(value: str) -> int | None:
    """`2048`, `10k`, `1.5M`, `1MB`, `2GiB` -> bytes."""
    match = _SIZE.fullmatch(value.strip().lower())
    if not match:
        return None
    size = float(match.group(1)) * _SIZE_UNITS[match.group(2)]  # a 400-digit number is inf
    return int(min(size, _MAX_SIZE))


# -- what a query means: one of these per term ----------------------------------------------------------


@dataclass(frozen=True)
class Words:
    """Text to find in the indexed text (in the body alone with `body:`), as a prefix unless quoted."""

    text: str
    prefix: bool
    body_only: bool
    negated: bool = False


@dataclass(frozen=True)
class Contains:
    """A case-insensitive substring of one field (SUBSTRING_FIELDS' values; `addressed` is any address)."""

    field: str
    value: str
    negated: bool = False


@dataclass(frozen=True)
class Flag:
    """read, unread, tagged, attachment or inline."""

    name: str
    negated: bool = False


@dataclass(frozen=True)
class HasTag:
    """A whole tag, case-insensitively (Mailpit's tag names are COLLATE NOCASE)."""

    name: str
    negated: bool = False


@dataclass(frozen=True)
class Created:
    """Arrived before `when` (epoch seconds), or at or after it."""

    before: bool
    when: float
    negated: bool = False


@dataclass(frozen=True)
class Size:
    """Larger than `octets`, or smaller."""

    larger: bool
    octets: int
    negated: bool = False


@dataclass(frozen=True)
class AuthResult:
    """A stored check (AUTH_METHODS) gave this result; a message not checked yet matches none."""

    method: str
    result: str
    negated: bool = False


Filter = Words | Contains | Flag | HasTag | Created | Size | AuthResult


def parse(query: str, now: float, zone: tzinfo | None = None) -> list[Filter]:
    """The query's filters, in order, each once; dates are read in `zone` (None: server-local time).
    Over MAX_TERMS terms, an unknown filter or a value that cannot be read is a ValueError naming it."""
    return list(dict.fromkeys(_filter(term, now, zone) for term in tokenize(query, MAX_TERMS)))


def _filter(term: Term, now: float, zone: tzinfo | None) -> Filter:
    key, value, negated = term.key, term.value.strip(), term.negated
    if key in ("", "body"):
        if not _has_token(term.value):
            if not term.value.strip():
                raise ValueError(f'"{term}" is empty')
            raise ValueError(f'"{term}" has no letters or digits to search for')
        return Words(term.value, not term.quoted, key == "body", negated)
    if key == "auth":
        method, sep, result = value.lower().partition("=")
        if not sep or method not in AUTH_METHODS or result not in AUTH_RESULTS:
            raise ValueError(f'unknown filter "auth:{value}": use auth:spf=, auth:dkim=, auth:dmarc= or auth:arc=')
        return AuthResult(method, result, negated)
    if key in ("is", "has"):
        flag = _FLAGS.get((key, value.lower()))
        if flag is None:
            raise ValueError(f'unknown filter "{key}:{value}"')
        return Flag(flag, negated)
    if not value:
        raise ValueError(f'the filter "{key}:" needs a value')
    if len(value) > MAX_VALUE:
        raise ValueError(f'the value of "{key}:" is over {MAX_VALUE} characters')
    if key in ("before", "after"):
        when = parse_when(value, now, zone)
        if when is None:
            raise ValueError(f'"{key}:{value}" is not a date (YYYY-MM-DD, today, yesterday or an age like 3d)')
        return Created(key == "before", when, negated)
    if key in ("larger", "smaller"):
        size = parse_size(value)
        if size is None:
            raise ValueError(f'"{key}:{value}" is not a size (like 2048, 10k or 1.5M)')
        return Size(key == "larger", size, negated)
    if key == "tag":
        return HasTag(value, negated)
    field = SUBSTRING_FIELDS[key]
    if field == "message-id":
        value = value.strip("<>") or value  # stored as sent: with or without its angle brackets
    return Contains(field, value, negated)
