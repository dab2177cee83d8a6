"""A large delete (by IDs, by search) hides its messages in one short write, and the reaper (_clear.py)
deletes them later in small steps: every read skips them at once, the counts drop at once, the same events
are published, and a reaping cut short resumes at the next start."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from mailsandbox.clock import ManualClock
from mailsandbox.events import Event, MailboxChanged, MessagesDeleted
from mailsandbox.retention import Retention
from mailsandbox.store import NoSuchMessage, _clear, export
from mailsandbox.store._schema import MIGRATIONS
from mailsandbox.store.sqlite import DIRECT_DELETE, SqliteStore
from tests.test_store_clear import SINK, check_integrity, corpus, fill, recorded_steps


def rows(path: str, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def true_counts(path: str) -> tuple[int, int]:
    """The listed and unread messages, counted row by row (what the tally must say)."""
    with sqlite3.connect(path) as conn:
        total, unread = conn.execute(
            "SELECT count(*), coalesce(sum(read = 0), 0) FROM messages"
            " WHERE parent IS NULL AND rowid NOT IN (SELECT rowid FROM doomed)"
        ).fetchone()
    return int(total), int(unread)


def automerge(path: str) -> list[int]:
    """FTS5's automerge setting of each full-text index (4 when never set)."""
    with sqlite3.connect(path) as conn:
        values = [conn.execute(f"SELECT v FROM {t}_config WHERE k = 'automerge'").fetchone() for t in _clear.FULL_TEXT]
    return [4 if v is None else int(v[0]) for v in values]


def no_reaping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_clear.Reaper, "wake", lambda self: None)  # as if the process stopped at once


def counting_writes(store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    writes: list[Any] = []
    write = store._write

    async def counted(fn: Any) -> Any:
        writes.append(fn)
        return await write(fn)

    monkeypatch.setattr(store, "_write", counted)
    return writes


def test_a_large_delete_hides_in_one_write_and_every_read_skips_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_reaping(monkeypatch)
    store = SqliteStore(str(tmp_path / "s.db"))
    events: list[Event] = []
    store.bus.subscribe(events.append)
    try:
        first = fill(store)  # 300 in SINK's INBOX (the first relayed, with authentication results), 1 queued
        asyncio.run(store.set_read([m.id for m in store.list(limit=20).messages], True))
        queued = store.queue()[0].message_id
        copy = store.delivered_copy(first, "relay@x.test")
        assert copy is not None and copy != first
        doomed = [first, queued, *store.search_ids("subject:invoice")]  # 76: the first is an invoice too
        kept = [m.id for m in store.list(limit=1000).messages if m.id not in doomed]
        before = rows(store.path, "messages")
        writes = counting_writes(store, monkeypatch)
        events.clear()

        assert asyncio.run(store.delete(doomed)) == len(set(doomed)) == 76

        assert len(writes) == 1  # one write hid them all ...
        assert rows(store.path, "messages") == before  # ... and deleted nothing yet
        assert rows(store.path, "doomed") == 76 + 1  # with the relay copy
        deleted = [e for e in events if isinstance(e, MessagesDeleted)]
        assert [set(e.ids) for e in deleted] == [set(doomed)]
        assert MailboxChanged(SINK, "INBOX") in events and MailboxChanged("relay@x.test", "INBOX") in events
        # Nothing reads them any more.
        assert store.count() == true_counts(store.path) == (len(kept), len([i for i in kept if not store.get(i).read]))  # type: ignore[union-attr]
        assert store.list(limit=1000).total == len(kept)
        assert {m.id for m in store.list(limit=1000).messages} == set(kept)
        assert store.search("subject:invoice").total == 0 and store.search_ids("subject:invoice") == []
        assert store.search("alpha").total == len(kept) == len(store.search_ids("alpha"))
        assert store.search("is:unread").total == store.count()[1]
        for mid in (first, queued, copy, doomed[5]):
            assert store.get(mid) is None
            with pytest.raises(NoSuchMessage):
                store.raw(mid)
        assert store.auth_report(first) is None and store.delivered_copy(first, "relay@x.test") is None
        assert store.get("latest") is not None and store.get("latest").id in kept  # type: ignore[union-attr]
        assert store.queue() == [] and store.trace(queued) == []
        entries = store.entries(SINK, "INBOX")
        assert {e.message_id for e in entries} == set(kept) - {queued}
        assert store.folder(SINK, "INBOX").exists == len(entries)
        assert store.entries("relay@x.test", "INBOX") == [] and store.folder("relay@x.test", "INBOX").exists == 0
        assert {s.user: s.total for s in store.mailboxes()} == {SINK: len(entries)}
        assert store.tag_counts() == {"t0": len([i for i in kept if store.get(i).tags == ("t0",)]),  # type: ignore[union-attr]
                                      "t1": len([i for i in kept if store.get(i).tags == ("t1",)])}  # type: ignore[union-attr]
        assert {m.id for m in export.read_only(store.path)} == set(kept)
        # Hidden ones cannot be changed, delivered or deleted again.
        counts = store.count()
        assert asyncio.run(store.set_read(doomed, False)) == 0 and asyncio.run(store.set_read(doomed, True)) == 0
        assert asyncio.run(store.set_tags(doomed, ["x"])) == 0
        assert asyncio.run(store.delete(doomed)) == 0
        with pytest.raises(NoSuchMessage):
            asyncio.run(store.deliver(doomed[3], "other@x.test"))
        assert store.count() == counts == true_counts(store.path)
    finally:
        store.close()


def test_the_reaper_deletes_hidden_messages_in_steps(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "s.db"))
    try:
        fill(store)
        steps = recorded_steps(store)
        doomed = store.search_ids("subject:invoice")  # with the relayed one (and its copy), the queued one
        kept = [m.id for m in store.list(limit=1000).messages if m.id not in doomed]
        asyncio.run(store.delete(doomed))
        assert store.reaper.wait_idle(60)
        assert len([s for s in steps if s.table == "doomed"]) > 1  # paced: the first steps take a few messages
        for table in ("doomed", "queue", "attempts", "message_auth", "relayed"):
            assert rows(store.path, table) == 0, table
        for table in ("messages", "message_raw", "message_text", "entries"):
            assert rows(store.path, table) == len(kept) == 225, table
        assert store.count() == true_counts(store.path)
        assert store.search("alpha").total == len(kept)
        assert store.search("subject:invoice").total == 0
        check_integrity(store.path)  # and the full-text indexes lost exactly their rows
        # What remains is whole: a few deleted directly, then everything.
        assert asyncio.run(store.delete(kept[:DIRECT_DELETE])) == DIRECT_DELETE
        left = len(kept) - DIRECT_DELETE
        assert store.count() == true_counts(store.path) == (left, left)
        asyncio.run(store.delete(None))
        assert store.count() == (0, 0) and rows(store.path, "doomed") == 0
    finally:
        store.close()


def test_an_expunge_of_a_hidden_entry_leaves_it_to_the_reaper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A POP3 session's DELE of a message it listed before the delete: the entry goes, the row stays the
    reaper's (a direct delete would give its rowid to the next message while doomed still names it)."""
    no_reaping(monkeypatch)
    store = SqliteStore(str(tmp_path / "s.db"))
    try:
        stored = [m for m in store.add_messages_sync(corpus(40)) if m is not None]
        uids = [e.uid for e in store.entries(SINK, "INBOX")]
        asyncio.run(store.delete([m.id for m in stored[-30:]]))  # the newest: the highest rowids
        asyncio.run(store.discard(SINK, "INBOX", uids[-30:]))
        assert rows(store.path, "doomed") == 30 and rows(store.path, "messages") == 40
        new = [m for m in store.add_messages_sync(corpus(2, 100)) if m is not None]
        assert {m.id for m in store.list().messages} == {m.id for m in [*stored[:10], *new]}
        assert store.count() == true_counts(store.path) == (12, 12)
    finally:
        store.close()
    monkeypatch.undo()
    store = SqliteStore(str(tmp_path / "s.db"))
    try:
        assert store.reaper.wait_idle(60)
        assert rows(store.path, "messages") == 12 and store.count() == (12, 12)
    finally:
        store.close()
    check_integrity(str(tmp_path / "s.db"))


def test_reaping_hidden_messages_cut_short_resumes_at_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_reaping(monkeypatch)
    path = str(tmp_path / "s.db")
    store = SqliteStore(path)
    try:
        fill(store)
        doomed = store.search_ids("subject:invoice")
        asyncio.run(store.delete(doomed))
        counts = store.count()
        # A step of the reaper ran, then the process stopped.
        assert store._write_sync(_clear.ReapStep({"doomed": 10})) is True
        assert 0 < rows(path, "doomed") < len(doomed)
        assert automerge(path) == [0, 0]  # the reaper's steps merge the indexes' segments themselves
    finally:
        store.close()
    monkeypatch.undo()
    store = SqliteStore(path)
    try:
        assert store.count() == counts and store.search("subject:invoice").total == 0
        assert store.reaper.wait_idle(60)
        assert rows(path, "doomed") == 0 and store.count() == counts == true_counts(path)
        assert rows(path, "messages") == counts[0]  # the relay copy went with its original
        assert automerge(path) == [_clear.AUTOMERGE] * 2  # FTS5's own merging is back
    finally:
        store.close()
    check_integrity(path)
    # Stopped after the last hidden row went, before the step that would have found none: the start
    # gives FTS5 its merging back.
    with sqlite3.connect(path) as conn:
        _clear.merge_by_hand(conn, True)
    assert automerge(path) == [0, 0]
    SqliteStore(path).close()
    assert automerge(path) == [_clear.AUTOMERGE] * 2


def test_a_store_of_version_12_upgrades(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    conn = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(MIGRATIONS[:12], start=1):
        conn.executescript("BEGIN;\n" + script + f"\nPRAGMA user_version = {number};\nCOMMIT;")
    conn.close()
    store = SqliteStore(path)
    try:
        stored = [m for m in store.add_messages_sync(corpus(60)) if m is not None]
        asyncio.run(store.set_read([m.id for m in stored[:10]], True))
        asyncio.run(store.delete([m.id for m in stored[5:45]]))
        assert store.count() == true_counts(path) == (20, 15)
        assert store.reaper.wait_idle(60)
        assert rows(path, "messages") == 20 and store.count() == (20, 15)
    finally:
        store.close()
    check_integrity(path)


def test_retention_hides_a_backlog_and_the_reaper_deletes_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = ManualClock()
    path = str(tmp_path / "s.db")
    store = SqliteStore(path, clock=clock)
    try:
        old = [m.id for m in store.add_messages_sync(corpus(300)) if m is not None]
        clock.advance(7200)
        young = [m.id for m in store.add_messages_sync(corpus(20, 300)) if m is not None]
        wake = store.reaper.wake
        woken: list[int] = []
        monkeypatch.setattr(store.reaper, "wake", lambda: woken.append(rows(path, "doomed")))
        writes = counting_writes(store, monkeypatch)
        retention = Retention(store, clock, max_age=3600, batch=200)
        assert asyncio.run(retention.prune()) == 300
        assert len(writes) == 2 and woken  # 200 then 100, each one short write that hides ...
        assert rows(path, "messages") == 320 and rows(path, "doomed") == 300  # ... and deletes nothing
        assert store.count() == true_counts(path) == (20, 20)
        assert {m.id for m in store.list(limit=1000).messages} == set(young)
        assert store.get(old[0]) is None and store.search("alpha").total == 20
        wake()
        assert store.reaper.wait_idle(60)
        assert rows(path, "messages") == 20 and rows(path, "doomed") == 0 and store.count() == (20, 20)
        # A few go at once, as a capture's few over --max-messages do.
        clock.advance(7200)
        later = [m.id for m in store.add_messages_sync(corpus(5, 400)) if m is not None]
        assert asyncio.run(store.prune_before(clock.now() - 3600)) == 20
        assert rows(path, "messages") == 5 and rows(path, "doomed") == 0
        assert {m.id for m in store.list().messages} == set(later)
    finally:
        store.close()
    check_integrity(path)


def test_lowering_max_messages_on_a_full_store_hides_the_excess(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "s.db")
    store = SqliteStore(path)
    try:
        start = time.time() - 3600  # received a second apart, up to an hour ago
        items = [(raw, env, start + i) for i, (raw, env) in enumerate(corpus(1200))]
        stored = [m.id for m in store.add_messages_sync(items) if m is not None]
    finally:
        store.close()
    # Every batch prunes, the reaper's steps too: held back here, so that the next batch is the next capture.
    no_reaping(monkeypatch)
    store = SqliteStore(path, max_messages=100)
    try:
        steps = recorded_steps(store)
        new = store.add_message_sync(*corpus(1, 2000)[0])
        # The capture's batch hid the oldest 1000 (PRUNE_HIDE), the next hides the rest of the excess.
        assert store.count() == true_counts(path) == (201, 201)
        assert store.get(stored[999]) is None and store.get(stored[1000]) is not None
        newer = store.add_message_sync(*corpus(1, 2001)[0])
        assert store.count() == (100, 100)
        assert {m.id for m in store.list(limit=1000).messages} == {*stored[1102:], new.id, newer.id}
        assert rows(path, "messages") == 1202 and not steps
        monkeypatch.undo()
        store.reaper.wake()
        assert store.reaper.wait_idle(60) and steps
        assert rows(path, "messages") == 100 and rows(path, "doomed") == 0
        # At the limit, each capture deletes the oldest one at once.
        last = store.add_message_sync(*corpus(1, 2002)[0])
        assert rows(path, "messages") == 100 and rows(path, "doomed") == 0 and store.get(last.id) is not None
    finally:
        store.close()
    check_integrity(path)
