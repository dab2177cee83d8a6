"""The relay's outbound queue and delivery trace on PostgreSQL, shared by every frontend on the database.

Each outcome of an attempt is one domain operation, one transaction: its trace rows, the delivery into
the recipient's mailbox (for a success) and the queue row's removal or new schedule commit together, so
a crash leaves either all of it or none (then the recipient is simply tried again). An operation on a
recipient no longer queued (delivered or dropped meanwhile, or its message deleted) writes nothing.

`due` claims what it returns: each due recipient is handed to one frontend's pass at a time (the rows
are taken `FOR UPDATE SKIP LOCKED` and marked `claimed_until` a lease of real time ahead), so frontends
whose passes run at once try different recipients. A frontend that dies mid-pass leaves its claims to
run out; then another one tries them. The claim only spares the work: what makes an outcome happen once
is the queue row, in each outcome's transaction. A delivery or a removal takes the row with
`DELETE ... RETURNING`, a deferral reschedules it with `UPDATE ... RETURNING` only while it is still due;
PostgreSQL's row lock makes the second of two such statements on one row wait for the first transaction
and then re-check the row as that one committed it. Exactly one transaction finds the row, and only it
records its attempts and delivers; the other writes nothing and returns None or False (which tells the
relay not to announce, bounce or warn).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from mailsandbox.clock import Clock
from mailsandbox.events import Event
from mailsandbox.models import Attempt, MailEntry
from mailsandbox.store import NoSuchMessage, QueueItem, normalize_user
from mailsandbox.store._queue import _QUEUE_COLUMNS, _item
from mailsandbox.store.postgres._writer import PgWriteFn

# Real seconds a pass holds the recipients `due` handed it (a pass tries each within milliseconds; a
# frontend killed mid-pass keeps its recipients from the others this long).
CLAIM_SECONDS = 30.0
# Ties in bytewise order (as SQLite's), whatever the database's locale.
_ORDER = 'next_attempt, message COLLATE "C", recipient COLLATE "C"'
# What a delivery does inside the transaction: (conn) -> (the new entry, events after commit).
DeliverFn = Callable[[psycopg.Connection], tuple[MailEntry, list[Event]]]


def _insert_attempts(conn: psycopg.Connection, attempts: Sequence[Attempt]) -> None:
    if not attempts:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO attempts (message, recipient, hop, host, preference, code, reply, at, dialogue)"
            " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            [(a.message_id, a.recipient, a.hop, a.host, a.preference, a.code, a.reply, a.at,
              json.dumps(list(a.dialogue))) for a in attempts],
        )  # fmt: skip


def _take(conn: psycopg.Connection, message_id: str, recipient: str) -> bool:
    """Remove the queue row; False when it was not there (or another transaction took it first)."""
    return conn.execute(
        "DELETE FROM queue WHERE message = %s AND recipient = %s RETURNING 1", (message_id, recipient)
    ).fetchone() is not None


class PgQueueMixin:
    clock: Clock
    origin: str  # this frontend, as its claims name it

    def release_claims(self, conn: psycopg.Connection) -> int:
        """Give back what this frontend's passes claimed and did not try (it is stopping); how many."""
        return conn.execute(
            "UPDATE queue SET claimed_until = NULL WHERE claimed_by = %s AND claimed_until IS NOT NULL", (self.origin,)
        ).rowcount

    @property
    def _db(self) -> psycopg.Connection:
        raise NotImplementedError

    async def _write(self, fn: PgWriteFn) -> Any:
        raise NotImplementedError

    async def _deliver_fn(self, message_id: str, user: str, folder: str, prefix: bytes, suffix: bytes) -> DeliverFn:
        raise NotImplementedError

    def queue(self) -> list[QueueItem]:
        rows = self._db.execute(f"SELECT {_QUEUE_COLUMNS} FROM queue ORDER BY {_ORDER}")
        return [_item(r) for r in rows]

    def queue_count(self) -> int:
        row = self._db.execute("SELECT count(*) FROM queue").fetchone()
        return int(row[0]) if row else 0

    def due(self, now: float) -> list[QueueItem]:
        """The recipients due at `now` (the relay clock) that no other pass holds, claimed for CLAIM_SECONDS
        of real time (see the module's text)."""
        wall = time.time()
        rows = self._db.execute(
            f"UPDATE queue q SET claimed_until = %s, claimed_by = %s FROM (SELECT message, recipient FROM queue"
            f" WHERE next_attempt <= %s AND (claimed_until IS NULL OR claimed_until < %s)"
            f" ORDER BY {_ORDER} FOR UPDATE SKIP LOCKED) d"
            f" WHERE q.message = d.message AND q.recipient = d.recipient"
            f" RETURNING {', '.join('q.' + c for c in _QUEUE_COLUMNS.split(', '))}",
            (wall + CLAIM_SECONDS, self.origin, now, wall),
        ).fetchall()
        return sorted((_item(r) for r in rows), key=lambda i: (i.next_attempt, i.message_id.encode(),
                                                               i.recipient.encode()))  # fmt: skip

    async def record_delivery(
        self, message_id: str, recipient: str, attempts: Sequence[Attempt], prefix: bytes = b"", suffix: bytes = b""
    ) -> MailEntry | None:
        try:
            deliver = await self._deliver_fn(message_id, normalize_user(recipient), "INBOX", prefix, suffix)
        except NoSuchMessage:  # deleted, and its queue rows with it
            return None
        attempts = tuple(attempts)

        def write(conn: psycopg.Connection) -> tuple[MailEntry | None, list[Event]]:
            # The message first, key-share locked: a delete of it (another frontend's) waits for this
            # COMMIT, or has committed and then neither it nor its queue row is found.
            if conn.execute("SELECT 1 FROM messages WHERE id = %s FOR KEY SHARE", (message_id,)).fetchone() is None:
                return None, []
            # The row decides: of two frontends delivering this recipient at once, one DELETE returns it.
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
        """A temporary failure of a due recipient. False when it is no longer queued, or no longer due:
        another pass (another frontend's) deferred it first, and this try is not counted twice."""
        attempts = tuple(attempts)
        now = self.clock.now()

        def write(conn: psycopg.Connection) -> tuple[bool, list[Event]]:
            # The row decides, as in _take: the second of two deferrals waits for the first one's COMMIT,
            # then re-checks the row it rescheduled (next_attempt past now) and leaves it.
            found = conn.execute(
                "UPDATE queue SET attempts = attempts + 1, next_attempt = %s, last_error = %s, warned = %s,"
                " claimed_until = NULL WHERE message = %s AND recipient = %s AND next_attempt <= %s RETURNING 1",
                (next_attempt, error, warned, message_id, recipient, now),
            ).fetchone()
            if found is None:
                return False, []
            _insert_attempts(conn, attempts)
            return True, []

        result: bool = await self._write(write)
        return result

    async def record_removal(self, message_id: str, recipient: str, attempts: Sequence[Attempt] = ()) -> bool:
        attempts = tuple(attempts)

        def write(conn: psycopg.Connection) -> tuple[bool, list[Event]]:
            if not _take(conn, message_id, recipient):  # the row decides (see record_delivery)
                return False, []
            _insert_attempts(conn, attempts)
            return True, []

        result: bool = await self._write(write)
        return result

    def trace(self, message_id: str) -> list[Attempt]:
        rows = self._db.execute(
            "SELECT message, recipient, host, preference, code, reply, at, dialogue, hop FROM attempts"
            " WHERE message = %s ORDER BY id",
            (message_id,),
        )
        return [
            Attempt(m, r, h, p, c, rep, at, tuple(json.loads(d)), hop) for m, r, h, p, c, rep, at, d, hop in rows
        ]
