"""The writes every message costs do not grow with the store: counted in SQLite virtual-machine steps (a
progress handler called at each one), which no machine's load can change. A query plan that walks an
index of every message instead of the rows at hand (an insert that walked the listing index's million
`parent IS NULL` entries for each batch: 6,290 us of server CPU per captured message at a million, 330 at
10,000) is eight times the steps in a store eight times as large."""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailsandbox import mime
from mailsandbox.models import Envelope
from mailsandbox.store._search import compile_filters
from mailsandbox.store.query import parse
from mailsandbox.store.sqlite import SqliteStore, _Add, _write_adds, delete_rows

SMALL, GROWTH = 1000, 8
CHUNK = 250  # messages a transaction when the stores are filled
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "invoice", "quarterly", "golf", "hotel", "india"]


def mail(n: int) -> bytes:
    rng = random.Random(n)
    return (
        f"From: Ann {n % 7} <ann{n % 7}@x.test>\r\nTo: bob@x.test\r\nSubject: note {rng.choice(WORDS)}\r\n"
        f"Message-ID: <{n}@x.test>\r\n\r\n{' '.join(rng.choices(WORDS, k=60))}\r\n"
    ).encode()


def filled(path: Path, count: int) -> SqliteStore:
    """A store of `count` messages written in transactions of CHUNK each: the full-text index's segments
    (what a MATCH walks) are then the same whatever the machine's load, where the writer's batches
    (however many requests were waiting) are not."""
    store = SqliteStore(str(path))
    env = Envelope("ann@x.test", ("bob@x.test",))
    conn = store._connect()
    try:
        for start in range(0, count, CHUNK):
            raws = [mail(n) for n in range(start, min(count, start + CHUNK))]
            conn.execute("BEGIN IMMEDIATE")
            _write_adds(conn, [_Add(raw, mime.summarize(raw), env, time.time(), ("bob@x.test",), ()) for raw in raws])
            conn.execute("COMMIT")
    finally:
        conn.close()
    return store


def steps(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], object]) -> int:
    """VM steps `work` takes in a transaction that is rolled back (the store stays as it was)."""
    count = [0]

    def tick() -> int:
        count[0] += 1
        return 0

    conn.execute("BEGIN IMMEDIATE")
    conn.set_progress_handler(tick, 1)
    try:
        work(conn)
    finally:
        conn.set_progress_handler(None, 0)
        conn.execute("ROLLBACK")
    return count[0]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SqliteStore, SqliteStore]]:
    base = tmp_path_factory.mktemp("scaling")
    small, large = filled(base / "small.db", SMALL), filled(base / "large.db", SMALL * GROWTH)
    yield small, large
    small.close()
    large.close()


def batch(conn: sqlite3.Connection) -> object:
    """A batch of captures as the writer runs it: rows, mailbox entries, a Message-ID look-up each
    (--ignore-duplicate-ids), arrival tags."""
    env = Envelope("ann@x.test", ("bob@x.test",))
    adds = []
    for n in range(50):
        raw = mail(10**6 + n)
        adds.append(_Add(raw, mime.summarize(raw), env, time.time(), ("bob@x.test",), (), dedupe=True, tags=["new"]))
    return _write_adds(conn, adds)


def delete_some(conn: sqlite3.Connection) -> object:
    (top,) = conn.execute("SELECT max(rowid) FROM messages").fetchone()
    return delete_rows(conn, list(range(top - 100, top - 50)))


def tag_rule(query: str) -> Callable[[sqlite3.Connection], object]:
    """What a tagging rule costs a message on arrival (sqlite._tag_new's test of the one new row)."""
    where, params = compile_filters(parse(query, time.time()), one_row=True)

    def run(conn: sqlite3.Connection) -> object:
        (top,) = conn.execute("SELECT max(rowid) FROM messages").fetchone()
        return conn.execute(f"SELECT 1 FROM messages m WHERE m.rowid = ? AND ({where})", [top, *params]).fetchone()

    return run


@pytest.mark.parametrize(
    "work",
    [batch, delete_some, tag_rule("invoice"), tag_rule("subject:invoice"), tag_rule("from:ann3@x.test quarterly"),
     tag_rule("-golf")],
    ids=["insert a batch", "delete a batch", "rule: a word", "rule: subject", "rule: from and a word", "rule: not"],
)  # fmt: skip
def test_a_write_costs_the_same_in_a_store_eight_times_as_large(
    stores: tuple[SqliteStore, SqliteStore], work: Callable[[sqlite3.Connection], object]
) -> None:
    small, large = stores
    conns = [store._connect() for store in (small, large)]
    try:
        # The fewest of three: a first run may also read what a connection caches (FTS5's structure)
        few, many = (min(steps(conn, work) for _ in range(3)) for conn in conns)
    finally:
        for conn in conns:
            conn.close()
    # A walk of every message is 8x. A full-text test of one row looks it up in each segment of FTS5's
    # index, of which a store eight times as large has a few more (their number grows with the log of the
    # rows): 210 -> 414 steps here; CI, before the stores were filled in fixed transactions, saw 108 -> 258.
    assert many < 3 * few, f"{few} steps at {SMALL:,} messages, {many} at {SMALL * GROWTH:,}"
