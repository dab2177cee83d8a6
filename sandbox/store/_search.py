"""The search language (Mailpit-like) compiled to an SQL boolean over the listing alias `m`.

    from:bob  to:"Ann Lee"  subject:invoice  is:unread  is:read  has:attachment
    before:2024-05-01  after:2024-04-01  after:3d  larger:1M  smaller:10k
    message-id:<x@y>  "exact phrase"  words  -negated  !negated

Text terms go through the FTS5 index (`messages_fts`), never a LIKE over bodies. All user text
reaches SQLite as bound parameters, and each text term becomes a quoted FTS5 string, so quotes,
`*`, `:`, `AND`/`NOT`, `NEAR` or parentheses typed by the user are data, never FTS5 syntax.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from sandbox.store import StoreError

MAX_TERMS = 50  # more is refused: each text term is a full-text lookup, and 2,000 of them took minutes
SEARCH_SECONDS = 2.0  # the time a search may run before it is interrupted (SqliteStore.search_seconds)
_MAX_SIZE = 2**62  # sizes beyond this match like it, rather than overflow SQLite's INTEGER


class QueryTooSlow(StoreError):
    """A search ran past its time budget and was interrupted."""

# FTS5 columns a text term may target; plain words search all of them.
_FTS_COLUMNS = {
    "from": "sender",
    "to": "recipients",
    "cc": "recipients",
    "bcc": "recipients",
    "subject": "subject",
    "body": "body",
}
_KEYS = {*_FTS_COLUMNS, "is", "has", "before", "after", "message-id", "msgid", "larger", "smaller"}
_FTS_IN = "m.rowid IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?)"
_FTS_NOT_IN = "m.rowid NOT IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?)"
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


def tokenize(query: str, max_terms: int | None = None) -> list[Term]:
    """Split a query into terms. `key:"two words"` and `"a phrase"` keep their spaces; an
    unterminated quote runs to the end; a key that is not ours (`re:`) is plain text. More than
    `max_terms` terms raise ValueError (before the rest is read)."""
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


def fts_phrase(value: str, prefix: bool) -> str:
    """A user value as one FTS5 string: doubled quotes make every character literal."""
    phrase = '"' + value.replace('"', '""') + '"'
    return phrase + " *" if prefix else phrase


def _midnight(day: datetime) -> float:
    return day.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def parse_when(value: str, now: float) -> float | None:
    """A date (server-local time), `today`, `yesterday`, or an age like `3d` / `12h` / `2w`."""
    try:
        return _when(value.strip().lower(), now)
    except (OverflowError, OSError, ValueError):  # a year the platform's time functions cannot take
        return None


def _when(text: str, now: float) -> float | None:
    if text == "today":
        return _midnight(datetime.fromtimestamp(now))
    if text == "yesterday":
        return _midnight(datetime.fromtimestamp(now) - timedelta(days=1))
    rel = _RELATIVE.fullmatch(text)
    if rel:
        return now - int(rel.group(1)) * _RELATIVE_SECONDS[rel.group(2)]
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text.upper(), fmt).timestamp()
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


def _plain_sql(term: Term, now: float) -> tuple[str, list[object]] | None:
    """SQL for a term that is not a full-text match; None when the term means nothing."""
    key, value = term.key, term.value.strip().lower()
    if key == "is" and value in ("unread", "new"):
        return "m.read = 0", []
    if key == "is" and value in ("read", "seen"):
        return "m.read = 1", []
    if key == "has" and value in ("attachment", "attachments"):
        return "m.attachments > 0", []
    if key in ("before", "after"):
        when = parse_when(term.value, now)
        if when is None:
            return None
        return ("m.created < ?" if key == "before" else "m.created >= ?"), [when]
    if key in ("larger", "smaller"):
        size = parse_size(term.value)
        if size is None:
            return None
        return ("m.size > ?" if key == "larger" else "m.size < ?"), [size]
    if key in ("message-id", "msgid"):
        bare = term.value.strip().strip("<>")
        if not bare:
            return None
        # The header is stored as sent; accept it with or without its angle brackets.
        return "m.message_id IN (?, ?)", [bare, f"<{bare}>"]
    return None


def _fts_expr(term: Term) -> str | None:
    """The FTS5 expression for a text term; None when it holds no indexable word."""
    if not _has_token(term.value):
        return None
    phrase = fts_phrase(term.value, prefix=not term.quoted)
    column = _FTS_COLUMNS.get(term.key)
    return f"{column} : {phrase}" if column else phrase


def compile_query(query: str, now: float) -> tuple[str, list[object]]:
    """Compile `query` to an SQL boolean over `m` (table messages) and its parameters.

    Positive text terms share one FTS5 MATCH (implicit AND); negated text terms share one
    `NOT IN (... MATCH a OR b)`, since FTS5 has no unary NOT. An empty or meaningless query
    compiles to "1" (everything). A term repeated is looked up once; over MAX_TERMS is a ValueError.
    """
    positive: list[str] = []
    negative: list[str] = []
    clauses: list[str] = []
    params: list[object] = []
    for term in dict.fromkeys(tokenize(query, MAX_TERMS)):
        if term.key in ("", *_FTS_COLUMNS):
            expr = _fts_expr(term)
            if expr is not None:
                (negative if term.negated else positive).append(expr)
            continue
        compiled = _plain_sql(term, now)
        if compiled is None:
            continue
        sql, values = compiled
        clauses.append(f"NOT ({sql})" if term.negated else sql)
        params.extend(values)
    fts_clauses: list[str] = []
    fts_params: list[object] = []
    if positive:
        fts_clauses.append(_FTS_IN)
        fts_params.append(" AND ".join(positive))
    if negative:
        fts_clauses.append(_FTS_NOT_IN)
        fts_params.append(" OR ".join(negative))
    # Cheap column tests first: SQLite evaluates AND left to right.
    all_clauses = clauses + fts_clauses
    if not all_clauses:
        return "1", []
    return " AND ".join(all_clauses), [*params, *fts_params]
