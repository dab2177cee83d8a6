"""Reading a database file read-only, oldest first, for `mailsandbox dump`: never migrates or writes."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mailsandbox.store._schema import shown
from mailsandbox.store.sqlite import read_raw


@dataclass(frozen=True)
class Exported:
    id: str
    created: float  # when the sandbox received it (epoch seconds)
    mail_from: str  # the envelope sender
    raw: bytes


def read_only(path: str | Path) -> Iterator[Exported]:
    """Every message (no relay copies) of the database at `path`, oldest first, one in memory at a time."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"no database at {path}")
    conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    try:
        if int(conn.execute("PRAGMA user_version").fetchone()[0]) < 1:
            raise ValueError(f"{path} is not a Mailsandbox database")
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        packed = "r.zstd" if version >= 9 else "0"  # migration 9
        hidden = f" AND {shown('m.rowid')}" if version >= 13 else ""  # migration 13: a large delete's, still there
        rows = conn.execute(
            f"SELECT m.id, m.created, m.envelope_json, r.raw, r.chunks, {packed} FROM messages m"
            f" JOIN message_raw r ON r.rowid = m.rowid WHERE m.parent IS NULL{hidden} ORDER BY m.created, m.rowid"
        )
        reader = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)  # for chunked bytes
        try:
            for mid, created, envelope, raw, chunks, zstd in rows:
                sender = str(json.loads(envelope).get("mail_from", "")) if envelope else ""
                yield Exported(mid, float(created), sender, read_raw(reader, raw, chunks, zstd))
        finally:
            reader.close()
    finally:
        conn.close()
