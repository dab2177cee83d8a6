"""The relay's outbound queue and delivery trace, kept in the store so they survive restarts."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from mailsandbox.events import Event
from mailsandbox.models import Attempt
from mailsandbox.store import QueueItem
from mailsandbox.store._writer import WriteFn

_QUEUE_COLUMNS = "message, recipient, attempts, next_attempt, first_attempt, last_error, warned"


def _item(row: tuple[Any, ...]) -> QueueItem:
    message, recipient, attempts, next_attempt, first_attempt, last_error, warned = row
    return QueueItem(message, recipient, int(attempts), next_attempt, first_attempt, last_error, bool(warned))


class QueueMixin:
    @property
    def _db(self) -> sqlite3.Connection:
        raise NotImplementedError

    def _write_sync(self, fn: WriteFn) -> Any:
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

    def update_queue(
        self, message_id: str, recipient: str, *, next_attempt: float, error: str, warned: bool
    ) -> None:
        def write(conn: sqlite3.Connection) -> tuple[None, list[Event]]:
            conn.execute(
                "UPDATE queue SET attempts = attempts + 1, next_attempt = ?, last_error = ?, warned = ?"
                " WHERE message = ? AND recipient = ?",
                (next_attempt, error, int(warned), message_id, recipient),
            )
            return None, []

        self._write_sync(write)

    def dequeue(self, message_id: str, recipient: str) -> None:
        def write(conn: sqlite3.Connection) -> tuple[None, list[Event]]:
            conn.execute("DELETE FROM queue WHERE message = ? AND recipient = ?", (message_id, recipient))
            return None, []

        self._write_sync(write)

    def add_attempt(self, attempt: Attempt) -> None:
        def write(conn: sqlite3.Connection) -> tuple[None, list[Event]]:
            conn.execute(
                "INSERT INTO attempts (message, recipient, hop, host, preference, code, reply, at, dialogue)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                (attempt.message_id, attempt.recipient, attempt.hop, attempt.host, attempt.preference,
                 attempt.code, attempt.reply, attempt.at, json.dumps(list(attempt.dialogue))),
            )
            return None, []

        self._write_sync(write)

    def trace(self, message_id: str) -> list[Attempt]:
        rows = self._db.execute(
            "SELECT message, recipient, host, preference, code, reply, at, dialogue, hop FROM attempts"
            " WHERE message = ? ORDER BY id",
            (message_id,),
        )
        return [
            Attempt(m, r, h, p, c, rep, at, tuple(json.loads(d)), hop) for m, r, h, p, c, rep, at, d, hop in rows
        ]
