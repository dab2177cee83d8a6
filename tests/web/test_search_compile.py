"""The search language against a real SQLite with the columns it reads (those of the messages table and its FTS5
index in sandbox/store/_schema.py)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.store._search import compile_query, fts_phrase, parse_size, parse_when, tokenize

NOW = datetime(2024, 6, 15, 12, 0).timestamp()
DAY = 86400.0

SCHEMA = """
CREATE TABLE messages(
  rowid INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, parent INTEGER NULL REFERENCES messages(rowid),
  created REAL NOT NULL, message_id TEXT, subject TEXT, from_name TEXT, from_addr TEXT,
  to_json TEXT, cc_json TEXT, bcc_json TEXT, reply_to_json TEXT, date REAL NULL, size INTEGER,
  attachments INTEGER, snippet TEXT, read INTEGER NOT NULL DEFAULT 0, envelope_json TEXT,
  username TEXT, tags TEXT DEFAULT '');
CREATE VIRTUAL TABLE messages_fts USING fts5(subject, sender, recipients, body,
  tokenize="unicode61 remove_diacritics 2");
"""

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


@pytest.fixture
def db() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:")
    conn.executescript(SCHEMA)
    for i, (mid, age, subject, sender, to, bcc, rcpts, body, read, att, size, msgid) in enumerate(ROWS, 1):
        conn.execute(
            "INSERT INTO messages(rowid, id, created, message_id, subject, from_name, from_addr, to_json,"
            " cc_json, bcc_json, size, attachments, read) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                i,
                mid,
                NOW - age * DAY,
                msgid,
                subject,
                sender[0],
                sender[1],
                json.dumps(to),
                "[]",
                json.dumps(bcc),
                size,
                att,
                read,
            ),
        )
        recipients = " ".join(f"{n} {a}" for n, a in [*to, *bcc]) + " " + " ".join(rcpts)
        conn.execute(
            "INSERT INTO messages_fts(rowid, subject, sender, recipients, body) VALUES (?,?,?,?,?)",
            (i, subject, f"{sender[0]} {sender[1]}", recipients, body),
        )
    # a relay child copy: never listed (parent IS NOT NULL)
    conn.execute(
        "INSERT INTO messages(rowid, id, parent, created, subject) VALUES (99, 'child', 1, ?, 'x')", (NOW,)
    )
    conn.execute("INSERT INTO messages_fts(rowid, subject, body) VALUES (99, 'Invoice', 'invoice')")
    yield conn
    conn.close()


def search(conn: sqlite3.Connection, query: str) -> list[str]:
    where, params = compile_query(query, NOW)
    rows = conn.execute(
        f"SELECT m.id FROM messages m WHERE m.parent IS NULL AND ({where})"
        " ORDER BY m.created DESC, m.rowid DESC",
        params,
    ).fetchall()
    return [r[0] for r in rows]


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
        ("-from:bob", ["b", "c", "d"]),
        ("to:ann@example.test", ["a", "b"]),
        ("to:hidden@example.test", ["b"]),  # Bcc and envelope recipients count
        ("bcc:hidden", ["b"]),
        ("subject:invoice", ["a", "d"]),
        ("subject:paid", []),
        ("body:paid", ["d"]),
        ("is:unread", ["a", "c"]),
        ("is:read", ["b", "d"]),
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
        ("before:not-a-date", ["a", "b", "c", "d"]),  # ignored, not an error
        ("larger:1M", ["c"]),
        ("smaller:1k", ["b"]),
        ("message-id:inv42@example.test", ["a"]),
        ("message-id:<inv42@example.test>", ["a"]),
        ("cafe", ["b"]),  # diacritics folded
        ("café", ["b"]),
        ('"special"', ["c"]),
        ('subject:"\\"special\\""', ["c"]),
        ("offer:", ["c"]),  # not a key: plain text
        ("NOT", ["c"]),  # FTS5 operators are plain words
        ("AND more", ["b"]),
        ("NEAR(x", ["c"]),
        ("*today*", ["b"]),
        ("(", ["a", "b", "c", "d"]),  # no word at all: ignored
        ('-""', ["a", "b", "c", "d"]),
        ("unknownword", []),
    ],
)
def test_query_selects(db: sqlite3.Connection, query: str, expected: list[str]) -> None:
    assert search(db, query) == expected


def test_user_text_is_only_ever_a_parameter() -> None:
    evil = "x' OR 1=1; DROP TABLE messages; -- from:'\" is:read"
    sql, params = compile_query(evil, NOW)
    assert "DROP" not in sql and "'" not in sql
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
        str(r[3])
        for r in db.execute(f"EXPLAIN QUERY PLAN SELECT m.id FROM messages m WHERE {where}", params)
    )
    assert "VIRTUAL TABLE INDEX" in plan and "messages_fts" in plan


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60))
def test_any_text_compiles_and_runs(query: str) -> None:
    conn = sqlite3.connect(":memory:")
    try:
        conn.executescript(SCHEMA)
        where, params = compile_query(query, NOW)
        conn.execute(f"SELECT m.id FROM messages m WHERE {where}", params).fetchall()
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
        conn.executescript(SCHEMA)
        where, params = compile_query("".join(pieces), NOW)
        conn.execute(f"SELECT m.id FROM messages m WHERE {where}", params).fetchall()
    finally:
        conn.close()
