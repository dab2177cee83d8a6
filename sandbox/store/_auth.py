"""Email authentication results kept with each message (the message_auth table)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from mailsandbox.events import Event
from mailsandbox.store._schema import shown

_METHODS = ("spf", "dkim", "dmarc", "arc")


def auth_rows(items: Sequence[tuple[str, Mapping[str, str], Mapping[str, Any]]]) -> list[tuple[str, ...]]:
    """(message_id, spf, dkim, dmarc, arc, report JSON) of each (message_id, summary, report), as the
    message_auth table holds them (a method not checked is "none")."""
    return [
        (message_id, *(str(summary.get(m, "none")) for m in _METHODS), json.dumps(report, ensure_ascii=False))
        for message_id, summary, report in items
    ]


class AuthMixin:
    _auth_floor: tuple[int, str] = (0, "")  # see unchecked_auth
    @property
    def _db(self) -> sqlite3.Connection:
        raise NotImplementedError

    async def _write(self, fn: Any) -> Any:
        raise NotImplementedError

    async def save_auth(self, message_id: str, summary: Mapping[str, str], report: Mapping[str, Any]) -> bool:
        """Store a message's results: `summary` is method -> result word, `report` the full JSON.
        False when the message is gone (deleted before its checks finished)."""
        saved = await self.save_auths([(message_id, summary, report)])
        return saved == 1

    async def save_auths(self, items: Sequence[tuple[str, Mapping[str, str], Mapping[str, Any]]]) -> int:
        """Several messages' results in one transaction; returns how many messages still existed."""
        rows = auth_rows(items)

        def write(conn: sqlite3.Connection) -> tuple[int, list[Event]]:
            saved = 0
            for message_id, *values in rows:
                found = conn.execute(
                    f"SELECT rowid FROM messages WHERE id = ? AND {shown('rowid')}", (message_id,)
                ).fetchone()
                if found is not None:
                    conn.execute(
                        "INSERT OR REPLACE INTO message_auth (rowid, spf, dkim, dmarc, arc, report_json)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        (found[0], *values),
                    )
                    saved += 1
            return saved, []

        count: int = await self._write(write)
        return count

    def unchecked_auth(self, limit: int) -> list[str]:
        """Ids of up to `limit` originals without results, newest first (what the checks still owe).

        Newest first walks the table backwards until it finds `limit`, so with everything checked it read
        every row (480 ms at 200k messages), once per sweep. An empty answer records the newest row as a
        floor: while that row exists, every row added later has a greater rowid, so later calls look only
        above it. The floor's row gone (deleted, the table emptied) means one full walk again."""
        db = self._db
        floor, floor_id = self._auth_floor
        if floor and db.execute("SELECT id FROM messages WHERE rowid = ?", (floor,)).fetchone() != (floor_id,):
            floor = 0
        top = db.execute("SELECT rowid, id FROM messages ORDER BY rowid DESC LIMIT 1").fetchone()
        if top is None:
            return []
        rows = db.execute(  # `+`: a walk of the rowid range, not of the listing index's parent IS NULL
            "SELECT m.id FROM messages m WHERE m.rowid > ? AND m.rowid <= ? AND +m.parent IS NULL"
            f" AND {shown('m.rowid')} AND NOT EXISTS (SELECT 1 FROM message_auth a WHERE a.rowid = m.rowid)"
            " ORDER BY m.rowid DESC LIMIT ?",
            (floor, top[0], limit),
        ).fetchall()
        if not rows:  # one caller (the sweep's thread): no lock
            self._auth_floor = (int(top[0]), str(top[1]))
        return [r[0] for r in rows]

    def delivered_copy(self, message_id: str, user: str) -> str | None:
        """The id of the message as it reached `user`'s mailbox: the relay's copy (with what its hops
        added), or the message itself when it was delivered directly; None when it never reached it."""
        row = self._db.execute(
            "SELECT c.id FROM messages m JOIN entries e ON e.root = m.rowid JOIN folders f ON f.id = e.folder_id"
            f" JOIN messages c ON c.rowid = e.message WHERE m.id = ? AND {shown('m.rowid')} AND f.user = ?"
            " ORDER BY e.uid LIMIT 1",
            (message_id, user.strip().strip("<>").lower()),
        ).fetchone()
        return str(row[0]) if row else None

    def auth_report(self, message_id: str) -> dict[str, Any] | None:
        """The stored report of a message, or None when it has not been checked (yet)."""
        row = self._db.execute(
            f"SELECT a.report_json FROM message_auth a JOIN messages m ON m.rowid = a.rowid WHERE m.id = ?"
            f" AND {shown('m.rowid')}",
            (message_id,),
        ).fetchone()
        if row is None:
            return None
        report: dict[str, Any] = json.loads(row[0])
        return report
