"""A database made by an older version is brought forward in place, its messages kept."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from mailsandbox.models import Envelope
from mailsandbox.store._schema import MIGRATIONS
from mailsandbox.store.sqlite import SqliteStore

RAW = (
    b"From: a@example.test\r\nTo: b@example.test\r\nSubject: logo\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/related; boundary="B"\r\n\r\n--B\r\nContent-Type: text/html\r\n\r\n'
    b'<img src="cid:l@x">\r\n--B\r\nContent-Type: image/png\r\nContent-ID: <l@x>\r\n\r\nPNG\r\n--B--\r\n'
)


def test_version_2_gains_inline_counts_and_the_tag_index(tmp_path: Path) -> None:
    path = str(tmp_path / "old.db")
    conn = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(MIGRATIONS[:2], start=1):
        conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
    conn.execute(
        "INSERT INTO messages (rowid, id, created, subject, tags) VALUES (1, 'old', 1.0, 'from before', 'kept')"
    )
    conn.close()

    store = SqliteStore(path)
    try:
        assert store.get("old") is not None and store.get("old").summary.inline == 0  # type: ignore[union-attr]
        asyncio.run(store.add_message(RAW, Envelope("a@example.test", ("b@example.test",))))
        assert [m.summary.subject for m in store.search("has:inline").messages] == ["logo"]
        assert [m.id for m in store.search("tag:kept").messages] == ["old"]
        assert store.list().tags == ("kept",)
        db = sqlite3.connect(path)
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        plan = " ".join(
            str(r[3]) for r in db.execute("EXPLAIN QUERY PLAN SELECT DISTINCT tags FROM messages WHERE tags != ''")
        )
        assert "messages_tagged" in plan
        db.close()
    finally:
        store.close()
