"""The search language's filters (store/query.py) compiled to a PostgreSQL boolean over the listing alias `m`,
with the SQLite store's meaning (store/_search.py): the same fields, the same matches.

Plain words go through `messages.fts` (subject A, sender B, recipients C, body D; store.py builds it from
_text.vector_text), as a tsquery this module writes from the value's folded tokens (_text.tokens): every
lexeme quoted, so nothing the user typed is tsquery syntax. An FTS5 phrase matches within one column, where
the concatenated vector's positions run on from one column into the next: a phrase of several words is
therefore asked of each weight apart (`'a':A <-> 'b':A | ... | 'a':D <-> 'b':D`), never across a boundary.
Substring filters are ILIKEs over their fields under the "C" collation, which folds ASCII letters alone,
as SQLite's LIKE does (`É` is not `é`), whatever the database's own locale; `subject:`, `from:` and `to:`
also ask `m.headers` (the trigram index `messages_headers_trgm`) to narrow the rows first. All user text
reaches PostgreSQL as bound `%s` parameters; the SQL text holds no `%` of its own.
"""

from __future__ import annotations

from datetime import tzinfo

from mailsandbox.store import _search as sqlite_search
from mailsandbox.store._search import like_pattern
from mailsandbox.store.postgres._text import tokens
from mailsandbox.store.query import (
    AUTH_METHODS,
    AuthResult,
    Contains,
    Created,
    Filter,
    Flag,
    HasTag,
    Size,
    Words,
    parse,
)

# The text search configuration of `messages.fts` (store.py): no stemming, no stop words.
CONFIG = "simple"
# The weights store.py gives the columns of messages.fts, in FTS5's column order; body: is the last.
WEIGHTS = ("A", "B", "C", "D")
BODY_WEIGHT = "D"
# A lexeme of more UTF-8 octets than this is never in a tsvector (PostgreSQL drops the word, MAXSTRLEN).
MAX_LEXEME = 2047

# SQLite's LIKE and lower() fold ASCII letters alone: so do PostgreSQL's under the "C" collation.
_C = 'COLLATE "C"'
# LIKE's escape character, a backslash whatever standard_conforming_strings says
_ESC = "E'\\\\'"
# Envelope recipients named in neither To nor Cc: Mailpit reports these as Bcc.
_ENVELOPE_BCC = (
    "EXISTS (SELECT 1 FROM json_array_elements_text(m.envelope_json::json -> 'rcpt_tos') r(v)"
    f" WHERE r.v {_C} ILIKE %s ESCAPE {_ESC}"
    f" AND strpos(lower((m.to_json || m.cc_json) {_C}), lower(('\"' || r.v || '\"') {_C})) = 0)"
)
# field -> the columns whose text it matches as a substring (one ILIKE each, OR-ed): SQLite's table, the
# one meaning of each filter, with this dialect's test of the envelope's recipients.
_LIKE_FIELDS: dict[str, tuple[str, ...]] = {
    key: tuple(_ENVELOPE_BCC if c is sqlite_search._ENVELOPE_BCC else c for c in columns)
    for key, columns in sqlite_search._LIKE_FIELDS.items()
}
_FLAGS = {
    "read": "m.read",
    "unread": "NOT m.read",
    "tagged": "m.tags != ''",
    "attachment": "m.attachments > 0",
    "inline": "m.inline > 0",
}
# The fields m.headers holds (store.py: subject, from name, from address, To's JSON, a newline apart): a
# match in one of them is a match in m.headers, so `m.headers ILIKE` narrows the rows through the trigram
# index without losing any: its ILIKE folds under the database's collation (the index's), which folds at
# least the ASCII letters "C" folds in every locale but Turkish and Azeri ones (there `I` lowers to a dotless i).
_TRIGRAM_FIELDS = frozenset({"subject", "from", "to"})
_TRIGRAM_SQL = f"m.headers ILIKE %s ESCAPE {_ESC}"
_FTS_MATCH = f"m.fts @@ to_tsquery('{CONFIG}', %s)"
# A row without a vector (a relay copy) matches no word, and so every negated one, as in SQLite (where it
# is not in messages_fts, so `NOT IN` holds).
_FTS_NOT = f"NOT coalesce({_FTS_MATCH}, FALSE)"


def _lexeme(token: str, prefix: bool, weight: str) -> str:
    """One token as a quoted tsquery lexeme: a quote doubled, a backslash escaped (tokens have neither)."""
    quoted = "'" + token.replace("\\", "\\\\").replace("'", "''") + "'"
    label = ("*" if prefix else "") + weight
    return f"{quoted}:{label}" if label else quoted


def _phrase(words: list[str], prefix: bool, weight: str) -> str:
    last = len(words) - 1
    return " <-> ".join(_lexeme(w, prefix and i == last, weight) for i, w in enumerate(words))


def tsquery(f: Words) -> str | None:
    """The tsquery text of a Words filter; None when no indexed word can match it (no tokens, or one
    longer than a tsvector keeps)."""
    words = tokens(f.text)
    if not words or any(len(w.encode()) > MAX_LEXEME for w in words):
        return None
    if f.body_only:
        return _phrase(words, f.prefix, BODY_WEIGHT)
    if len(words) == 1:
        return _phrase(words, f.prefix, "")
    return " | ".join(f"({_phrase(words, f.prefix, w)})" for w in WEIGHTS)


def _column_sql(f: Flag | HasTag | Created | Size | AuthResult) -> tuple[str, list[object]]:
    if isinstance(f, Flag):
        return _FLAGS[f.name], []
    if isinstance(f, HasTag):
        return f"m.tags != '' AND strpos(',' || lower(m.tags {_C}) || ',', %s) > 0", [f",{f.name.lower()},"]
    if isinstance(f, Created):
        return ("m.created < %s" if f.before else "m.created >= %s"), [f.when]
    if isinstance(f, Size):
        return ("m.size > %s" if f.larger else "m.size < %s"), [f.octets]
    # the method is one of message_auth's columns (query.AUTH_METHODS), never user text
    if f.method not in AUTH_METHODS:
        raise ValueError(f"unknown authentication method {f.method!r}")
    return f"EXISTS (SELECT 1 FROM message_auth a WHERE a.rowid = m.rowid AND a.{f.method} = %s)", [f.result]


def _like_sql(f: Contains) -> tuple[str, list[object]]:
    fields = _LIKE_FIELDS[f.field]
    sql = " OR ".join(c if c is _ENVELOPE_BCC else f"{c} {_C} ILIKE %s ESCAPE {_ESC}" for c in fields)
    return f"({sql})", [like_pattern(f.value)] * len(fields)


def compile_filters(filters: list[Filter], one_row: bool = False) -> tuple[str, list[object]]:
    """An SQL boolean over `m` (table messages) and its `%s` parameters; "TRUE" for no filters.

    Positive words share one `m.fts @@` (their tsqueries AND-ed), negated ones one `NOT (m.fts @@ ...)`
    (OR-ed). `one_row`: the boolean tests one known row (a tagging rule on arrival, `m.rowid = %s AND
    (...)`), so no trigram narrowing: every test here reads that row alone, none lists the matches.
    """
    positive: list[str] = []
    negative: list[str] = []
    clauses: list[str] = []  # column tests
    params: list[object] = []
    narrow: list[str] = []  # trigram-indexed supersets of the substring tests below
    narrow_params: list[object] = []
    likes: list[str] = []
    like_params: list[object] = []
    never = False  # a positive word no vector can hold
    for f in filters:
        if isinstance(f, Words):
            text = tsquery(f)
            if text is None:
                never = never or not f.negated  # a negated one always holds: it is left out
            else:
                (negative if f.negated else positive).append(text)
            continue
        if isinstance(f, Contains):
            if f.field in _TRIGRAM_FIELDS and not f.negated and not one_row:
                narrow.append(_TRIGRAM_SQL)
                narrow_params.append(like_pattern(f.value))
            sql, values = _like_sql(f)
            into, into_params = likes, like_params
        else:
            sql, values = _column_sql(f)
            into, into_params = clauses, params
        into.append(f"NOT ({sql})" if f.negated else sql)
        into_params.extend(values)
    if never:
        return "FALSE", []
    fts: list[str] = []
    fts_params: list[object] = []
    if positive:
        fts.append(_FTS_MATCH)
        fts_params.append(" & ".join(f"({q})" for q in positive))
    if negative:
        fts.append(_FTS_NOT)
        fts_params.append(" | ".join(f"({q})" for q in negative))
    all_clauses = clauses + fts + narrow + likes
    if not all_clauses:
        return "TRUE", []
    return " AND ".join(all_clauses), [*params, *fts_params, *narrow_params, *like_params]


def compile_query(
    query: str, now: float, zone: tzinfo | None = None, one_row: bool = False
) -> tuple[str, list[object]]:
    """`query` read (store/query.py: ValueError names what cannot be read) and compiled (compile_filters)."""
    return compile_filters(parse(query, now, zone), one_row)
