"""Group commit: a failing request never takes the other requests of its batch down with it."""

from __future__ import annotations

import sqlite3
import threading
import weakref
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from mailsandbox.events import Event, MailboxChanged, MessageStored
from mailsandbox.models import Envelope, StoredMessage
from mailsandbox.store._writer import GroupWriter, insert_rows
from mailsandbox.store.sqlite import SqliteStore


def test_one_failure_in_a_batch_spares_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "w.db"

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("CREATE TABLE IF NOT EXISTS t (v INTEGER UNIQUE)")
        return conn

    published: list[Event] = []
    writer = GroupWriter(connect, published.append)
    gate = threading.Event()
    # Hold the writer in a first request so the next ones queue up and commit as one batch.
    blocker = writer.submit(lambda conn: (gate.wait(5), []))

    def insert(value: int) -> Any:
        return lambda conn: (conn.execute("INSERT INTO t VALUES (?)", (value,)).rowcount, [])

    futures: list[Future[Any]] = [writer.submit(insert(v)) for v in (1, 2, 1, 3)]  # the second 1 breaks UNIQUE
    gate.set()
    blocker.result(5)
    assert [f.exception(5) is None for f in futures] == [True, True, False, True]
    with pytest.raises(sqlite3.IntegrityError):
        futures[2].result()
    writer.close()
    rows = sqlite3.connect(path).execute("SELECT v FROM t ORDER BY v").fetchall()
    assert rows == [(1,), (2,), (3,)]


@pytest.mark.asyncio
async def test_async_callers_settle_on_their_loop_and_may_give_up(tmp_path: Path) -> None:
    path = tmp_path / "w.db"

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("CREATE TABLE IF NOT EXISTS t (v INTEGER UNIQUE)")
        return conn

    writer = GroupWriter(connect, lambda event: None)
    gate = threading.Event()
    blocker = writer.submit(lambda conn: (gate.wait(5), []))

    def insert(value: int) -> Any:
        return lambda conn: (conn.execute("INSERT INTO t VALUES (?)", (value,)).rowcount, [])

    futures = [writer.submit_async(insert(v)) for v in (1, 2, 1)]
    futures[1].cancel()  # a caller that stops waiting: its write still commits, the writer lives on
    gate.set()
    blocker.result(5)
    assert await futures[0] == 1
    with pytest.raises(sqlite3.IntegrityError):
        await futures[2]
    assert await writer.submit_async(insert(3)) == 1
    writer.close()
    rows = sqlite3.connect(path).execute("SELECT v FROM t ORDER BY v").fetchall()
    assert rows == [(1,), (2,), (3,)]


def _held_adds(store: SqliteStore, specs: list[list[str]], before: Any = None) -> list[Future[StoredMessage]]:
    """add_message requests queued behind a blocker, so that they reach the writer as one batch."""
    gate = threading.Event()
    blocker = store._writer.submit(lambda conn: (gate.wait(5), []))
    env = Envelope("sender@x.test", ("ann@x.test",))
    futures = [
        store._writer.submit(
            store._add_fn(f"Subject: note {i}\r\n\r\nbody{i}\r\n".encode(), env, users, 1000.0 + i, ["far@y.test"])
        )
        for i, users in enumerate(specs)
    ]
    gate.set()
    blocker.result(5)
    return futures


def test_adds_written_together_match_adds_written_one_by_one(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "s.db"))
    published: list[Event] = []
    store.bus.subscribe(published.append)
    try:
        specs = [["ann@x.test"], ["bob@x.test", "ANN@x.test", "bob@x.test"], ["bob@x.test"], []]
        messages = [f.result(5) for f in _held_adds(store, specs)]
        with sqlite3.connect(store.path) as db:  # in the order the adds were made
            assert [db.execute("SELECT rowid FROM messages WHERE id = ?", (m.id,)).fetchone()[0] for m in messages] == [
                1, 2, 3, 4,
            ]  # fmt: skip
        assert [m.mailboxes for m in messages] == [("ann@x.test",), ("ann@x.test", "bob@x.test"), ("bob@x.test",), ()]
        ann, bob = (store.entries(user, "INBOX") for user in ("ann@x.test", "bob@x.test"))
        assert [(e.uid, e.message_id, e.internaldate) for e in ann] == [
            (1, messages[0].id, 1000.0),
            (2, messages[1].id, 1001.0),
        ]
        assert [(e.uid, e.message_id) for e in bob] == [(1, messages[1].id), (2, messages[2].id)]
        assert store.folder("bob@x.test", "INBOX").uidnext == 3
        assert [(q.message_id, q.recipient) for q in store.queue()] == [(m.id, "far@y.test") for m in messages]
        assert store.search_ids("body2") == [messages[2].id]
        assert [m.id for m in store.list().messages] == [m.id for m in reversed(messages)]
        changed = [(e.user, e.folder) for e in published if isinstance(e, MailboxChanged)]
        assert changed == [
            ("ann@x.test", "INBOX"),
            ("bob@x.test", "INBOX"),
            ("ann@x.test", "INBOX"),
            ("bob@x.test", "INBOX"),
        ]
        assert [e.message for e in published if isinstance(e, MessageStored)] == messages
    finally:
        store.close()


def test_a_failing_add_spares_the_adds_batched_with_it(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "s.db"))
    try:
        store._write_sync(lambda conn: (conn.execute(
            "CREATE TRIGGER refuse_eve BEFORE INSERT ON entries WHEN NEW.folder_id IN"
            " (SELECT id FROM folders WHERE user = 'eve@x.test') BEGIN SELECT RAISE(ABORT, 'eve refused'); END"
        ), []))  # fmt: skip
        futures = _held_adds(store, [["ann@x.test"], ["eve@x.test"], ["ann@x.test"]])
        assert [f.exception(5) is None for f in futures] == [True, False, True]
        assert [e.message_id for e in store.entries("ann@x.test", "INBOX")] == [
            futures[0].result().id,
            futures[2].result().id,
        ]
        assert [e.uid for e in store.entries("ann@x.test", "INBOX")] == [1, 2]
        assert store.count() == (2, 2)
    finally:
        store.close()


@pytest.mark.parametrize("count", [0, 1, 15, 16, 17, 100, 200])
def test_insert_rows_writes_every_row_in_order(count: int) -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (i INTEGER, s TEXT)")
    rows = [(i, f"row {i}") for i in range(count)]
    insert_rows(conn, "INSERT INTO t (i, s) VALUES ", rows)
    assert conn.execute("SELECT i, s FROM t ORDER BY rowid").fetchall() == rows


@pytest.mark.timing  # the checkpointer's thread must get CPU time: runs with the other budgets, alone
def test_the_wal_starts_over_under_steady_writes(tmp_path: Path) -> None:
    # Writes that never pause: a background checkpoint alone never reaches the WAL's end, so the writer
    # must finish it between two batches, or the WAL grows by every commit (here to about 60 MB).
    store = SqliteStore(str(tmp_path / "s.db"))
    body = b"Subject: steady\r\n\r\n" + b"x" * 4000 + b"\r\n"
    wal = Path(store.path + "-wal")
    largest = 0
    try:
        for _ in range(3000):  # one commit each
            store.add_message_sync(body, Envelope("a@example.test", ("b@example.test",)))
            largest = max(largest, wal.stat().st_size)
    finally:
        store.close()
    # The checkpointer asks for the writer's catch-up at 1,000 pages of 4 KiB: 8-16 MB here with what
    # commits add meanwhile; 29-56 MB at a load average of 22, where that thread falls behind.
    assert largest < 40 << 20, f"WAL grew to {largest} bytes"


def test_a_request_is_let_go_before_its_caller_learns_it_is_committed(tmp_path: Path) -> None:
    # The caller may measure its memory the moment it is told (the IMAP APPEND test does): the writer
    # must not still hold the request, with the message it carries, at that moment.
    path = tmp_path / "w.db"
    writer = GroupWriter(lambda: sqlite3.connect(path, isolation_level=None, check_same_thread=False), lambda e: None)
    gate = threading.Event()
    blocker = writer.submit(lambda conn: (gate.wait(5), []))

    class Payload:
        pass

    def request(payload: Payload) -> Any:
        return lambda conn: (len(repr(payload)), [])

    payload = Payload()
    alive = weakref.ref(payload)
    future = writer.submit(request(payload))
    del payload
    seen: list[bool] = []
    future.add_done_callback(lambda f: seen.append(alive() is not None))  # runs on the writer, as it settles
    gate.set()
    blocker.result(5)
    future.result(5)
    writer.close()
    assert seen == [False]
