"""Time budgets for reads: one watchdog thread interrupts a connection whose read ran past its deadline.

A progress handler would do it from inside the query, but it is a Python callback: every call takes the
interpreter lock, and beside a busy thread (the authentication sweep, captures) each call can wait out a
switch interval, so a search of a million messages that takes 25 ms alone took 1.7 s. sqlite3_interrupt
needs no lock and is safe from any thread; one that comes when the connection runs nothing is a no-op.
"""

from __future__ import annotations

import heapq
import itertools
import sqlite3
import threading
import time


class Watchdog:
    """Deadlines of running reads, soonest first, on one daemon thread started with the first."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, sqlite3.Connection]] = []
        self._armed: set[int] = set()
        self._ids = itertools.count()
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None

    def arm(self, conn: sqlite3.Connection, seconds: float) -> int:
        """Interrupt `conn` in `seconds` unless `disarm`ed first; returns the token to disarm."""
        with self._lock:
            token = next(self._ids)
            heapq.heappush(self._heap, (time.monotonic() + seconds, token, conn))
            self._armed.add(token)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="store-deadlines", daemon=True)
                self._thread.start()
            self._lock.notify()
        return token

    def disarm(self, token: int) -> None:
        with self._lock:  # under the lock: once this returns, that deadline can interrupt nothing
            self._armed.discard(token)

    def _run(self) -> None:
        with self._lock:
            while True:
                while self._heap and self._heap[0][1] not in self._armed:
                    heapq.heappop(self._heap)  # disarmed: forget it
                if not self._heap:
                    self._lock.wait()
                    continue
                when, token, conn = self._heap[0]
                left = when - time.monotonic()
                if left > 0:
                    self._lock.wait(left)
                    continue
                heapq.heappop(self._heap)
                self._armed.discard(token)
                conn.interrupt()


WATCHDOG = Watchdog()
