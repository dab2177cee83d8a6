"""The search language's filters (store/query.py) compiled to an SQL boolean over the listing alias `m`.

Plain words go through the FTS5 index (`messages_fts`), never a LIKE over bodies; each becomes a quoted FTS5
string, so quotes, `*`, `:`, `AND`/`NOT`, `NEAR` or parentheses typed by the user are data, never FTS5 syntax.
Substring filters are LIKEs over their fields; `subject:`, `from:` and `to:` first narrow the rows through
the trigram index `headers_tri`. All user text reaches SQLite as bound parameters.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from datetime import tzinfo

from mailsandbox.store import StoreError
from mailsandbox.store.query import AuthResult, Contains, Created, Filter, Flag, HasTag, Size, Words, parse

SEARCH_SECONDS = 2.0  # the time a search may run before it is interrupted (SqliteStore.search_seconds)


class QueryTooSlow(StoreError):
    """A search ran past its time budget and was interrupted."""


# Envelope recipients named in neither To nor Cc: Mailpit reports these as Bcc.
_ENVELOPE_BCC = (
    "EXISTS (SELECT 1 FROM json_each(m.envelope_json, '$.rcpt_tos') r WHERE r.value LIKE ? ESCAPE '\\'"
    " AND instr(lower(m.to_json || m.cc_json), lower('\"' || r.value || '\"')) = 0)"
)
# field -> the columns whose text it matches as a substring (one LIKE each, OR-ed)
_LIKE_FIELDS: dict[str, tuple[str, ...]] = {
    "to": ("m.to_json",),
    "from": ("m.from_name", "m.from_addr"),
    "cc": ("m.cc_json",),
    "bcc": ("m.bcc_json", _ENVELOPE_BCC),
    "reply-to": ("m.reply_to_json",),
    "subject": ("m.subject",),
    "message-id": ("m.message_id",),
}
_LIKE_FIELDS["addressed"] = tuple(f for k in ("to", "from", "cc", "bcc", "reply-to") for f in _LIKE_FIELDS[k])
_FLAGS = {
    "read": "m.read = 1",
    "unread": "m.read = 0",
    "tagged": "m.tags != ''",
    "attachment": "m.attachments > 0",
    "inline": "m.inline > 0",
}
# The fields headers_tri indexes (_schema.HEADERS_TEXT): a value of 3 characters or more first looks up
# the rows holding its trigrams; the LIKE then decides among those few.
_TRIGRAM_FIELDS = frozenset({"subject", "from", "to"})
# Index look-ups, each a list of rowids: all of a query's are intersected before any message row is read
# (`m.rowid IN (a INTERSECT b)`), where two INs read the row of every candidate of the first (50,000
# senders' rows for 17,000 matches of a sender and a word in a million: 141 -> 102 ms, far more when cold).
_TRIGRAM_SELECT = "SELECT rowid FROM headers_tri WHERE headers_tri MATCH ?"
_FTS_SELECT = "SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?"
_FTS_NOT_IN = "m.rowid NOT IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?)"
# The same for one known row: FTS5 looks the row up in each term's list, where IN would list every match.
_FTS_HAS = "EXISTS (SELECT 1 FROM messages_fts WHERE messages_fts MATCH ? AND rowid = m.rowid)"
_FTS_HAS_NOT = "NOT " + _FTS_HAS


def fts_phrase(value: str, prefix: bool) -> str:
    """A user value as one FTS5 string: doubled quotes make every character literal."""
    phrase = '"' + value.replace('"', '""') + '"'
    return phrase + " *" if prefix else phrase


def like_pattern(value: str) -> str:
    """`%value%` with LIKE's own wildcards (and the escape character) made literal."""
    return "%" + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


# How many messages a trigram may be in and still be worth its row list (a fraction of the store), how
# many such a look-up takes, and how many trigrams' counts it reads at most to find them.
COMMON_GRAM, MAX_GRAMS, MAX_COUNTED = 0.2, 2, 4
# Rows of headers_tri holding a trigram (TrigramCounts.bound: a connection and the store's size; "" -> the size).
GramCounts = Callable[[str], int]


def trigrams(value: str, counts: GramCounts | None = None) -> str | None:
    """An FTS5 query for the rows of headers_tri holding trigrams of `value` (each a quoted string, so
    nothing in it is query syntax); None for a value too short to have one. Positions are not indexed, and
    any of its trigrams finds a superset of the rows with `value` as a substring: the caller's LIKE
    narrows it. Each trigram costs a pass over its row list, and common ones ("exa", ".te") list nearly
    every row: without `counts`, every third (and the last), which covers each character; with, the first
    MAX_GRAMS of those in under COMMON_GRAM of the rows, the rarest if none is (a common trigram's count
    also reads its whole list: at most MAX_COUNTED are counted)."""
    if len(value) < 3:
        return None
    starts = [*range(0, len(value) - 2, 3), len(value) - 3]
    grams = list(dict.fromkeys(value[i : i + 3] for i in starts))
    if counts is not None:
        bound = COMMON_GRAM * counts("")
        counted: list[tuple[int, str]] = []
        rare: list[str] = []
        for gram in dict.fromkeys(g.lower() for g in grams[:MAX_COUNTED]):
            n = counts(gram)
            counted.append((n, gram))
            if n <= bound:
                rare.append(gram)
                if len(rare) == MAX_GRAMS:
                    break
        grams = rare or [min(counted)[1]]
    return " AND ".join('"' + g.replace('"', '""') + '"' for g in grams)


class TrigramCounts:
    """How many messages hold each trigram (FTS5's vocabulary of headers_tri), remembered while the store's
    size stays within a quarter of what it was: a common trigram's count reads its whole row list (14 ms
    at a million messages), a rare one's well under 1 ms. Shared by the store's reader threads."""

    MAX = 4096  # trigrams remembered; then it starts over

    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, int]] = {}  # trigram -> (rows holding it, store size then)
        self._lock = threading.Lock()

    def bound(self, conn: sqlite3.Connection, total: int) -> GramCounts:
        """`trigrams`' counts through `conn`, in a store of `total` messages ("" answers `total`)."""
        return lambda gram: total if not gram else self._count(conn, gram, total)

    def _count(self, conn: sqlite3.Connection, gram: str, total: int) -> int:
        with self._lock:
            known = self._counts.get(gram)
        if known is not None and abs(known[1] - total) <= total // 4:
            return known[0]
        conn.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS temp.headers_tri_vocab USING fts5vocab(main, headers_tri, row)"
        )
        row = conn.execute("SELECT doc FROM temp.headers_tri_vocab WHERE term = ?", (gram,)).fetchone()
        found = int(row[0]) if row else 0
        with self._lock:
            if len(self._counts) >= self.MAX:
                self._counts.clear()
            self._counts[gram] = (found, total)
        return found


def _column_sql(f: Flag | HasTag | Created | Size | AuthResult) -> tuple[str, list[object]]:
    if isinstance(f, Flag):
        return _FLAGS[f.name], []
    if isinstance(f, HasTag):
        return "m.tags != '' AND instr(',' || lower(m.tags) || ',', ?) > 0", [f",{f.name.lower()},"]
    if isinstance(f, Created):
        return ("m.created < ?" if f.before else "m.created >= ?"), [f.when]
    if isinstance(f, Size):
        return ("m.size > ?" if f.larger else "m.size < ?"), [f.octets]
    # the method is one of message_auth's columns (query.AUTH_METHODS), never user text
    return f"m.rowid IN (SELECT rowid FROM message_auth WHERE {f.method} = ?)", [f.result]


def _like_sql(f: Contains) -> tuple[str, list[object]]:
    fields = _LIKE_FIELDS[f.field]
    sql = " OR ".join(c if c is _ENVELOPE_BCC else f"{c} LIKE ? ESCAPE '\\'" for c in fields)
    return f"({sql})", [like_pattern(f.value)] * len(fields)


def compile_filters(
    filters: list[Filter], one_row: bool = False, counts: GramCounts | None = None
) -> tuple[str, list[object]]:
    """An SQL boolean over `m` (table messages) and its parameters. `one_row`: the boolean tests a single
    known row (a tagging rule on arrival), so no trigram look-up and no list of the full-text matches,
    which would list every matching row of the store to test one. `counts`: how many rows hold a trigram,
    to look candidates up by the rarest ones.

    Positive text terms share one FTS5 MATCH (implicit AND); negated text terms share one
    `NOT IN (... MATCH a OR b)`, since FTS5 has no unary NOT. No filters compile to "1" (everything).
    """
    positive: list[str] = []
    negative: list[str] = []
    clauses: list[str] = []  # column tests: cheap
    params: list[object] = []
    lookups: list[tuple[str, object]] = []  # (an index look-up's SELECT of rowids, its MATCH parameter)
    likes: list[str] = []  # substring tests: a scan of their field, so after the index narrowed the rows
    like_params: list[object] = []
    for f in filters:
        if isinstance(f, Words):
            phrase = fts_phrase(f.text, prefix=f.prefix)
            (negative if f.negated else positive).append(f"body : {phrase}" if f.body_only else phrase)
            continue
        if isinstance(f, Contains):
            if f.field in _TRIGRAM_FIELDS and not f.negated and not one_row and (grams := trigrams(f.value, counts)):
                lookups.append((_TRIGRAM_SELECT, grams))
            sql, values = _like_sql(f)
            into, into_params = likes, like_params
        else:
            sql, values = _column_sql(f)
            into, into_params = clauses, params
        into.append(f"NOT ({sql})" if f.negated else sql)
        into_params.extend(values)
    fts_clauses: list[str] = []
    fts_params: list[object] = []
    if positive and one_row:
        fts_clauses.append(_FTS_HAS)
        fts_params.append(" AND ".join(positive))
    elif positive:
        lookups.append((_FTS_SELECT, " AND ".join(positive)))
    if negative:
        fts_clauses.append(_FTS_HAS_NOT if one_row else _FTS_NOT_IN)
        fts_params.append(" OR ".join(negative))
    if lookups:
        clauses.append("m.rowid IN (" + " INTERSECT ".join(sql for sql, _param in lookups) + ")")
        params.extend(param for _sql, param in lookups)
    # SQLite evaluates AND left to right: cheap column tests, then the index, then substrings.
    all_clauses = clauses + fts_clauses + likes
    if not all_clauses:
        return "1", []
    return " AND ".join(all_clauses), [*params, *fts_params, *like_params]


def compile_query(
    query: str, now: float, zone: tzinfo | None = None, one_row: bool = False, counts: GramCounts | None = None
) -> tuple[str, list[object]]:
    """`query` read (store/query.py: ValueError names what cannot be read) and compiled (compile_filters)."""
    return compile_filters(parse(query, now, zone), one_row, counts)
