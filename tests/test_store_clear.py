"""Deleting everything (_clear.py): a small store is truncated, a large one's tables are set aside and
reaped in small steps. Both leave the same store behind, and a reaping cut short resumes at the next start."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailsandbox.models import Attempt, Envelope
from mailsandbox.store import _clear
from mailsandbox.store._schema import migrate
from mailsandbox.store.sqlite import LARGE_RAW, SqliteStore
from tests.test_store_large import large

SINK = "sink@x.test"


def corpus(n: int, start: int = 0) -> list[tuple[bytes, Envelope]]:
    out = []
    for i in range(start, start + n):
        raw = (
            f"From: Ann <ann{i % 3}@x.test>\r\nTo: <{SINK}>\r\nSubject: {'invoice' if i % 4 == 0 else 'note'} {i}\r\n"
            f"X-Tags: t{i % 2}\r\nMessage-ID: <{i}@x.test>\r\n\r\nalpha bravo word{i}\r\n"
        ).encode()
        out.append((raw, Envelope(f"ann{i % 3}@x.test", (SINK,))))
    return out


@pytest.fixture(params=["truncate", "set aside"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SqliteStore]:
    monkeypatch.setattr("mailsandbox.store.sqlite.TRUNCATE_BELOW", 10**9 if request.param == "truncate" else 0)
    store = SqliteStore(str(tmp_path / "s.db"))
    try:
        yield store
    finally:
        store.close()


def dead_tables(path: str) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE name GLOB 'dead_*'")]


def check_integrity(path: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        for table in _clear.FULL_TEXT:
            conn.execute(f"INSERT INTO {table} ({table}, rank) VALUES ('integrity-check', 0)")
    finally:
        conn.close()


def fill(store: SqliteStore) -> str:
    """Messages with everything that hangs off them: relay copies, mailbox entries, a queued recipient with
    attempts, authentication results, tags. Returns a message's id."""
    stored = [m for m in store.add_messages_sync(corpus(300)) if m is not None]
    first = stored[0]
    asyncio.run(store.deliver(first.id, "relay@x.test", prefix=b"Received: from hop\r\n"))
    asyncio.run(store.save_auth(first.id, {"spf": "pass"}, {"spf": {"result": "pass"}}))
    queued = asyncio.run(store.add_message(corpus(1, 900)[0][0], Envelope("a@x.test", ("far@y.test",)),
                                           deliver_to=[], queue=["far@y.test"]))  # fmt: skip
    attempt = Attempt(queued.id, "far@y.test", "mx.y.test", 10, 451, "451 later", 1.0, ("C: EHLO",), 0)
    asyncio.run(store.record_deferral(queued.id, "far@y.test", [attempt], next_attempt=2.0, error="451",
                                      warned=False))  # fmt: skip
    assert store.queue() and store.trace(queued.id)
    return first.id


def test_delete_all_leaves_an_empty_store_that_keeps_its_folders(store: SqliteStore) -> None:
    fill(store)
    inbox = store.folder(SINK, "INBOX")
    assert inbox.exists == 300 and store.tags()  # the queued one is in no mailbox
    assert asyncio.run(store.delete(None)) == 301
    assert store.count() == (0, 0) and store.list().total == 0
    for query in ("alpha", "subject:invoice", "from:ann1@x.test", "tag:t1", "is:unread"):
        assert store.search(query).total == 0, query
    assert store.tags() == () and store.queue() == [] and store.entries(SINK, "INBOX") == []
    assert store.entries("relay@x.test", "INBOX") == []
    after = store.folder(SINK, "INBOX")
    assert (after.uidvalidity, after.uidnext) == (inbox.uidvalidity, inbox.uidnext)  # no UID is given twice
    # New mail is stored, counted, indexed and given the next UIDs.
    new = [m for m in store.add_messages_sync(corpus(5, 1000)) if m is not None]
    assert store.count() == (5, 5)
    assert {m.id for m in store.search("alpha").messages} == {m.id for m in new}
    assert store.search("subject:invoice").total == 2 and store.tags() == ("t0", "t1")
    assert [e.uid for e in store.entries(SINK, "INBOX")] == list(range(inbox.uidnext, inbox.uidnext + 5))
    assert store.reaper.wait_idle(60)
    assert dead_tables(store.path) == []
    check_integrity(store.path)
    assert store.search("alpha").total == 5  # the reaping took nothing of the new store


def test_a_set_aside_store_is_reaped_in_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mailsandbox.store.sqlite.TRUNCATE_BELOW", 0)
    store = SqliteStore(str(tmp_path / "s.db"))
    try:
        reap_in_steps(store)
    finally:
        store.close()


def recorded_steps(store: SqliteStore) -> list[_clear.ReapStep]:
    """The steps the store's reaper takes from now on, as it takes them."""
    steps: list[_clear.ReapStep] = []
    learn = store.reaper._learn

    def record(step: _clear.ReapStep) -> None:
        steps.append(step)
        learn(step)

    store.reaper._learn = record  # type: ignore[method-assign]
    return steps


def reap_in_steps(store: SqliteStore) -> None:
    fill(store)
    steps = recorded_steps(store)
    asyncio.run(store.delete(None))
    assert store.reaper.wait_idle(60)
    reaped = {step.table for step in steps if step.table}
    assert {"messages", "message_raw", "entries", "messages_fts_data", "headers_tri_data", "queue"} <= reaped
    assert dead_tables(store.path) == []


def test_reaping_cut_short_resumes_at_the_next_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mailsandbox.store.sqlite.TRUNCATE_BELOW", 0)
    monkeypatch.setattr(_clear.Reaper, "wake", lambda self: None)  # as if the process stopped at once
    path = str(tmp_path / "s.db")
    store = SqliteStore(path)
    try:
        fill(store)
        asyncio.run(store.delete(None))
        list(store.add_messages_sync(corpus(10, 500)))
        asyncio.run(store.delete(None))  # again, before anything was reaped: a second set aside
        kept = [m for m in store.add_messages_sync(corpus(3, 700)) if m is not None]
    finally:
        store.close()
    generations = {name.split("_")[1] for name in dead_tables(path)}
    assert generations == {"1", "2"}
    monkeypatch.undo()
    store = SqliteStore(path)
    try:
        assert store.reaper.wait_idle(60)
        assert dead_tables(path) == []
        assert [m.id for m in store.list().messages] == [m.id for m in reversed(kept)]
        assert store.search("alpha").total == 3
    finally:
        store.close()
    check_integrity(path)


@pytest.mark.asyncio
async def test_a_large_message_arriving_meanwhile_keeps_its_chunks(store: SqliteStore) -> None:
    list(store.add_messages_sync(corpus(50)))
    raw = large(6 * LARGE_RAW)
    arriving = asyncio.create_task(store.add_message(raw, Envelope("a@x.test", (SINK,))))
    with sqlite3.connect(store.path) as watcher:
        for _ in range(2000):  # until some of its chunks are committed
            if watcher.execute("SELECT count(*) FROM raw_chunks").fetchone()[0] >= 2:
                break
            await asyncio.sleep(0.005)
    assert not arriving.done()
    await store.delete(None)
    stored = await arriving
    assert store.raw(stored.id) == raw and store.count() == (1, 1)
    assert store.reaper.wait_idle(60)
    assert store.raw(stored.id) == raw


def test_every_table_is_either_cleared_or_kept() -> None:
    """A migration that adds a table must say whether a delete of everything empties it."""
    conn = sqlite3.connect(":memory:")
    migrate(conn)
    virtual = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE sql LIKE 'CREATE VIRTUAL%'")}
    tables = {
        name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if not any(name.startswith(f"{v}_") for v in virtual)
    }  # fmt: skip
    assert tables == set(_clear.DATA_TABLES) | set(_clear.KEPT_TABLES)
    assert not set(_clear.DATA_TABLES) & set(_clear.KEPT_TABLES)
