"""The relay's outbound queue and delivery trace, kept in the store so they survive restarts.

Each outcome of an attempt is one domain operation, one transaction: its trace rows, the delivery into
the recipient's mailbox (for a success) and the queue row's removal or new schedule commit together, so
a crash leaves either all of it or none (then the recipient is simply tried again). An operation on a
recipient no longer queued (delivered or dropped meanwhile, or its message deleted) writes nothing.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from mailsandbox.events import Event
from mailsandbox.models import Attempt, MailEntry
from mailsandbox.store import NoSuchMessage, QueueItem, normalize_user
from mailsandbox.store._writer import WriteFn

_QUEUE_COLUMNS = "message, recipient, attempts, next_attempt, first_attempt, last_error, warned"
# What a delivery does inside the transaction: (conn) -> (the new entry, events after commit).
DeliverFn = Callable[[sqlite3.Connection], tuple[MailEntry, list[Event]]]


def _item(row: tuple[Any, ...]) -> QueueItem:
    message, recipient, attempts, next_attempt, first_attempt, last_error, warned = row
    return QueueItem(message, recipient, int(attempts), next_attempt, first_attempt, last_error, bool(warned))


def _insert_attempts(conn: sqlite3.Connection, attempts: Sequence[Attempt]) -> None:
    conn.executemany(
        "INSERT INTO attempts (message, recipient, hop, host, preference, code, reply, at, dialogue)"
        " VALUES (?,?,?,?,?,?,?,?,?)",
        [(a.message_id, a.recipient, a.hop, a.host, a.preference, a.code, a.reply, a.at,
          json.dumps(list(a.dialogue))) for a in attempts],
    )  # fmt: skip


def _take(conn: sqlite3.Connection, message_id: str, recipient: str) -> bool:
    """Remove the queue row; False when it was not there."""
    return conn.execute(
        "DELETE FROM queue WHERE message = ? AND recipient = ? RETURNING 1", (message_id, recipient)
    ).fetchone() is not None


class QueueMixin:
    @property
    def _db(self) -> sqlite3.Connection:
        raise NotImplementedError

    async def _write(self, fn: WriteFn) -> Any:
        raise NotImplementedError

    async def _deliver_fn(self, message_id: str, user: str, folder: str, prefix: bytes, suffix: bytes) -> DeliverFn:
        raise NotImplementedError

    def queue(self) -> list[QueueItem]:
        rows = self._db.execute(f"SELECT {_QUEUE_COLUMNS} FROM queue ORDER BY next_attempt, message, recipient")
        return [_item(r) for r in rows]

    def queue_count(self) -> int:
        (count,) = self._db.execute("SELECT count(*) FROM queue").fetchone()
        return int(count)

    def due(self, now: float) -> list[QueueItem]:
        rows = self._db.execute(
            f"SELECT {_QUEUE_COLUMNS} FROM queue WHERE next_attempt <= ? ORDER BY next_attempt", (now,)
        )
        return [_item(r) for r in rows]

    async def record_delivery(
        self, message_id: str, recipient: str, attempts: Sequence[Attempt], prefix: bytes = b"", suffix: bytes = b""
    ) -> MailEntry | None:
        try:
            deliver = await self._deliver_fn(message_id, normalize_user(recipient), "INBOX", prefix, suffix)
        except NoSuchMessage:  # deleted, and its queue rows with it
            return None
        attempts = tuple(attempts)

        def write(conn: sqlite3.Connection) -> tuple[MailEntry | None, list[Event]]:
            if not _take(conn, message_id, recipient):
                return None, []
            _insert_attempts(conn, attempts)
            return deliver(conn)

        result: MailEntry | None = await self._write(write)
        return result

    async def record_deferral(
        self, message_id: str, recipient: str, attempts: Sequence[Attempt], *, next_attempt: float, error: str,
        warned: bool,
    ) -> bool:  # fmt: skip
        attempts = tuple(attempts)

        def write(conn: sqlite3.Connection) -> tuple[bool, list[Event]]:
            found = conn.execute(
                "UPDATE queue SET attempts = attempts + 1, next_attempt = ?, last_error = ?, warned = ?"
                " WHERE message = ? AND recipient = ? RETURNING 1",
                (next_attempt, error, int(warned), message_id, recipient),
            ).fetchone()
            if found is None:
                return False, []
            _insert_attempts(conn, attempts)
            return True, []

        result: bool = await self._write(write)
        return result

    async def record_removal(self, message_id: str, recipient: str, attempts: Sequence[Attempt] = ()) -> bool:
        attempts = tuple(attempts)

        def write(conn: sqlite3.Connection) -> tuple[bool, list[Event]]:
            if not _take(conn, message_id, recipient):
                return False, []
            _insert_attempts(conn, attempts)
            return True, []

        result: bool = await self._write(write)
        return result

    def trace(self, message_id: str) -> list[Attempt]:
        rows = self._db.execute(
            "SELECT message, recipient, host, preference, code, reply, at, dialogue, hop FROM attempts"
            " WHERE message = ? ORDER BY id",
            (message_id,),
        )
        return [
            Attempt(m, r, h, p, c, rep, at, tuple(json.loads(d)), hop) for m, r, h, p, c, rep, at, d, hop in rows
        ]
