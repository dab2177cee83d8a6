"""Deleting everything without holding the writer: the data is set aside, then reaped in small steps.
A large delete of some messages hides them (sqlite.py `hide_rows`), and the same reaper deletes them.

Truncating a table still visits every one of its pages (SQLite frees each page and reads each leaf for
overflow chains): 20 s for a store of a million messages, with every capture waiting on the writer. So a
large store's delete-all renames each data table (and its indexes) aside as `dead_<n>_<name>` and creates
empty ones in their place, all in one short transaction: the store reads as empty at once, and nothing
outside the store needs to know. A `Reaper` thread then empties the set-aside tables in write requests of
about REAP_SECONDS each and drops them, so captures commit between steps; a process stopped half-way
resumes at its next start. Folders (their UIDVALIDITY and next UID), the UIDVALIDITY counter, the
chunk sets of messages still arriving and the zstd dictionaries stay where they are.
"""

from __future__ import annotations

import functools
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from mailsandbox.events import Event
from mailsandbox.store._schema import TALLY_DELETE, migrate

log = logging.getLogger("mailsandbox.store")

# Every table that holds messages or what hangs off them; emptied by a delete of everything.
DATA_TABLES = ("entries", "message_raw", "relayed", "message_text", "queue", "attempts", "message_auth",
               "tag_names", "messages", "messages_fts", "headers_tri", "raw_chunks", "doomed")  # fmt: skip
FULL_TEXT = ("messages_fts", "headers_tri")
# What a delete of everything keeps: folders (UIDVALIDITY, next UID), the UIDVALIDITY counter, the chunk
# sets still being written, the counts (set to zero). A table a migration adds belongs to one list or the
# other (tests/test_store_clear.py checks).
KEPT_TABLES = ("folders", "uidvalidity_counter", "raw_pending", "tally", "sqlite_sequence", "zstd_dicts")
# Below this many messages a truncation is quicker than setting aside (which also makes every connection
# read the schema again): about 20 us a message, so up to ~40 ms.
TRUNCATE_BELOW = 2000
# What one reaping step aims to hold the writer for, and the pause after it, so captures keep their pace.
REAP_SECONDS = 0.010
START_ROWS, MAX_ROWS = 64, 16384  # rows of a step: the first of each kind of table, and at most
# Messages a step of reaping hidden ones (a large delete's, `doomed`) takes: at least, and at most (each
# costs up to 0.4 ms in a million-message store, most of it the full-text indexes).
HIDDEN_LEAST, HIDDEN_MOST = 16, 1000
# Pages of full-text segments a step of reaping hidden messages merges (`merge_by_hand`), and FTS5's
# automerge, which the reaper turns off for its steps and restores after.
MERGE_PAGES, AUTOMERGE = 16, 4
DEAD = re.compile(r"dead_(\d+)_")


@functools.cache
def fresh_schema() -> tuple[str, ...]:
    """The CREATE statements of the data tables, their indexes and triggers, as the migrations leave a new
    database (the same scripts brought an old one to this version, so the shapes are the same)."""
    conn = sqlite3.connect(":memory:")
    try:
        migrate(conn)
        marks = ",".join("?" * len(DATA_TABLES))
        rows = conn.execute(
            f"SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND tbl_name IN ({marks}) ORDER BY rowid", DATA_TABLES
        ).fetchall()
    finally:
        conn.close()
    return tuple(sql for (sql,) in rows)


def truncate_all(conn: sqlite3.Connection) -> None:
    """Empty the data tables in place (foreign keys off: each `DELETE FROM` is SQLite's truncation)."""
    for table in DATA_TABLES:
        if table == "messages":
            conn.execute("DROP TRIGGER tally_delete")  # its presence would make the DELETE visit every row
            conn.execute("DELETE FROM messages")
            conn.execute(TALLY_DELETE)
        elif table in FULL_TEXT:
            conn.execute(f"INSERT INTO {table} ({table}) VALUES ('delete-all')")
        elif table == "raw_chunks" and conn.execute("SELECT 1 FROM raw_pending LIMIT 1").fetchone():
            # Not the sets of messages still arriving (their add finds its chunks); a visit of each row.
            conn.execute("DELETE FROM raw_chunks WHERE stage NOT IN (SELECT stage FROM raw_pending)")
        else:
            conn.execute(f"DELETE FROM {table}")
    conn.execute("UPDATE tally SET total = 0, unread = 0")


def set_aside(conn: sqlite3.Connection) -> int:
    """Rename the data tables and their indexes to `dead_<n>_...` and create empty ones; returns n. Runs
    inside the writer's transaction, with foreign keys off."""
    taken = [int(m.group(1)) for (name,) in conn.execute(_DEAD_TABLES) if (m := DEAD.match(name))]
    n = max(taken, default=0) + 1
    marks = ",".join("?" * len(DATA_TABLES))
    for (trigger,) in conn.execute(
        f"SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN ({marks})", DATA_TABLES
    ).fetchall():
        conn.execute(f'DROP TRIGGER "{trigger}"')  # recreated on the new tables by fresh_schema
    indexes = [name for (name,) in conn.execute(
        f"SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN ({marks})",
        DATA_TABLES,
    )]  # fmt: skip
    for table in DATA_TABLES:  # an FTS5 table takes its shadow tables along; autoindexes follow by themselves
        conn.execute(f'ALTER TABLE "{table}" RENAME TO "dead_{n}_{table}"')
    # SQLite cannot rename an index, and the new tables need these names: the set-aside ones are renamed in
    # the schema table itself (name and SQL alike; the page they start at is unchanged), which RESET reloads.
    conn.execute("PRAGMA writable_schema = ON")
    try:
        for name in indexes:
            (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)).fetchone()
            renamed = re.sub(rf'^CREATE (UNIQUE )?INDEX "?{re.escape(name)}"? ', rf"CREATE \g<1>INDEX dead_{n}_{name} ",
                             sql, count=1)  # fmt: skip
            if renamed == sql:
                raise RuntimeError(f"cannot set aside index {name}: {sql}")
            conn.execute("UPDATE sqlite_master SET name = ?, sql = ? WHERE type = 'index' AND name = ?",
                         (f"dead_{n}_{name}", renamed, name))  # fmt: skip
    finally:
        conn.execute("PRAGMA writable_schema = RESET")
    for sql in fresh_schema():
        conn.execute(sql)
    conn.execute(
        f"INSERT INTO raw_chunks SELECT * FROM dead_{n}_raw_chunks WHERE stage IN (SELECT stage FROM raw_pending)"
    )
    conn.execute("UPDATE tally SET total = 0, unread = 0")
    return n


_DEAD_TABLES = "SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB 'dead_[0-9]*_*' ORDER BY name"


class ReapStep:
    """One write request of the reaper: delete some rows of one set-aside table (as many as `sizes` says
    for its kind of table), or, once all of a set's tables are empty, drop them; with no table set aside,
    delete some of the messages a large delete hid (`doomed`, oldest rowids first). Its result: whether
    anything is left to reap."""

    foreign_keys_off = True  # no cascades into other set-aside tables: each is emptied on its own

    def __init__(self, sizes: dict[str, int]) -> None:
        self.sizes = sizes
        self.table = ""  # the kind of table it took rows from ("" when it dropped tables, or found none)
        self.rows = 0
        self.took = 0.0  # seconds the step held the writer

    def __call__(self, conn: sqlite3.Connection) -> tuple[bool, list[Event]]:
        began = time.perf_counter()
        try:
            return self._step(conn)
        finally:
            self.took = time.perf_counter() - began

    def _step(self, conn: sqlite3.Connection) -> tuple[bool, list[Event]]:
        tables = conn.execute(
            "SELECT name, sql LIKE 'CREATE VIRTUAL%' FROM sqlite_master WHERE type = 'table'"
            " AND name GLOB 'dead_[0-9]*_*' ORDER BY name"
        ).fetchall()
        if not tables:
            return self._reap_hidden(conn), []
        first = _generation(tables[0][0])
        tables = [(name, virtual) for name, virtual in tables if _generation(name) == first]
        for name, virtual in tables:
            where = _reapable(name, {t for t, v in tables if v})
            if not virtual and where and conn.execute(f'SELECT 1 FROM "{name}" WHERE {where} LIMIT 1').fetchone():
                key = _key(conn, name)
                self.table = DEAD.sub("", name, count=1)
                self.rows = self.sizes.get(self.table, START_ROWS)
                conn.execute(
                    f'DELETE FROM "{name}" WHERE ({key}) IN (SELECT {key} FROM "{name}" WHERE {where} LIMIT ?)',
                    (self.rows,),
                )
                return True, []
        # All empty: a virtual table first (it drops its shadow tables), then the rest.
        for name, _virtual in sorted(tables, key=lambda t: not t[1]):
            if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone():
                conn.execute(f'DROP TABLE "{name}"')
        return has_dead(conn), []


    def _reap_hidden(self, conn: sqlite3.Connection) -> bool:
        from mailsandbox.store.sqlite import purge  # sqlite.py imports this module

        rows = max(min(self.sizes.get("doomed", HIDDEN_LEAST), HIDDEN_MOST), HIDDEN_LEAST)
        every = [r for (r,) in conn.execute("SELECT rowid FROM doomed ORDER BY rowid LIMIT ?", (rows,))]
        if not every:
            merge_by_hand(conn, False)
            return False
        self.table, self.rows = "doomed", rows
        merge_by_hand(conn, True)
        marks = ",".join("?" * len(every))
        originals = [r for (r,) in conn.execute(
            f"SELECT rowid FROM messages WHERE rowid IN ({marks}) AND +parent IS NULL", every  # `+`: by rowid
        )]  # fmt: skip
        purge(conn, originals, every)
        for table in FULL_TEXT:
            conn.execute(f"INSERT INTO {table} ({table}, rank) VALUES ('merge', ?)", (MERGE_PAGES,))
        if len(every) < rows:  # none left
            merge_by_hand(conn, False)
            return False
        return True


def merge_by_hand(conn: sqlite3.Connection, on: bool) -> None:
    """While the reaper deletes hidden messages, the full-text indexes merge their segments in its steps,
    MERGE_PAGES at a time, rather than by FTS5's automerge, whose merges of the deletes' segments took 40-70
    ms in a step whatever its size (every capture waiting); captures' segments meanwhile accumulate only
    until crisismerge (16 a level, each small). Kept in the indexes' config, so a restart resumes either."""
    want = 0 if on else AUTOMERGE
    for table in FULL_TEXT:
        row = conn.execute(f"SELECT v FROM {table}_config WHERE k = 'automerge'").fetchone()
        if (AUTOMERGE if row is None else int(row[0])) != want:
            conn.execute(f"INSERT INTO {table} ({table}, rank) VALUES ('automerge', ?)", (want,))


def _generation(name: str) -> int:
    match = DEAD.match(name)
    return int(match.group(1)) if match else 0


def _reapable(table: str, virtual: set[str]) -> str:
    """Which rows of `table` a step may delete: FTS5 must still open its table to drop it, so its
    config and its structure and averages records (the _data rows up to id 10) stay until the DROP."""
    for owner in virtual:
        if table == f"{owner}_config":
            return ""
        if table == f"{owner}_data":
            return "id > 10"
    return "1"


def _key(conn: sqlite3.Connection, table: str) -> str:
    """The columns that name a row: rowid, or a WITHOUT ROWID table's primary key."""
    try:
        conn.execute(f'SELECT rowid FROM "{table}" LIMIT 0')
        return "rowid"
    except sqlite3.OperationalError:
        info = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
        columns = sorted((pk, name) for _cid, name, _type, _nn, _default, pk in info if pk)
        return ", ".join(f'"{name}"' for _pk, name in columns)


def has_dead(conn: sqlite3.Connection) -> bool:
    return conn.execute(_DEAD_TABLES + " LIMIT 1").fetchone() is not None


def has_hidden(conn: sqlite3.Connection) -> bool:
    """Whether a large delete hid messages the reaper has not deleted yet."""
    return conn.execute("SELECT 1 FROM doomed LIMIT 1").fetchone() is not None


def resize(rows: int, took: float, target: float, most: int) -> int:
    """The rows of a bulk step's next write, from how long this one held the writer (`took` for `rows`):
    doubled while well under `target`, scaled down over it."""
    if took < target / 2:
        return min(rows * 2, most)
    if took > target:
        return max(int(rows * target / took), 1)
    return rows


class Reaper:
    """Empties set-aside tables on its own thread, one bounded write request at a time, pausing as long
    as each step took and until the checkpointer copied what it wrote (`settle`), so that captures keep
    most of the writer. `wake()` after a set-aside."""

    def __init__(self, submit: Callable[[Any], Future[Any]], settle: Callable[[], None] = lambda: None) -> None:
        self._submit = submit
        self._settle = settle
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._sizes: dict[str, int] = {}  # rows a step takes, per kind of table, learnt from its last step
        self.longest = 0.0  # the longest step so far, in seconds (the benchmark prints it)
        self._thread = threading.Thread(target=self._run, name="store-reaper", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._idle.clear()
        self._wake.set()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Until nothing is left to reap (tests, and the benchmark)."""
        return self._idle.wait(timeout)

    def close(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            if self._stopping.is_set():
                return
            self._wake.clear()
            more = True
            while more and not self._stopping.is_set():
                step = ReapStep(self._sizes)
                try:
                    more = self._submit(step).result()
                except Exception:  # the store is closing, or the disk failed: the next start resumes
                    log.warning("reaping deleted messages stopped; it resumes at the next start", exc_info=True)
                    more = False
                self._learn(step)
                self._settle()
                self._stopping.wait(min(step.took, 0.05))
            if not self._wake.is_set():
                self._idle.set()

    def _learn(self, step: ReapStep) -> None:
        """Size the next step of the same kind of table for about REAP_SECONDS: rows differ a
        thousandfold (index entries, 1 MB chunks)."""
        self.longest = max(self.longest, step.took)
        if not step.table:
            return
        self._sizes[step.table] = resize(step.rows, step.took, REAP_SECONDS, MAX_ROWS)
