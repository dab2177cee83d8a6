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
        outcomes: list[tuple[Future[Any], bool, Any]] = []
        events: list[Event] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for fn, future in batch:
                # A savepoint per request: one failing request must not undo the others in the batch.
                conn.execute("SAVEPOINT req")
                try:
                    result, new_events = fn(conn)
                except BaseException as exc:
                    conn.execute("ROLLBACK TO req")
                    conn.execute("RELEASE req")
                    outcomes.append((future, False, exc))
                    continue
                conn.execute("RELEASE req")
                outcomes.append((future, True, result))
                events.extend(new_events)
            if self._after_batch is not None:
                events.extend(self._after_batch(conn))
            conn.execute("COMMIT")
        except BaseException as exc:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
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
