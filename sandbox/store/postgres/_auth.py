"""Email authentication results kept with each message (the message_auth table), on PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

from mailsandbox.events import Event
from mailsandbox.store import normalize_user
from mailsandbox.store._auth import auth_rows
from mailsandbox.store.postgres._writer import PgWriteFn


def _snapshot_bound(db: psycopg.Connection, which: str) -> int:
    """The xmin or xmax of a snapshot taken now (transaction ids, as 64-bit xid8 numbers)."""
    row = db.execute(f"SELECT pg_snapshot_{which}(pg_current_snapshot())::text").fetchone()
    assert row is not None
    return int(row[0])


class PgAuthMixin:
    # See unchecked_auth: the rowid every message at or below which has been checked, and the next one.
    _auth_floor: int = 0
    _auth_pending: tuple[int, int] = (0, 0)  # (rowid, the xmax of a snapshot taken after its scan)

    @property
    def _db(self) -> psycopg.Connection:
        raise NotImplementedError

    async def _write(self, fn: PgWriteFn) -> Any:
        raise NotImplementedError

    async def save_auth(self, message_id: str, summary: Mapping[str, str], report: Mapping[str, Any]) -> bool:
        """Store a message's results: `summary` is method -> result word, `report` the full JSON.
        False when the message is gone (deleted before its checks finished)."""
        saved = await self.save_auths([(message_id, summary, report)])
        return saved == 1

    async def save_auths(self, items: Sequence[tuple[str, Mapping[str, str], Mapping[str, Any]]]) -> int:
        """Several messages' results in one transaction; returns how many messages still existed."""
        rows = auth_rows(items)

        def write(conn: psycopg.Connection) -> tuple[int, list[Event]]:
            # Key-share locked: a message another frontend is deleting is waited for and then not found,
            # and one found cannot go before this COMMIT (its results' foreign key would fail the batch).
            found: dict[str, int] = dict(
                conn.execute(
                    "SELECT id, rowid FROM messages WHERE id = ANY(%s) ORDER BY rowid FOR KEY SHARE",
                    (list(dict.fromkeys(r[0] for r in rows)),),
                ).fetchall()
            )
            values = [(found[mid], *rest) for mid, *rest in rows if mid in found]
            if values:
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO message_auth (rowid, spf, dkim, dmarc, arc, report_json)"
                        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (rowid) DO UPDATE SET spf = excluded.spf,"
                        " dkim = excluded.dkim, dmarc = excluded.dmarc, arc = excluded.arc,"
                        " report_json = excluded.report_json",
                        values,
                    )
            return len(values), []

        count: int = await self._write(write)
        return count

    def unchecked_auth(self, limit: int) -> list[str]:
        """Ids of up to `limit` originals without results, newest first (what the checks still owe).

        Newest first walks the table backwards until it finds `limit`, so with everything checked it reads
        every row, once per sweep; a floor bounds the walk to the rows above it. Rowids come from an identity
        column and are never reused (a delete of everything keeps its sequence), but they are not committed
        in order: another frontend's transaction may hold a row below the newest one we see and commit it
        later. So a walk that finds nothing does not lower-bound the next walks at once. It leaves a pending
        floor, the newest rowid, with the xmax of a snapshot taken after it: every transaction that may hold
        a row at or below it had begun by then. Once a snapshot's xmin has passed that xmax, all of them have
        ended; a walk that begins after that, from the old floor, sees every such row, and if it finds nothing
        the pending floor becomes the floor. (A transaction left open anywhere on the server holds the xmin
        back, and with it the floor: the walks are longer, never wrong.)"""
        db = self._db
        floor = self._auth_floor
        pending, pending_xmax = self._auth_pending
        settled = pending > floor and _snapshot_bound(db, "xmin") >= pending_xmax  # before the walk below
        top = db.execute("SELECT rowid FROM messages ORDER BY rowid DESC LIMIT 1").fetchone()
        if top is None:
            return []
        rows = db.execute(
            "SELECT m.id FROM messages m WHERE m.rowid > %s AND m.rowid <= %s AND m.parent IS NULL"
            " AND NOT EXISTS (SELECT 1 FROM message_auth a WHERE a.rowid = m.rowid) ORDER BY m.rowid DESC LIMIT %s",
            (floor, top[0], limit),
        ).fetchall()
        if not rows:  # one caller (the sweep's thread): no lock
            if settled:
                self._auth_floor = pending
            if settled or pending <= self._auth_floor:  # else the pending floor waits to settle
                self._auth_pending = (int(top[0]), _snapshot_bound(db, "xmax"))
        return [str(r[0]) for r in rows]

    def delivered_copy(self, message_id: str, user: str) -> str | None:
        """The id of the message as it reached `user`'s mailbox: the relay's copy (with what its hops
        added), or the message itself when it was delivered directly; None when it never reached it."""
        row = self._db.execute(
            "SELECT c.id FROM messages m JOIN entries e ON e.root = m.rowid JOIN folders f ON f.id = e.folder_id"
            " JOIN messages c ON c.rowid = e.message WHERE m.id = %s AND f.username = %s ORDER BY e.uid LIMIT 1",
            (message_id, normalize_user(user)),
        ).fetchone()
        return str(row[0]) if row else None

    def auth_report(self, message_id: str) -> dict[str, Any] | None:
        """The stored report of a message, or None when it has not been checked (yet)."""
        row = self._db.execute(
            "SELECT a.report_json FROM message_auth a JOIN messages m ON m.rowid = a.rowid WHERE m.id = %s",
            (message_id,),
        ).fetchone()
        if row is None:
            return None
        report: dict[str, Any] = json.loads(row[0])
        return report
