"""The compact store (migration 9): zstd-packed bodies, a contentless full-text index, deletes that never
hold capture, space that is reused."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx

from mailsandbox.models import Envelope
from mailsandbox.store._packing import unpack, unpack_text
from mailsandbox.store._schema import MIGRATIONS
from mailsandbox.store.sqlite import SqliteStore
from tests.conftest import probe_during

WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa".split()
QUERIES = [
    "alpha", "golf hotel", '"golf hotel"', "body:kilo", "subject:invoice", "invoice", "from:ann@x.test",
    "from:ann@x.test lima", "-alpha", "!bravo charlie", "jul", "to:bob@x.test mike", "papa -oscar",
    "subject:invoice -body:delta", "sender7",
]  # fmt: skip


def corpus(n: int) -> list[tuple[bytes, Envelope]]:
    out = []
    for i in range(n):
        words = " ".join(WORDS[(i * 7 + k * k) % len(WORDS)] for k in range(40))
        subject = f"{'Invoice' if i % 5 == 0 else 'Note'} {WORDS[i % len(WORDS)]}"
        sender = "ann@x.test" if i % 3 == 0 else f"sender{i % 11}@x.test"
        raw = (
            f"From: Sender <{sender}>\r\nTo: Bob <bob@x.test>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{i}@x.test>\r\n\r\n{words}\r\n"
        ).encode()
        out.append((raw, Envelope(sender, ("bob@x.test",))))
    return out


def results(store: SqliteStore) -> dict[str, list[str]]:
    """Each query's matches, as Message-ID headers (the IDs differ between stores), in listing order."""
    return {q: [m.summary.message_id for m in store.search(q, limit=1000).messages] for q in QUERIES}


def downgrade_copy(new: SqliteStore, path: Path) -> None:
    """The same messages as a database of schema 6 holds them: plain raw bytes, FTS5 with its own content."""
    old = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(MIGRATIONS[:6], start=1):
        old.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
    src = sqlite3.connect(new.path)
    columns = [r[1] for r in old.execute("PRAGMA table_info(messages)")]
    rows = src.execute(f"SELECT {', '.join(columns)} FROM messages").fetchall()
    old.executemany(f"INSERT INTO messages VALUES ({','.join('?' * len(columns))})", rows)
    for rowid, raw, zstd in src.execute("SELECT rowid, raw, zstd FROM message_raw"):
        old.execute("INSERT INTO message_raw (rowid, raw) VALUES (?, ?)", (rowid, unpack(raw) if zstd else raw))
    texts = src.execute("SELECT t.rowid, t.text, r.raw FROM message_text t JOIN message_raw r USING (rowid)")
    for rowid, text, raw in texts:
        old.execute("INSERT INTO messages_fts (rowid, subject, sender, recipients, body) VALUES (?,?,?,?,?)",
                    (rowid, *unpack_text(text, unpack(raw))))  # fmt: skip
    src.close()
    old.close()


def test_searches_and_bytes_are_unchanged_across_the_migration(tmp_path: Path) -> None:
    items = corpus(300)
    new = SqliteStore(str(tmp_path / "new.db"))
    try:
        list(new.add_messages_sync(items))
        expected = results(new)
        downgrade_copy(new, tmp_path / "old.db")
    finally:
        new.close()
    assert all(expected[q] for q in ("alpha", "invoice", "from:ann@x.test lima", "-alpha", "jul"))
    assert len(expected["-alpha"]) < 300 and expected["invoice"] == expected["subject:invoice"]
    migrated = SqliteStore(str(tmp_path / "old.db"))
    try:
        conn = sqlite3.connect(migrated.path)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert conn.execute("SELECT count(*) FROM message_raw WHERE zstd = 0").fetchone()[0] == 300  # kept as is
        assert results(migrated) == expected
        by_header = {raw.split(b"Message-ID: <")[1].split(b">")[0].decode(): raw for raw, _ in items}
        for message in migrated.list(limit=1000).messages:
            assert migrated.raw(message.id) == by_header[message.summary.message_id]
        # Messages added after the migration are packed; deleting old and new rows keeps the index exact.
        list(migrated.add_messages_sync(items[:50]))
        assert conn.execute("SELECT count(*) FROM message_raw WHERE zstd = 1").fetchone()[0] == 50
        doomed = migrated.search_ids("alpha")
        ask(migrated.delete(doomed))
        assert migrated.search("alpha").total == 0 and migrated.search("bravo").total > 0
        conn.execute("INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 0)")
        conn.close()
    finally:
        migrated.close()


def ask(coro: Any) -> Any:
    import asyncio

    return asyncio.run(coro)


def test_the_index_keeps_no_copy_of_the_text(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "s.db"))
    try:
        list(store.add_messages_sync(corpus(20)))
        conn = sqlite3.connect(store.path)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "messages_fts_content" not in tables  # contentless
        raw, zstd = conn.execute("SELECT raw, zstd FROM message_raw LIMIT 1").fetchone()
        assert zstd == 1 and b"alpha" not in raw and b"Subject" not in raw
        (text,) = conn.execute("SELECT text FROM message_text LIMIT 1").fetchone()
        assert isinstance(text, bytes) and len(json.dumps(unpack_text(text, unpack(raw)))) > 4 * len(text)
        conn.close()
    finally:
        store.close()


def pages(store: SqliteStore) -> dict[tuple[str, int, int], tuple[int, int, list[str]]]:
    """Each query's (matches, unread matches, Message-IDs) on a few pages, deep ones and past the end too."""
    out = {}
    for q in QUERIES:
        for start, limit in ((0, 50), (0, 7), (13, 7), (90, 25), (10_000, 5)):
            page = store.search(q, start=start, limit=limit)
            out[q, start, limit] = (page.total, page.matching_unread, [m.summary.message_id for m in page.messages])
    return out


def test_one_pass_over_few_matches_pages_as_two_passes_do(tmp_path: Path, monkeypatch: Any) -> None:
    # A narrow search is counted and paged from one pass over its matches (sqlite.FEW_MATCHES), a broad one
    # by SQLite in two, and its look-up goes by the rarest trigrams: every way, the same pages.
    store = SqliteStore(str(tmp_path / "s.db"))
    try:
        added = [m for m in store.add_messages_sync(corpus(400)) if m is not None]
        ask(store.set_read([m.id for m in added[::3]], True))
        one_pass = pages(store)
        assert sum(1 for total, _u, _ids in one_pass.values() if total) > 50  # the queries match
        monkeypatch.setattr("mailsandbox.store.sqlite.FEW_MATCHES", 0)
        two_passes = pages(store)
        monkeypatch.setattr(store, "_counts", lambda: None)  # trigrams every third, as the compiler's default
        every_third = pages(store)
    finally:
        store.close()
    assert one_pass == two_passes == every_third


def db_bytes(path: str) -> int:
    return sum(p.stat().st_size for p in Path(path).parent.glob(Path(path).name + "*"))


def settled_bytes(path: str) -> int:
    """The database file once the WAL is copied into it (the WAL's own size is bounded apart). A checkpoint
    that meets the store's own (busy: 1) copies nothing, and the file would look smaller than it is."""
    deadline = time.monotonic() + 30
    with sqlite3.connect(path) as conn:
        while (busy := conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert not busy, "the WAL could not be checkpointed in 30 s"
    return Path(path).stat().st_size


def test_space_is_reused_after_deletes(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "s.db"))
    items = corpus(2000)
    try:
        list(store.add_messages_sync(items))
        filled = settled_bytes(store.path)
        for _round in range(3):  # everything, then a search's worth, then the rest
            ask(store.delete(None))
            list(store.add_messages_sync(items))
            ask(store.delete(store.search_ids("alpha")))
            assert store.reaper.wait_idle(60)  # a large delete hides its messages; their pages free once reaped
            list(store.add_messages_sync(items[:1000]))
            ask(store.delete(store.search_ids("")))
            assert store.reaper.wait_idle(60)
            list(store.add_messages_sync(items))
        assert store.count()[0] == 2000
        # Without reuse each round would add its 5,000 messages (over 6x); with it 1.2-1.6x (free pages
        # scattered by the batched deletes).
        assert settled_bytes(store.path) < filled * 2, (settled_bytes(store.path), filled)
    finally:
        store.close()


def test_deleting_everything_does_not_stall_capture(sandbox_factory: Any) -> None:
    sb = sandbox_factory(relay=False)
    list(sb.store.add_messages_sync(corpus(10000)))

    def delete_all() -> None:
        with httpx.Client(base_url=f"http://{sb.address('http')}", timeout=60) as client:
            client.delete("/api/v1/messages").raise_for_status()
            assert client.get("/api/v1/messages").json()["total"] < 100  # empty at once: the probes' own
        assert sb.store.reaper.wait_idle(60)  # the probes go on while the set-aside tables are reaped

    # Row by row, 10,000 messages held the writer (and every SMTP 250) for about 2 s; truncated, ~80 ms;
    # set aside, ~35 ms, then reaping steps of ~10 ms.
    probe_during(sb, delete_all)
    assert sb.store.count()[0] < 100  # the probes' own messages
    with sqlite3.connect(sb.store.path) as conn:
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name GLOB 'dead_*'").fetchone()[0] == 0


def test_deleting_by_search_does_not_stall_capture(sandbox_factory: Any) -> None:
    sb = sandbox_factory(relay=False)
    list(sb.store.add_messages_sync(corpus(6000)))
    matching = sb.store.search("invoice").total
    assert matching == 1200

    def delete_matching() -> None:
        with httpx.Client(base_url=f"http://{sb.address('http')}", timeout=60) as client:
            client.delete("/api/v1/search", params={"query": "invoice"}).raise_for_status()

    probe_during(sb, delete_matching)
    assert sb.store.search("invoice").total == 0
    assert sb.store.count()[0] >= 4800
