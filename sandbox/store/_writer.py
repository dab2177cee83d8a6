"""Group commit: one writer thread runs queued write requests in one transaction per batch."""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from sandbox.events import Event

# A write request: runs inside the batch transaction, returns (result, events to publish after commit).
WriteFn = Callable[[sqlite3.Connection], tuple[Any, list[Event]]]
_STOP = object()
MAX_BATCH = 512


class GroupWriter:
    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        publish: Callable[[Event], None],
        after_batch: Callable[[sqlite3.Connection], list[Event]] | None = None,
    ) -> None:
        self._connect = connect
        self._publish = publish
        self._after_batch = after_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    _error: BaseException | None = None

    def submit(self, fn: WriteFn) -> Future[Any]:
        future: Future[Any] = Future()
        if not self._thread.is_alive():
            future.set_exception(RuntimeError("store is closed"))
            return future
        self._queue.put((fn, future))
        return future

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    def _run(self) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                item = self._queue.get()
                batch = []
                stop = False
                while item is not _STOP:
                    batch.append(item)
                    if len(batch) >= MAX_BATCH:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if item is _STOP:
                    stop = True
                if batch:
                    self._commit(conn, batch)
                if stop:
                    return
        finally:
            conn.close()

    def _commit(self, conn: sqlite3.Connection, batch: list[tuple[WriteFn, Future[Any]]]) -> None:
        # Optimistic: the whole batch in one transaction, no savepoint per request (they cost as much as
        # the inserts). If any request fails, undo the batch and replay it one request per transaction,
        # so a failure never takes its neighbours down. Write functions are pure closures: safe to re-run.
        try:
            outcomes, events = self._run_batch(conn, batch)
        except _Failed as failed:
            if len(batch) > 1:
                for item in batch:
                    self._commit(conn, [item])
                return
            outcomes, events = [(batch[0][1], False, failed.error)], []
        except BaseException as exc:  # the database itself failed (disk full, I/O error)
            for _fn, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        # Only now, after COMMIT, do callers learn their write is durable.
        for future, ok, value in outcomes:
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        for event in events:
            self._publish(event)

    def _run_batch(
        self, conn: sqlite3.Connection, batch: list[tuple[WriteFn, Future[Any]]]
    ) -> tuple[list[tuple[Future[Any], bool, Any]], list[Event]]:
        outcomes: list[tuple[Future[Any], bool, Any]] = []
        events: list[Event] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for fn, future in batch:
                try:
                    result, new_events = fn(conn)
                except Exception as exc:
                    raise _Failed(exc) from exc
                outcomes.append((future, True, result))
                events.extend(new_events)
            if self._after_batch is not None:
                events.extend(self._after_batch(conn))
            conn.execute("COMMIT")
        except BaseException:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise
        return outcomes, events


class _Failed(Exception):
    """A request of the batch raised (its own error, e.g. NoSuchFolder); the batch is replayed singly."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error
