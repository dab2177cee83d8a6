"""Group commit on PostgreSQL: one writer thread per frontend runs queued write requests in one transaction
per batch, as the SQLite store's writer does, and tells the other frontends what it committed.

A request is `fn(conn) -> (result, events)`. Each runs under a savepoint, so a failing one (a duplicate,
a message deleted meanwhile) never takes its neighbours down. The events go out twice after COMMIT: on this
process's bus, and as NOTIFY payloads queued inside the same transaction (PostgreSQL delivers them only if
it commits), which the other frontends' listeners turn back into events (`_notify.py`).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import psycopg

from mailsandbox.events import Event
from mailsandbox.store import StoreClosed
from mailsandbox.store._writer import AnyFuture, Outcome, _settle_all
from mailsandbox.store.postgres._notify import CHANNEL, payloads

PgWriteFn = Callable[[psycopg.Connection], tuple[Any, list[Event]]]
log = logging.getLogger("mailsandbox.store")
MAX_BATCH = 512
_STOP = object()


class PgWriter:
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

    def submit(self, fn: PgWriteFn) -> Future[Any]:
        future: Future[Any] = Future()
        if not self._thread.is_alive():
            future.set_exception(StoreClosed())
            return future
        self._queue.put((fn, future))
        return future

    def submit_async(self, fn: PgWriteFn) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if not self._thread.is_alive():
            future.set_exception(StoreClosed())
            return future
        self._queue.put((fn, future))
        return future

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    def _run(self) -> None:
        try:
            while True:
                item = self._queue.get()
                batch: list[tuple[PgWriteFn, AnyFuture]] = []
                stop = item is _STOP
                while not stop:
                    batch.append(item)
                    if len(batch) >= MAX_BATCH:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    stop = item is _STOP
                if batch:
                    outcomes, events = self._commit(batch)
                    del batch, item  # let go of the requests (and their messages) before anyone hears
                    _settle_all(outcomes)  # only now, after COMMIT, do callers learn their write is durable
                    for event in events:
                        self._publish(event)
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
        outcomes: list[Outcome] = []
        events: list[Event] = []
        try:
            conn = self._connection()
            with conn.transaction():
                for fn, future in batch:
                    try:
                        with conn.transaction():  # a savepoint: a failure undoes this request alone
                            result, new_events = fn(conn)
                    except psycopg.OperationalError:
                        raise  # the connection itself: nothing of the batch stands
                    except Exception as exc:
                        outcomes.append((future, False, exc))
                        continue
                    outcomes.append((future, True, result))
                    events.extend(new_events)
                if self._after_batch is not None:
                    events.extend(self._after_batch(conn))
                for payload in payloads(self._origin, events):
                    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
        except BaseException as exc:  # the database failed (connection lost, server gone): none committed
            if not isinstance(exc, Exception):
                raise
            log.warning("store: a batch of %d writes failed: %s", len(batch), exc)
            return [(future, False, exc) for _fn, future in batch], []
        return outcomes, events
