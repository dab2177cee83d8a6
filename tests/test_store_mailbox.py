"""Folder creation in the store: UIDVALIDITY from a counter row (linear fan-out), never going backwards."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from mailsandbox.clock import ManualClock
from mailsandbox.models import Envelope
from mailsandbox.store import _mailbox
from mailsandbox.store._schema import MIGRATIONS
from mailsandbox.store.sqlite import SqliteStore


class FrozenClock:
    def now(self) -> float:
        return 1_700_000_000.0


def test_recreated_folder_gets_a_higher_uidvalidity_even_after_its_top_was_deleted(tmp_path: Path) -> None:
    path = str(tmp_path / "m.db")
    store = SqliteStore(path, clock=ManualClock(FrozenClock()))  # every folder made in the same second
    store.create_folder("u@x.test", "A")
    store.create_folder("u@x.test", "B")
    a, b = store.folder("u@x.test", "A").uidvalidity, store.folder("u@x.test", "B").uidvalidity
    assert b > a
    store.delete_folder("u@x.test", "B")  # the folder holding the highest value goes
    store.create_folder("u@x.test", "B")
    again = store.folder("u@x.test", "B").uidvalidity
    assert again > b
    store.close()
    reopened = SqliteStore(path, clock=ManualClock(FrozenClock()))
    reopened.delete_folder("u@x.test", "B")
    reopened.create_folder("u@x.test", "B")
    assert reopened.folder("u@x.test", "B").uidvalidity > again  # the counter survives a restart
    reopened.close()


def test_a_version_1_database_starts_its_counter_at_its_highest_uidvalidity(tmp_path: Path) -> None:
    path = str(tmp_path / "old.db")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(MIGRATIONS[0] + "PRAGMA user_version = 1;")
    conn.execute("INSERT INTO folders (user, name, uidvalidity) VALUES ('u@x.test', 'Old', 2000000000)")
    conn.close()
    store = SqliteStore(path, clock=ManualClock(FrozenClock()))
    store.create_folder("u@x.test", "New")
    assert store.folder("u@x.test", "New").uidvalidity == 2000000001
    store.close()


def test_fan_out_to_new_recipients_gives_each_a_distinct_uidvalidity(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "f.db"), clock=ManualClock(FrozenClock()))
    users = tuple(f"r{i}@x.test" for i in range(300))
    asyncio.run(store.add_message(b"Subject: hi\r\n\r\nhi\r\n", Envelope("a@x.test", users)))
    values = [store.folder(u, "INBOX").uidvalidity for u in users]
    assert len(set(values)) == len(users)
    assert [len(store.entries(u, "INBOX")) for u in users[:3]] == [1, 1, 1]
    store.close()


def _steps_to_deliver(path: str, existing: int, recipients: int) -> int:
    """SQLite VM steps for delivering one message to `recipients` new INBOXes beside `existing` folders."""
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO folders (user, name, uidvalidity) VALUES (?, 'INBOX', ?)",
            ((f"old{i}@x.test", i + 1) for i in range(existing)),
        )
        conn.execute("UPDATE uidvalidity_counter SET last = ?", (existing,))
        (message,) = conn.execute("SELECT rowid FROM messages").fetchone()
        steps = 0

        def count() -> int:
            nonlocal steps
            steps += 1
            return 0

        conn.set_progress_handler(count, 1)
        entries = [(f"new{i}@x.test", "INBOX", message, message, "", 0.0) for i in range(recipients)]
        _mailbox.deliver_entries(conn, entries)
        conn.set_progress_handler(None, 0)
    return steps


def test_a_new_folder_costs_the_same_beside_100_or_20000_others(tmp_path: Path) -> None:
    """The mailbox fan-out is linear: 200 new INBOXes take the same SQLite work whether 100 or 20,000
    folders exist (the old `max(uidvalidity)` scan per new folder made it 200 x 20,000 row visits)."""
    counts = []
    for existing in (100, 20_000):
        path = str(tmp_path / f"fan{existing}.db")
        store = SqliteStore(path, clock=ManualClock(FrozenClock()))
        asyncio.run(store.add_message(b"Subject: hi\r\n\r\nhi\r\n", Envelope("a@x.test", ("first@x.test",))))
        store.close()
        counts.append(_steps_to_deliver(path, existing, 200))
    small, large = counts
    assert large < small * 1.5, f"{small:,} VM steps beside 100 folders, {large:,} beside 20,000"
