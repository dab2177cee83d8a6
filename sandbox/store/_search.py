"""The search language (Mailpit's) compiled to an SQL boolean over the listing alias `m`.

    from:bob  to:"Ann Lee"  cc:x  bcc:x  reply-to:x  addressed:x  subject:invoice  message-id:<x@y>
    tag:urgent  is:read  is:unread  is:tagged  has:attachment  has:inline  larger:1M  smaller:10k
    before:2024-05-01  after:2024-04-01  after:3d  "exact phrase"  words  -negated  !negated
    auth:dkim=fail  auth:spf=pass  auth:dmarc=fail  auth:arc=none   (results of sandbox/auth's checks)

As in Mailpit, the address filters, `subject:` and `message-id:` match a substring of their own field
(case-insensitive), `tag:` a whole tag (also case-insensitive). Plain words go through the FTS5 index
(`messages_fts`), never a LIKE over bodies; each becomes a quoted FTS5 string, so quotes, `*`, `:`,
`AND`/`NOT`, `NEAR` or parentheses typed by the user are data, never FTS5 syntax. All user text reaches SQLite as bound
parameters. A filter that is unknown (`is:foo`) or whose value cannot be read (`before:soon`, `to:`) is a
ValueError that names it: a query is run exactly as written, or not at all.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailsandbox.store import StoreError

MAX_TERMS = 50  # more is refused: each text term is a full-text lookup, and 2,000 of them took minutes
SEARCH_SECONDS = 2.0  # the time a search may run before it is interrupted (SqliteStore.search_seconds)
MAX_VALUE = 1000  # characters in one filter's value: a LIKE costs the value's length times the field's
_MAX_SIZE = 2**62  # sizes beyond this match like it, rather than overflow SQLite's INTEGER


class QueryTooSlow(StoreError):
    """A search ran past its time budget and was interrupted."""


# Envelope recipients named in neither To nor Cc: Mailpit reports these as Bcc.
_ENVELOPE_BCC = (
    "EXISTS (SELECT 1 FROM json_each(m.envelope_json, '$.rcpt_tos') r WHERE r.value LIKE ? ESCAPE '\\'"
    " AND instr(lower(m.to_json || m.cc_json), lower('\"' || r.value || '\"')) = 0)"
)
# filter -> the fields whose text it matches as a substring (one LIKE each, OR-ed)
_LIKE_FIELDS: dict[str, tuple[str, ...]] = {
    "to": ("m.to_json",),
    "from": ("m.from_name", "m.from_addr"),
    "cc": ("m.cc_json",),
    "bcc": ("m.bcc_json", _ENVELOPE_BCC),
    "reply-to": ("m.reply_to_json",),
    "subject": ("m.subject",),
    "message-id": ("m.message_id",),
    "msgid": ("m.message_id",),
}
_LIKE_FIELDS["addressed"] = tuple(f for k in ("to", "from", "cc", "bcc", "reply-to") for f in _LIKE_FIELDS[k])
_FLAGS: dict[tuple[str, str], str] = {
    ("is", "read"): "m.read = 1",
    ("is", "seen"): "m.read = 1",
    ("is", "unread"): "m.read = 0",
    ("is", "new"): "m.read = 0",
    ("is", "tagged"): "m.tags != ''",
    ("has", "attachment"): "m.attachments > 0",
    ("has", "attachments"): "m.attachments > 0",
    ("has", "inline"): "m.inline > 0",
    ("has", "inlines"): "m.inline > 0",
}
_KEYS = {*_LIKE_FIELDS, "body", "tag", "is", "has", "before", "after", "larger", "smaller", "auth"}
# The filters whose fields headers_tri indexes (_schema.HEADERS_TEXT): a value of 3 characters or more
# first looks up the rows holding all its trigrams; the LIKE then decides among those few.
_TRIGRAM_KEYS = frozenset({"subject", "from", "to"})
_TRIGRAM_IN = "m.rowid IN (SELECT rowid FROM headers_tri WHERE headers_tri MATCH ?)"
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


def fts_phrase(value: str, prefix: bool) -> str:
    """A user value as one FTS5 string: doubled quotes make every character literal."""
    phrase = '"' + value.replace('"', '""') + '"'
    return phrase + " *" if prefix else phrase


def _like(value: str) -> str:
    """`%value%` with LIKE's own wildcards (and the escape character) made literal."""
    return "%" + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


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


_AUTH_METHODS = ("spf", "dkim", "dmarc", "arc")  # message_auth's columns
# RFC 8601's result words, as sandbox/auth/results.py RESULTS (the store may not import auth; a test compares
# them): a misspelt word is an unknown filter, not a query that quietly finds nothing.
_AUTH_RESULTS = ("pass", "fail", "softfail", "neutral", "none", "temperror", "permerror", "policy")


def _auth_sql(value: str) -> tuple[str, list[object]] | None:
    """auth:METHOD=RESULT: messages whose stored check gave that result (one not checked yet matches none)."""
    method, sep, result = value.partition("=")
    if not sep or method not in _AUTH_METHODS or result not in _AUTH_RESULTS:
        return None
    return f"m.rowid IN (SELECT rowid FROM message_auth WHERE {method} = ?)", [result]


def _plain_sql(term: Term, now: float, zone: tzinfo | None) -> tuple[str, list[object]]:
    """SQL for a filter that is not a full-text match; ValueError names a filter that means nothing."""
    key, value = term.key, term.value.strip()
    if key == "auth":
        found = _auth_sql(value.lower())
        if found is None:
            raise ValueError(f'unknown filter "auth:{value}": use auth:spf=, auth:dkim=, auth:dmarc= or auth:arc=')
        return found
    if key in ("is", "has"):
        flag = _FLAGS.get((key, value.lower()))
        if flag is None:
            raise ValueError(f'unknown filter "{key}:{value}"')
        return flag, []
    if not value:
        raise ValueError(f'the filter "{key}:" needs a value')
    if len(value) > MAX_VALUE:
        raise ValueError(f'the value of "{key}:" is over {MAX_VALUE} characters')
    if key in ("before", "after"):
        when = parse_when(value, now, zone)
        if when is None:
            raise ValueError(f'"{key}:{value}" is not a date (YYYY-MM-DD, today, yesterday or an age like 3d)')
        return ("m.created < ?" if key == "before" else "m.created >= ?"), [when]
    if key in ("larger", "smaller"):
        size = parse_size(value)
        if size is None:
            raise ValueError(f'"{key}:{value}" is not a size (like 2048, 10k or 1.5M)')
        return ("m.size > ?" if key == "larger" else "m.size < ?"), [size]
    if key == "tag":
        # Whole tags, case-insensitively: Mailpit's tag names are COLLATE NOCASE.
        return "m.tags != '' AND instr(',' || lower(m.tags) || ',', ?) > 0", [f",{value.lower()},"]
    fields = _LIKE_FIELDS[key]
    if key in ("message-id", "msgid"):
        value = value.strip("<>") or value  # stored as sent: with or without its angle brackets
    pattern = _like(value)
    sql = " OR ".join(f if f is _ENVELOPE_BCC else f"{f} LIKE ? ESCAPE '\\'" for f in fields)
    return f"({sql})", [pattern] * len(fields)


def trigrams(value: str) -> str | None:
    """An FTS5 query for the rows of headers_tri holding trigrams that cover `value` (each a quoted string,
    so nothing in it is query syntax); None for a value too short to have one. Positions are not indexed,
    so this finds a superset of the rows with `value` as a substring: the caller's LIKE narrows it. Every
    third trigram (and the last) covers each character: each one more costs a pass over its row list, and
    common ones ("exa", ".te") list nearly every row."""
    if len(value) < 3:
        return None
    starts = [*range(0, len(value) - 2, 3), len(value) - 3]
    grams = dict.fromkeys(value[i : i + 3] for i in starts)
    return " AND ".join('"' + g.replace('"', '""') + '"' for g in grams)


def _fts_expr(term: Term) -> str:
    """The FTS5 expression for a text term; ValueError when it holds no word the index could find."""
    if not _has_token(term.value):
        if not term.value.strip():
            raise ValueError(f'"{term}" is empty')
        raise ValueError(f'"{term}" has no letters or digits to search for')
    phrase = fts_phrase(term.value, prefix=not term.quoted)
    return f"body : {phrase}" if term.key == "body" else phrase


def compile_query(
    query: str, now: float, zone: tzinfo | None = None, one_row: bool = False
) -> tuple[str, list[object]]:
    """Compile `query` to an SQL boolean over `m` (table messages) and its parameters; dates are read
    in `zone` (None: server-local time). `one_row`: the boolean tests a single known row (a tagging rule
    on arrival), so no trigram look-up, which would list every matching row of the store to test one.

    Positive text terms share one FTS5 MATCH (implicit AND); negated text terms share one
    `NOT IN (... MATCH a OR b)`, since FTS5 has no unary NOT. An empty query compiles to "1"
    (everything). A term repeated is looked up once. Over MAX_TERMS terms, an unknown filter or a value
    that cannot be read is a ValueError.
    """
    positive: list[str] = []
    negative: list[str] = []
    clauses: list[str] = []  # column tests: cheap
    params: list[object] = []
    likes: list[str] = []  # substring tests: a scan of their field, so after the index narrowed the rows
    like_params: list[object] = []
    for term in dict.fromkeys(tokenize(query, MAX_TERMS)):
        if term.key in ("", "body"):
            (negative if term.negated else positive).append(_fts_expr(term))
            continue
        sql, values = _plain_sql(term, now, zone)
        if term.key in _TRIGRAM_KEYS and not term.negated and not one_row and (grams := trigrams(term.value.strip())):
            clauses.append(_TRIGRAM_IN)
            params.append(grams)
        into, into_params = (likes, like_params) if term.key in _LIKE_FIELDS else (clauses, params)
        into.append(f"NOT ({sql})" if term.negated else sql)
        into_params.extend(values)
    fts_clauses: list[str] = []
    fts_params: list[object] = []
    if positive:
        fts_clauses.append(_FTS_IN)
        fts_params.append(" AND ".join(positive))
    if negative:
        fts_clauses.append(_FTS_NOT_IN)
        fts_params.append(" OR ".join(negative))
    # SQLite evaluates AND left to right: cheap column tests, then the index, then substrings.
    all_clauses = clauses + fts_clauses + likes
    if not all_clauses:
        return "1", []
    return " AND ".join(all_clauses), [*params, *fts_params, *like_params]
