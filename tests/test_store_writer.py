"""Group commit: a failing request never takes the other requests of its batch down with it."""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from sandbox.events import Event
from sandbox.store._writer import GroupWriter


def test_one_failure_in_a_batch_spares_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "w.db"

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("CREATE TABLE IF NOT EXISTS t (v INTEGER UNIQUE)")
        return conn

    published: list[Event] = []
    writer = GroupWriter(connect, published.append)
    gate = threading.Event()
    # Hold the writer in a first request so the next ones queue up and commit as one batch.
    blocker = writer.submit(lambda conn: (gate.wait(5), []))

    def insert(value: int) -> Any:
        return lambda conn: (conn.execute("INSERT INTO t VALUES (?)", (value,)).rowcount, [])

    futures: list[Future[Any]] = [writer.submit(insert(v)) for v in (1, 2, 1, 3)]  # the second 1 breaks UNIQUE
    gate.set()
    blocker.result(5)
    assert [f.exception(5) is None for f in futures] == [True, True, False, True]
    with pytest.raises(sqlite3.IntegrityError):
        futures[2].result()
    writer.close()
    rows = sqlite3.connect(path).execute("SELECT v FROM t ORDER BY v").fetchall()
    assert rows == [(1,), (2,), (3,)]


@pytest.mark.asyncio
async def test_async_callers_settle_on_their_loop_and_may_give_up(tmp_path: Path) -> None:
    path = tmp_path / "w.db"

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("CREATE TABLE IF NOT EXISTS t (v INTEGER UNIQUE)")
        return conn

    writer = GroupWriter(connect, lambda event: None)
    gate = threading.Event()
    blocker = writer.submit(lambda conn: (gate.wait(5), []))

    def insert(value: int) -> Any:
        return lambda conn: (conn.execute("INSERT INTO t VALUES (?)", (value,)).rowcount, [])

    futures = [writer.submit_async(insert(v)) for v in (1, 2, 1)]
    futures[1].cancel()  # a caller that stops waiting: its write still commits, the writer lives on
    gate.set()
    blocker.result(5)
    assert await futures[0] == 1
    with pytest.raises(sqlite3.IntegrityError):
        await futures[2]
    assert await writer.submit_async(insert(3)) == 1
    writer.close()
    rows = sqlite3.connect(path).execute("SELECT v FROM t ORDER BY v").fetchall()
    assert rows == [(1,), (2,), (3,)]
