"""The read watchdog (store/_deadline.py): it interrupts a read that outlives its deadline, and never
one that starts after its deadline was disarmed."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from mailsandbox.store._deadline import Watchdog

LONG = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000) SELECT count(*) FROM n"


def test_a_read_past_its_deadline_is_interrupted() -> None:
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    watchdog = Watchdog()
    token = watchdog.arm(conn, 0.05)
    began = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="interrupt"):
        conn.execute(LONG).fetchone()
    watchdog.disarm(token)
    assert time.monotonic() - began < 5


def test_a_disarmed_deadline_interrupts_nothing_later() -> None:
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    watchdog = Watchdog()
    for _ in range(20):  # many short reads, each disarmed before its deadline
        watchdog.disarm(watchdog.arm(conn, 0.01))
    time.sleep(0.05)  # every deadline has passed
    other = watchdog.arm(sqlite3.connect(":memory:"), 30)  # the thread is still there, waiting on this one
    short = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000) SELECT count(*) FROM n"
    assert conn.execute(short).fetchone() == (200000,)
    watchdog.disarm(other)


def test_deadlines_of_several_threads_each_hit_their_own() -> None:
    watchdog = Watchdog()
    outcomes: dict[str, str] = {}

    def read(name: str, seconds: float, sql: str) -> None:
        conn = sqlite3.connect(":memory:", check_same_thread=False)
        token = watchdog.arm(conn, seconds)
        try:
            conn.execute(sql).fetchone()
            outcomes[name] = "done"
        except sqlite3.OperationalError:
            outcomes[name] = "interrupted"
        finally:
            watchdog.disarm(token)

    threads = [threading.Thread(target=read, args=("long", 0.1, LONG)),
               threading.Thread(target=read, args=("quick", 30, "SELECT 1"))]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert outcomes == {"long": "interrupted", "quick": "done"}
