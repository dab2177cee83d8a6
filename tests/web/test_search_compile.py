"""The search language against a real SQLite holding the store's schema (its own migrations, sandbox/store/_schema.py)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailsandbox.store._schema import HEADERS_TEXT, migrate
from mailsandbox.store._search import compile_query, fts_phrase
from mailsandbox.store.query import parse_size, parse_when, time_zone, tokenize

NOW = datetime(2024, 6, 15, 12, 0).timestamp()
DAY = 86400.0

# id, age (days), subject, from, to, bcc, envelope rcpts, body, read, attachments, size, message-id
ROWS = [
    (
        "a",
        1,
        "Invoice 42 for May",
        ("Bob Smith", "bob@example.test"),
        [("Ann", "ann@example.test")],
        [],
        ["ann@example.test"],
        "Please pay the invoice.",
        0,
        1,
        2000,
        "<inv42@example.test>",
    ),
    (
        "b",
        2,
        "Weekly newsletter",
        ("News", "news@letters.test"),
        [("", "ann@example.test")],
        [("", "hidden@example.test")],
        ["ann@example.test", "hidden@example.test"],
        "Café prices (AND more) are up *today*",
        1,
        0,
        500,
        "<nl@letters.test>",
    ),
    (
        "c",
        10,
        'Quote "special" offer: NOT free',
        ("Carol", "carol@shop.test"),
        [("Bob", "bob@example.test")],
        [],
        ["bob@example.test"],
        "An offer with a NEAR(x y) in it",
        0,
        0,
        3_000_000,
        "<q@shop.test>",
    ),
    (
        "d",
        40,
        "Re: invoice",
        ("Ann", "ann@example.test"),
        [("Bob Smith", "bob@example.test")],
        [],
        ["bob@example.test"],
        "Paid yesterday. Thanks!",
        1,
        2,
        9000,
        "<re@example.test>",
    ),
]


# id -> (cc, reply-to, tags, inline parts)
EXTRA = {
    "a": ([("Carl", "carl@example.test")], [], "urgent,billing", 1),
    "b": ([], [("", "replies@letters.test")], "", 0),
    "c": ([], [], "urgent", 0),
    "d": ([("", "ann@example.test")], [], "", 2),
}


def _schema(conn: sqlite3.Connection) -> None:
    migrate(conn)


@pytest.fixture
def db() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    _schema(conn)
    for i, (mid, age, subject, sender, to, bcc, rcpts, body, read, att, size, msgid) in enumerate(ROWS, 1):
        cc, reply_to, tags, inline = EXTRA[mid]
        conn.execute(
            "INSERT INTO messages(rowid, id, created, message_id, subject, from_name, from_addr, to_json,"
            " cc_json, bcc_json, reply_to_json, size, attachments, inline, read, envelope_json, tags)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                i,
                mid,
                NOW - age * DAY,
                msgid,
                subject,
                sender[0],
                sender[1],
                json.dumps(to),
                json.dumps(cc),
                json.dumps(bcc),
                json.dumps(reply_to),
                size,
                att,
                inline,
                read,
                json.dumps({"mail_from": sender[1], "rcpt_tos": rcpts}),
                tags,
            ),
        )
        recipients = " ".join(f"{n} {a}" for n, a in [*to, *cc, *bcc]) + " " + " ".join(rcpts)
        conn.execute(
            "INSERT INTO messages_fts(rowid, subject, sender, recipients, body) VALUES (?,?,?,?,?)",
            (i, subject, f"{sender[0]} {sender[1]}", recipients, body),
        )
    # a relay child copy: never listed (parent IS NOT NULL)
    conn.execute("INSERT INTO messages(rowid, id, parent, created, subject) VALUES (99, 'child', 1, ?, 'x')", (NOW,))
    conn.execute("INSERT INTO messages_fts(rowid, subject, body) VALUES (99, 'Invoice', 'invoice')")
    conn.execute(
        f"INSERT INTO headers_tri(rowid, text) SELECT rowid, {HEADERS_TEXT} FROM messages WHERE parent IS NULL"
    )
    yield conn
    conn.close()


def search(conn: sqlite3.Connection, query: str) -> list[str]:
    found = []
    for one_row in (False, True):  # with the trigram look-up and without: the same rows
        where, params = compile_query(query, NOW, one_row=one_row)
        rows = conn.execute(
            f"SELECT m.id FROM messages m WHERE m.parent IS NULL AND ({where}) ORDER BY m.created DESC, m.rowid DESC",
            params,
        ).fetchall()
        found.append([r[0] for r in rows])
    assert found[0] == found[1], query
    return found[0]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["a", "b", "c", "d"]),
        ("   ", ["a", "b", "c", "d"]),
        ("invoice", ["a", "d"]),
        ("INVOICE", ["a", "d"]),
        ("invo", ["a", "d"]),  # unquoted words match as prefixes
        ('"invo"', []),  # quoted phrases are exact
        ('"invoice 42"', ["a"]),
        ('"42 invoice"', []),
        ("invoice -re", ["a"]),
        ("!subject:re invoice", ["a"]),
        ("from:bob", ["a"]),
        ('from:"Bob Smith"', ["a"]),
        ("from:bob@example.test", ["a"]),
        ("from:EXAMPLE.test", ["a", "d"]),  # a substring, in any case (as Mailpit's LIKE)
        ("-from:bob", ["b", "c", "d"]),
        ("to:ann@example.test", ["a", "b"]),
        ("to:hidden@example.test", []),  # To only: Bcc and envelope recipients are bcc:
        ("cc:carl", ["a"]),
        ("cc:ann", ["d"]),
        ("cc:bob", []),
        ("bcc:hidden", ["b"]),
        ("bcc:ann", []),  # ann is in To or Cc wherever she was a recipient
        ("bcc:bob", []),
        ("reply-to:replies", ["b"]),
        ("addressed:replies", ["b"]),
        ("addressed:carl", ["a"]),
        ("addressed:hidden", ["b"]),
        ("-addressed:ann", ["c"]),
        ("subject:invoice", ["a", "d"]),
        ("subject:voice", ["a", "d"]),  # a substring, as in Mailpit
        ('subject:"for may"', ["a"]),
        ("subject:paid", []),
        ("subject:100%", []),  # LIKE's wildcards are literal
        ("subject:_", []),
        ("body:paid", ["d"]),
        ("tag:urgent", ["a", "c"]),
        ("tag:URGENT", ["a", "c"]),  # case-insensitively, as Mailpit's tag names (COLLATE NOCASE)
        ("tag:urg", []),  # a whole tag
        ("tag:billing", ["a"]),
        ("-tag:urgent", ["b", "d"]),
        ("is:tagged", ["a", "c"]),
        ("-is:tagged", ["b", "d"]),
        ("has:inline", ["a", "d"]),
        ("!has:inline", ["b", "c"]),
        ("is:unread", ["a", "c"]),
        ("is:read", ["b", "d"]),
        ("IS:READ", ["b", "d"]),
        ("-is:read", ["a", "c"]),
        ("has:attachment", ["a", "d"]),
        ("-has:attachment", ["b", "c"]),
        ("is:unread has:attachment invoice", ["a"]),
        ("before:2024-06-10", ["c", "d"]),
        ("after:2024-06-10", ["a", "b"]),
        ("after:2024-06-13", ["a", "b"]),  # a date includes its own day
        ("after:3d", ["a", "b"]),
        ("before:1w", ["c", "d"]),
        ("after:yesterday", ["a"]),
        ("after:today", []),
        ("larger:1M", ["c"]),
        ("smaller:1k", ["b"]),
        ("message-id:inv42@example.test", ["a"]),
        ("message-id:<inv42@example.test>", ["a"]),
        ("message-id:inv42", ["a"]),
        ("cafe", ["b"]),  # diacritics folded
        ("café", ["b"]),
        ('"special"', ["c"]),
        ("subject:special", ["c"]),
        ("subject:'", []),
        ("offer:", ["c"]),  # not a key: plain text
        ("NOT", ["c"]),  # FTS5 operators are plain words
        ("AND more", ["b"]),
        ("NEAR(x", ["c"]),
        ("*today*", ["b"]),
        ("unknownword", []),
    ],
)
def test_query_selects(db: sqlite3.Connection, query: str, expected: list[str]) -> None:
    assert search(db, query) == expected


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("is:foo", "is:foo"),
        ("invoice is:tagged has:inlines has:pdf", "has:pdf"),
        ("-is:", "is:"),
        ("has:", "has:"),
        ("to:", "to:"),
        ('from:""', "from:"),
        ("tag:", "tag:"),
        ("before:not-a-date", "before:not-a-date"),
        ("after:2024-13-45", "after:2024-13-45"),
        ("larger:lots", "larger:lots"),
        ("smaller:", "smaller:"),
        ("(", "("),
        ('-""', "-"),
        ("subject:" + "x" * 1001, "subject:"),
    ],
)
def test_a_filter_that_means_nothing_is_refused_by_name(query: str, named: str) -> None:
    with pytest.raises(ValueError) as refused:
        compile_query(query, NOW)
    assert f'"{named}' in str(refused.value)


def test_dates_are_read_in_the_time_zone_asked_for(db: sqlite3.Connection) -> None:
    for zone, offset in (("Pacific/Auckland", "+12:00"), ("America/Chicago", "-05:00"), ("UTC", "+00:00")):
        expected = datetime.fromisoformat(f"2024-06-01T00:00:00{offset}").timestamp()
        assert parse_when("2024-06-01", NOW, time_zone(zone)) == expected
    # "a" came at 2024-06-14 12:00 UTC: after 13:00 in Auckland's day (01:00 UTC) and not after 13:00 in Chicago's
    utc_now = datetime.fromisoformat("2024-06-15T12:00:00+00:00").timestamp()
    db.execute("UPDATE messages SET created = ? WHERE id = 'a'", (utc_now - DAY,))
    for zone, found in (("Pacific/Auckland", True), ("America/Chicago", False)):
        where, params = compile_query("after:2024-06-14T13:00", utc_now, time_zone(zone))
        ids = [r[0] for r in db.execute(f"SELECT id FROM messages m WHERE parent IS NULL AND {where}", params)]
        assert ("a" in ids) is found, zone
    with pytest.raises(ValueError, match="unknown time zone"):
        time_zone("Mars/Olympus")
    with pytest.raises(ValueError, match="unknown time zone"):
        time_zone("../../etc/passwd")


def _run_or_refuse(conn: sqlite3.Connection, query: str) -> None:
    """A query compiles and runs, or is refused with ValueError before it reaches SQLite."""
    try:
        where, params = compile_query(query, NOW)
    except ValueError:
        return
    conn.execute(f"SELECT m.id FROM messages m WHERE {where}", params).fetchall()


def test_user_text_is_only_ever_a_parameter() -> None:
    evil = "x' OR 1=1; DROP TABLE messages; --x from:'\" subject:'); DROP TABLE messages; is:read"
    sql, params = compile_query(evil, NOW)
    ours = sql.replace("' '", "").replace("ESCAPE '\\'", "")  # the only literals the compiler writes
    assert "DROP" not in sql and "'" not in ours
    assert all(isinstance(p, str | int | float) for p in params)


def test_tokenize_keeps_quoted_spaces_and_negation() -> None:
    terms = tokenize('-from:"Bob Smith" "a b" !is:read re:x')
    assert [(t.key, t.value, t.quoted, t.negated) for t in terms] == [
        ("from", "Bob Smith", True, True),
        ("", "a b", True, False),
        ("is", "read", False, True),
        ("", "re:x", False, False),
    ]


def test_fts_phrase_doubles_quotes() -> None:
    assert fts_phrase('say "hi"', prefix=False) == '"say ""hi"""'
    assert fts_phrase("pre", prefix=True) == '"pre" *'


def test_parse_helpers() -> None:
    assert parse_size("10k") == 10240
    assert parse_size("1.5MB") == 1572864
    assert parse_size("lots") is None
    assert parse_when("2d", NOW) == NOW - 2 * DAY
    assert parse_when("2024-06-01", NOW) == datetime(2024, 6, 1).timestamp()
    assert parse_when("soon", NOW) is None


def test_search_uses_the_fts_index(db: sqlite3.Connection) -> None:
    where, params = compile_query("from:bob invoice -paid", NOW)
    plan = " ".join(
        str(r[3]) for r in db.execute(f"EXPLAIN QUERY PLAN SELECT m.id FROM messages m WHERE {where}", params)
    )
    assert "VIRTUAL TABLE INDEX" in plan and "messages_fts" in plan


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60))
def test_any_text_compiles_and_runs(query: str) -> None:
    conn = sqlite3.connect(":memory:")
    try:
        _schema(conn)
        _run_or_refuse(conn, query)
    finally:
        conn.close()


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                '"',
                "*",
                ":",
                "(",
                ")",
                "AND",
                "OR",
                "NOT",
                "NEAR",
                "-",
                "!",
                "from:",
                "to:",
                "subject:",
                "^",
                "is:",
                "read",
                "has:",
                "{",
                "}",
                "+",
                "bob",
                " ",
                "é",
                "\\",
                "'",
                ";",
                "before:",
                "1d",
            ]
        ),
        max_size=12,
    )
)
def test_fts_syntax_in_user_input_never_breaks_match(pieces: list[str]) -> None:
    conn = sqlite3.connect(":memory:")
    try:
        _schema(conn)
        _run_or_refuse(conn, "".join(pieces))
    finally:
        conn.close()


_FIELD_TEXT = st.text(alphabet="aAbBéÉ _%\\\"'@.ﬀ\u0130i", max_size=12)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(st.tuples(_FIELD_TEXT, _FIELD_TEXT, _FIELD_TEXT, _FIELD_TEXT), min_size=1, max_size=8),
    key=st.sampled_from(["subject", "from", "to"]),
    value=st.text(alphabet="aAbBéÉ _%\\'@.ﬀ\u0130i", min_size=1, max_size=6),
)
def test_the_trigram_look_up_finds_every_row_the_substring_test_finds(
    rows: list[tuple[str, str, str, str]], key: str, value: str
) -> None:
    """headers_tri only narrows the rows: for any text and any value, the same rows as LIKE alone."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrate(conn)
    for rowid, (subject, name, addr, to) in enumerate(rows, 1):
        conn.execute(
            "INSERT INTO messages(rowid, id, created, subject, from_name, from_addr, to_json) VALUES (?,?,?,?,?,?,?)",
            (rowid, str(rowid), NOW, subject, name, addr, json.dumps([[to, to]], ensure_ascii=False)),
        )
    conn.execute(f"INSERT INTO headers_tri(rowid, text) SELECT rowid, {HEADERS_TEXT} FROM messages")
    needle = value.strip()
    if not needle:
        return
    found = search(conn, f'{key}:"{value}"')  # search() asserts that both compilations agree
    if key != "to":  # (to: reads the JSON text, escapes included)
        fold = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")  # LIKE folds ASCII only
        columns = {"subject": (0,), "from": (1, 2)}[key]
        expected = [
            str(i)
            for i, r in enumerate(rows, 1)
            if any(needle.translate(fold) in r[c].translate(fold) for c in columns)
        ]
        assert sorted(found) == sorted(expected)
    conn.close()
