"""Group commit: one writer thread runs queued write requests in one transaction per batch."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from typing import Any

from mailsandbox.events import Event
from mailsandbox.store import StoreClosed

# A write request: runs inside the batch transaction, returns (result, events to publish after commit).
# A request with a `group` attribute, a function (conn, [requests]) -> [(result, events)], runs together
# with its like neighbours in the batch (fewer statements); alone (the replay path) it is called as usual.
WriteFn = Callable[[sqlite3.Connection], tuple[Any, list[Event]]]
# A caller's handle: a thread's concurrent Future, or a loop's asyncio Future (settled on its loop).
AnyFuture = Future[Any] | asyncio.Future[Any]
Outcome = tuple[AnyFuture, bool, Any]  # (future, succeeded, result or exception)
_Settled = list[tuple[list[Outcome], list[Event]]]  # a batch's outcomes and events, in commit order
STOP = object()  # a writer's queue item: finish the batch in hand, then end
# The checkpointer's request that the writer, between two batches, copy the WAL's last frames itself.
_CATCH_UP = object()
log = logging.getLogger("mailsandbox.store")
MAX_BATCH = 512
# WAL pages after a background pass at which the writer is asked to finish the checkpoint (SQLite's own
# autocheckpoint figure); under full-rate writes the WAL starts over at 2,000-3,000 pages.
AUTOCHECKPOINT = 1000
# Bytes the WAL file is cut back to whenever it starts over, after a burst (or a large message) made it big.
JOURNAL_SIZE_LIMIT = 8 * 1024 * 1024
# A WAL file this large means it has not started over for that long: the writer finishes the checkpoint.
WAL_CAP = 2 * JOURNAL_SIZE_LIMIT
WAL_HEADER, FRAME_HEADER = 32, 24  # the WAL's layout: a header, then a frame (header + page) per page written


class QueuedWriter:
    """How callers reach a writer thread (`_thread`, taking requests from `_queue`): a request and the
    future its caller waits on; the SQLite and the PostgreSQL writers share it."""

    _thread: threading.Thread
    _queue: queue.SimpleQueue[Any]

    def submit(self, fn: Callable[[Any], tuple[Any, list[Event]]]) -> Future[Any]:
        future: Future[Any] = Future()
        if not self._thread.is_alive():
            future.set_exception(StoreClosed())
            return future
        self._queue.put((fn, future))
        return future

    def submit_async(self, fn: Callable[[Any], tuple[Any, list[Event]]]) -> asyncio.Future[Any]:
        """Like submit, for a caller on a running loop: a batch settles all of a loop's futures in one
        call_soon_threadsafe, not one cross-thread wake-up (a self-pipe write) per request."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if not self._thread.is_alive():
            future.set_exception(StoreClosed())
            return future
        self._queue.put((fn, future))
        return future

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(STOP)
            self._thread.join()


class GroupWriter(QueuedWriter):
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
    _checkpointer: _Checkpointer | None = None
    _wal_file: str | None = None

    def checkpoint_mark(self) -> int:
        """A mark for `settled`, taken after a bulk write's commit (it asks for a pass now)."""
        if self._checkpointer is None:
            return 0
        self._checkpointer.poke()
        return self._checkpointer.started

    def settled(self, mark: int) -> bool:
        """Whether bulk work (a delete by search, pruning, the reaper) may write again: a WAL past
        JOURNAL_SIZE_LIMIT is copied by the checkpointer's thread first, in a pass begun after `mark`, and
        started over. Left to the writer (which finishes what a pass could not), copying a bulk write's
        pages held every capture 80-100 ms a time at a million messages."""
        checkpointer = self._checkpointer
        if checkpointer is None or self._wal_file is None or _size(self._wal_file) <= JOURNAL_SIZE_LIMIT:
            return True
        return checkpointer.finished > mark and not checkpointer.behind

    def _catch_up(self) -> None:
        self._queue.put(_CATCH_UP)

    def _run(self) -> None:
        try:
            conn = self._connect()
            # COMMIT never copies the WAL into the database (all of a large message, with every capture
            # waiting): _Checkpointer does, off this thread.
            conn.execute("PRAGMA wal_autocheckpoint=0")
            conn.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
            main_file = conn.execute("PRAGMA database_list").fetchone()[2]
            wal_file = self._wal_file = main_file + "-wal" if main_file else None  # None: an in-memory database
            frame = FRAME_HEADER + int(conn.execute("PRAGMA page_size").fetchone()[0])
            checkpointer = self._checkpointer = _Checkpointer(self._connect(), self._catch_up)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                item = self._queue.get()
                batch = []
                catch_up = False
                stop = False
                while item is not STOP:
                    if item is _CATCH_UP:
                        # Runs after the batch so far is committed, before anything queued behind it.
                        catch_up = True
                        try:
                            item = self._queue.get_nowait()
                        except queue.Empty:
                            break
                        continue
                    batch.append(item)
                    if len(batch) >= MAX_BATCH:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if item is STOP:
                    stop = True
                settled: _Settled = []
                if batch:
                    self._commit(conn, batch, settled)
                # Let go of the batch's requests (with their messages) before anyone learns of the commit:
                # a caller that then measures its memory must not find them still held here.
                del batch, item
                for outcomes, events in settled:
                    # Only now, after COMMIT, do callers learn their write is durable; its events go out
                    # first, so a caller that wakes has them published (a listener outside a loop has run).
                    for event in events:
                        self._publish(event)
                    _settle_all(outcomes)
                if settled:
                    checkpointer.poke()
                del settled
                if catch_up:
                    checkpointer.catch_up_on(conn)
                elif (
                    wal_file is not None
                    and (size := _size(wal_file)) > WAL_CAP
                    and checkpointer.nearly_copied((size - WAL_HEADER) // frame)
                ):
                    # A loaded machine: the WAL only starts over once a checkpoint reaches its end, and
                    # only here is nothing appended meanwhile. Not while a pass runs, nor while much is
                    # left to copy (a large message's frames): capture would wait for all of it.
                    checkpointer.catch_up_on(conn, wait=False)
                if stop:
                    return
        finally:
            checkpointer.close()
            conn.close()

    def _commit(self, conn: sqlite3.Connection, batch: list[tuple[WriteFn, AnyFuture]], settled: _Settled) -> None:
        """Commit the batch, adding to `settled` what its callers are to learn; a request marked
        `foreign_keys_off` (a delete of everything, which truncates tables) runs alone, in its own transaction
        with foreign keys off: the pragma cannot change inside one."""
        segment: list[tuple[WriteFn, AnyFuture]] = []
        for item in batch:
            if not getattr(item[0], "foreign_keys_off", False):
                segment.append(item)
                continue
            if segment:
                self._commit_batch(conn, segment, settled)
                segment = []
            conn.execute("PRAGMA foreign_keys=OFF")
            try:
                self._commit_batch(conn, [item], settled)
            finally:
                conn.execute("PRAGMA foreign_keys=ON")
        if segment:
            self._commit_batch(conn, segment, settled)

    def _commit_batch(
        self, conn: sqlite3.Connection, batch: list[tuple[WriteFn, AnyFuture]], settled: _Settled
    ) -> None:
        # Optimistic: the whole batch in one transaction, no savepoint per request (they cost as much as
        # the inserts). If any request fails, undo the batch and replay it one request per transaction,
        # so a failure never takes its neighbours down. Write functions are pure closures: safe to re-run.
        try:
            outcomes, events = self._run_batch(conn, batch)
        except _Failed as failed:
            if len(batch) > 1:
                for item in batch:
                    self._commit_batch(conn, [item], settled)
                return
            outcomes, events = [(batch[0][1], False, failed.error)], []
        except BaseException as exc:  # the database itself failed (disk full, I/O error)
            outcomes, events = [(future, False, exc) for _fn, future in batch], []
        settled.append((outcomes, events))

    def _run_batch(
        self, conn: sqlite3.Connection, batch: list[tuple[WriteFn, AnyFuture]]
    ) -> tuple[list[Outcome], list[Event]]:
        outcomes: list[Outcome] = []
        events: list[Event] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            i = 0
            while i < len(batch):
                fn = batch[i][0]
                group: Any = getattr(fn, "group", None)
                j = i + 1
                while group is not None and j < len(batch) and getattr(batch[j][0], "group", None) is group:
                    j += 1
                try:
                    results = group(conn, [f for f, _ in batch[i:j]]) if j > i + 1 else [fn(conn)]
                except Exception as exc:
                    raise _Failed(exc) from exc
                for (_fn, future), (result, new_events) in zip(batch[i:j], results, strict=True):
                    outcomes.append((future, True, result))
                    events.extend(new_events)
                i = j
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


# Rows per multi-row INSERT: any count up to 16 (a batch's usual size: one statement), then 32 or 64;
# 18 statement shapes per table in the statement cache.
EXACT_ROWS, MAX_ROWS = 16, 64


def insert_rows(conn: sqlite3.Connection, head: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """`head` ("INSERT INTO t (a, b) VALUES ") for all `rows` in a few multi-row statements: each
    statement is one sqlite3_step, one GIL release, where executemany releases it once a row."""
    i = 0
    while i < len(rows):
        left = len(rows) - i
        size = left if left <= EXACT_ROWS else min(MAX_ROWS, 1 << (left.bit_length() - 1))
        chunk = rows[i : i + size]
        conn.execute(head + _placeholders(len(chunk[0]), size), [value for row in chunk for value in row])
        i += size


@functools.cache
def _placeholders(width: int, count: int) -> str:
    row = "(" + ",".join("?" * width) + ")"
    return ",".join([row] * count)


def _settle_all(outcomes: list[Outcome]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
    for outcome in outcomes:
        future = outcome[0]
        if isinstance(future, asyncio.Future):
            by_loop.setdefault(future.get_loop(), []).append(outcome)
        else:
            _settle(outcome)
    for loop, some in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle_many, some)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass


def _settle_many(outcomes: list[Outcome]) -> None:
    for outcome in outcomes:
        _settle(outcome)


def _settle(outcome: Outcome) -> None:
    future, ok, value = outcome
    if future.done():  # the caller gave up (cancelled); the write itself stands
        return
    try:
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
    except (InvalidStateError, asyncio.InvalidStateError):  # cancelled from another thread just now
        pass


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


class _Checkpointer:
    """Copies committed WAL frames into the database on its own thread and connection, so no commit waits
    for that copy. Under steady writes such a pass never reaches the WAL's end (the writer appends while it
    runs), and only a checkpoint that does lets the next transaction start the WAL over: so when a pass
    leaves a WAL of AUTOCHECKPOINT pages or more, it asks the writer to copy the last few frames itself,
    between two batches, and waits for that. The writer's own connection checkpoints nothing on COMMIT
    (SQLite's autocheckpoint there would race this thread's pass for the checkpoint lock and, losing,
    skip: under load the WAL then grew past 16 MB in 800 commits)."""

    INTERVAL = 0.05  # at most 20 passes a second: each syncs the WAL and the database file

    def __init__(self, conn: sqlite3.Connection, ask_writer: Callable[[], None]) -> None:
        self._conn = conn
        self._ask_writer = ask_writer
        self._dirty = threading.Event()
        self._stopping = threading.Event()
        self._caught_up = threading.Event()
        self._passing = threading.Lock()  # held through each pass of this thread's
        self._copied = 0  # frames the last pass had copied
        self.started = self.finished = 0  # background passes begun and ended (bulk work waits on them)
        self.behind = False  # a pass left a WAL of AUTOCHECKPOINT frames, and the writer has not caught up
        self._thread = threading.Thread(target=self._run, name="store-checkpoint", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        self._dirty.set()

    def nearly_copied(self, frames: int) -> bool:
        """Whether the last pass copied all but AUTOCHECKPOINT of a WAL that has `frames` frames."""
        return frames - self._copied <= AUTOCHECKPOINT

    def catch_up_on(self, writer_conn: sqlite3.Connection, wait: bool = True) -> None:
        """On the writer's thread, between batches: nothing is appended while this pass runs, and no
        background pass holds the WAL's read-lock 0 (which the write that starts the WAL over needs)."""
        if not self._passing.acquire(blocking=wait):
            return
        try:
            try:
                writer_conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                # The first frame of a write transaction starts a wholly copied WAL over: write one now (a
                # header field set to its own value) rather than leave it to a batch that may meet a pass.
                (version,) = writer_conn.execute("PRAGMA user_version").fetchone()
                writer_conn.execute(f"PRAGMA user_version = {int(version)}")
            finally:
                self._passing.release()
        except sqlite3.Error:
            log.warning("WAL checkpoint on the writer failed; the WAL keeps growing until one succeeds", exc_info=True)
        finally:
            self.behind = False
            self._caught_up.set()

    def close(self) -> None:
        self._stopping.set()
        self._dirty.set()
        self._caught_up.set()
        self._thread.join()
        self._conn.close()

    def _run(self) -> None:
        while True:
            self._dirty.wait()
            if self._stopping.is_set():
                return
            self._dirty.clear()
            self.started += 1
            try:
                with self._passing:
                    _busy, frames, self._copied = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except sqlite3.Error:
                log.warning("background WAL checkpoint failed", exc_info=True)
                frames = 0
            finally:
                self.finished = self.started
            self.behind = frames >= AUTOCHECKPOINT
            if frames >= AUTOCHECKPOINT:
                self._caught_up.clear()
                self._ask_writer()
                # A writer that stops meanwhile never answers: close() is what ends this wait then.
                while not self._caught_up.wait(0.1):
                    if self._stopping.is_set():
                        return
            self._stopping.wait(self.INTERVAL)


class _Failed(Exception):
    """A request of the batch raised (its own error, e.g. NoSuchFolder); the batch is replayed singly."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error
