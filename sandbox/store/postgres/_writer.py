"""Group commit on PostgreSQL: one writer thread per frontend runs queued write requests in one transaction
per batch, as the SQLite store's writer does, and tells the other frontends what it committed.

A request is `fn(conn) -> (result, events)`. A batch runs in one transaction; a failing request (a message
deleted meanwhile, a folder that exists) makes it replay a request per transaction, so it never takes its
neighbours down. The events go out twice after COMMIT: on this
process's bus, and as NOTIFY payloads queued inside the same transaction (PostgreSQL delivers them only if
it commits), which the other frontends' listeners turn back into events (`_notify.py`).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

import psycopg
import psycopg.errors

from mailsandbox.events import Event
from mailsandbox.store._writer import STOP, AnyFuture, Outcome, QueuedWriter, _settle_all
from mailsandbox.store.postgres._notify import CHANNEL, payloads

PgWriteFn = Callable[[psycopg.Connection], tuple[Any, list[Event]]]
log = logging.getLogger("mailsandbox.store")
MAX_BATCH = 512
_ROLLBACK_RETRIES = 3  # runs of a batch PostgreSQL rolled back to break a deadlock between frontends


class PgWriter(QueuedWriter):
    def __init__(
        self,
        connect: Callable[[], psycopg.Connection],
        publish: Callable[[Event], None],
        origin: str,
        after_batch: Callable[[psycopg.Connection], list[Event]] | None = None,
    ) -> None:
        self._connect = connect
        self._publish = publish
        self._origin = origin  # this frontend's name in its NOTIFY payloads, so its listener skips them
        self._after_batch = after_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._conn: psycopg.Connection | None = connect()  # fails here, in the caller, if it cannot
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                item = self._queue.get()
                batch: list[tuple[PgWriteFn, AnyFuture]] = []
                stop = item is STOP
                while not stop:
                    batch.append(item)
                    if len(batch) >= MAX_BATCH:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    stop = item is STOP
                if batch:
                    outcomes, events = self._commit(batch)
                    del batch, item  # let go of the requests (and their messages) before anyone hears
                    for event in events:  # published before the callers wake, as SQLite's writer does
                        self._publish(event)
                    _settle_all(outcomes)  # only now, after COMMIT, do callers learn their write is durable
                if stop:
                    return
        finally:
            if self._conn is not None:
                self._conn.close()

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = self._connect()  # the server restarted, or the connection was cut: a new one
        return self._conn

    def _commit(self, batch: list[tuple[PgWriteFn, AnyFuture]]) -> tuple[list[Outcome], list[Event]]:
        """Optimistic: the whole batch in one transaction, no savepoint per request (each would be two more
        round trips). If a request fails, the batch is undone and replayed a request per transaction, so a
        failure never takes its neighbours down (write functions are pure closures: safe to re-run)."""
        try:
            for attempt in range(_ROLLBACK_RETRIES):
                try:
                    return self._run_batch(batch)
                except psycopg.errors.TransactionRollback:  # a deadlock with another frontend: PostgreSQL
                    if attempt == _ROLLBACK_RETRIES - 1:  # rolled this side back; run it again
                        raise
            raise AssertionError("unreachable")
        except _Failed as failed:
            if len(batch) == 1:
                return [(batch[0][1], False, failed.error)], []
            outcomes: list[Outcome] = []
            events: list[Event] = []
            for item in batch:
                more, new = self._commit([item])
                outcomes += more
                events += new
            return outcomes, events
        except Exception as exc:  # the database failed (connection lost, server gone): none committed
            log.warning("store: a batch of %d writes failed: %s", len(batch), exc)
            return [(future, False, exc) for _fn, future in batch], []

    def _run_batch(self, batch: list[tuple[PgWriteFn, AnyFuture]]) -> tuple[list[Outcome], list[Event]]:
        outcomes: list[Outcome] = []
        events: list[Event] = []
        conn = self._connection()
        with conn.transaction():
            i = 0
            while i < len(batch):
                # A request with a `group` (a function (conn, [requests]) -> [(result, events)]) runs with
                # its like neighbours: a batch of adds in a few multi-row statements.
                fn = batch[i][0]
                group: Any = getattr(fn, "group", None)
                j = i + 1
                while group is not None and j < len(batch) and getattr(batch[j][0], "group", None) is group:
                    j += 1
                try:
                    results = group(conn, [f for f, _ in batch[i:j]]) if j > i + 1 else [fn(conn)]
                except psycopg.OperationalError:
                    raise  # the connection itself: nothing of the batch stands
                except Exception as exc:
                    raise _Failed(exc) from exc
                for (_fn, future), (result, new_events) in zip(batch[i:j], results, strict=True):
                    outcomes.append((future, True, result))
                    events.extend(new_events)
                i = j
            if self._after_batch is not None:
                events.extend(self._after_batch(conn))
            for payload in payloads(self._origin, events):
                conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
        return outcomes, events


class _Failed(Exception):
    """A request of the batch raised `error` (not the database): the batch is replayed without it."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error
