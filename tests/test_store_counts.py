"""The store's counts (kept by triggers in the tally table) and its trigram index of subject, from and to
stay true through every kind of write: arrivals, relay copies, read changes, deletes, pruning, deleting
everything."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path

from mailsandbox.models import Envelope
from mailsandbox.store._search import compile_query
from mailsandbox.store.sqlite import SqliteStore

NAMES = ["Invoice", "Receipt", "Welcome", "Résumé", "Ünïcode", "reset"]


def _messages(rng: random.Random, n: int) -> list[tuple[bytes, Envelope]]:
    out = []
    for _ in range(n):
        subject = " ".join(rng.sample(NAMES, 2))
        sender = f"{rng.choice(NAMES).lower()}@{rng.choice(['a', 'b'])}.test"
        to = f"{rng.choice(NAMES).lower()}@to.test"
        raw = f"From: {rng.choice(NAMES)} <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\r\nhello\r\n"
        out.append((raw.encode(), Envelope(sender, (to,))))
    return out


def _check(store: SqliteStore, db: sqlite3.Connection) -> None:
    shown = "parent IS NULL AND rowid NOT IN (SELECT rowid FROM doomed)"  # not hidden by a large delete
    ((total, unread),) = db.execute(f"SELECT count(*), coalesce(sum(read = 0), 0) FROM messages WHERE {shown}").fetchall()
    assert store.count() == (total, unread)
    for query in ("subject:invoice", "subject:ésu", "from:eset@", "to:welcome@to", "subject:e r"):
        by_index = {m.id for m in store.search(query, limit=10_000).messages}
        where, params = compile_query(query, 0.0, one_row=True)  # the LIKE alone, row by row
        by_scan = {r[0] for r in db.execute(f"SELECT id FROM messages m WHERE {shown} AND ({where})", params)}
        assert by_index == by_scan, query


def test_counts_and_the_trigram_index_survive_every_kind_of_write(tmp_path: Path) -> None:
    rng = random.Random(7)
    store = SqliteStore(str(tmp_path / "s.db"))
    db = sqlite3.connect(store.path)
    try:
        for round_ in range(3):
            stored = [m for m in store.add_messages_sync(_messages(rng, 300)) if m is not None]
            _check(store, db)
            ids = [m.id for m in stored]
            asyncio.run(store.set_read(rng.sample(ids, 100), True))
            asyncio.run(store.set_read(rng.sample(ids, 40), False))
            _check(store, db)
            for mid in rng.sample(ids, 5):  # relay copies: rows with a parent, never counted or listed
                asyncio.run(store.deliver(mid, "relay@x.test", prefix=b"Received: from hop\r\n"))
            _check(store, db)
            asyncio.run(store.delete(rng.sample(ids, 60)))  # hidden at once, reaped after
            _check(store, db)
            assert store.reaper.wait_idle(30)
            _check(store, db)
            asyncio.run(store.delete(rng.sample(ids, 3)))  # a few: deleted at once
            _check(store, db)
            asyncio.run(store.prune_before(stored[50].created))
            _check(store, db)
            asyncio.run(store.set_read(None, True))
            _check(store, db)
            if round_ == 1:
                asyncio.run(store.delete(None))
                assert store.count() == (0, 0)
                _check(store, db)
        assert store.count()[0] > 0
    finally:
        db.close()
        store.close()
