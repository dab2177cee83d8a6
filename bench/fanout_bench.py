"""Mailbox fan-out benchmark: the cost of a message whose recipients each get a new INBOX.

Fills a SqliteStore (temp file) with --mailboxes existing folders, then stores one message with
--recipients new recipients and, right behind it, a 1-recipient message; prints the time to commit
each. Every run does it twice in the same process on fresh stores: once with the old UIDVALIDITY
allocation (a `max(uidvalidity)` scan of every folder per new folder, patched back in) and once with
the counter row the store uses now, and prints the ratio. Figures are medians of --runs.

    .venv/bin/python bench/fanout_bench.py [--mailboxes 24000] [--recipients 1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent.parent))  # last: PYTHONPATH can name another checkout

from mailsandbox.models import Envelope
from mailsandbox.store import _mailbox
from mailsandbox.store.sqlite import SqliteStore

original_allocation = _mailbox._new_uidvalidity
RAW = b"From: a@example.test\r\nTo: list@example.test\r\nSubject: fan-out\r\n\r\nhello\r\n"


def _scan_uidvalidity(conn: sqlite3.Connection, now: float) -> int:
    """The allocation before the counter row: a full scan of the folders table per new folder."""
    (top,) = conn.execute("SELECT coalesce(max(uidvalidity), 0) FROM folders").fetchone()
    return max(int(now) & 0x7FFFFFFF, int(top) + 1)


def _fill(path: str, mailboxes: int) -> None:
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO folders (user, name, uidvalidity) VALUES (?, 'INBOX', ?)",
            ((f"old{i}@example.test", i + 1) for i in range(mailboxes)),
        )
        conn.execute("UPDATE uidvalidity_counter SET last = ?", (mailboxes,))


async def _measure(path: str, recipients: int, run: int) -> tuple[float, float]:
    store = SqliteStore(path)
    try:
        many = tuple(f"new{run}-{i}@example.test" for i in range(recipients))
        started = time.perf_counter()
        big = asyncio.ensure_future(store.add_message(RAW, Envelope("a@example.test", many)))
        await asyncio.sleep(0)  # the big one is queued first, as when it arrived first
        small_started = time.perf_counter()
        await store.add_message(RAW, Envelope("a@example.test", ("one@example.test",)))
        small = time.perf_counter() - small_started
        await big
        return time.perf_counter() - started, small
    finally:
        store.close()


def one(
    mailboxes: int, recipients: int, allocate: Callable[[sqlite3.Connection, float], int], run: int
) -> tuple[float, float]:
    original = _mailbox._new_uidvalidity
    _mailbox._new_uidvalidity = allocate  # type: ignore[assignment]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = str(Path(tmp) / "fanout.db")
            SqliteStore(path).close()  # create the schema
            _fill(path, mailboxes)
            return asyncio.run(_measure(path, recipients, run))
    finally:
        _mailbox._new_uidvalidity = original  # type: ignore[assignment]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=24000)
    parser.add_argument("--recipients", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float]]] = {"scan (before)": [], "counter (now)": []}
    for run in range(args.runs):  # interleaved, so machine noise hits both alike
        results["scan (before)"].append(one(args.mailboxes, args.recipients, _scan_uidvalidity, run))
        results["counter (now)"].append(one(args.mailboxes, args.recipients, original_allocation, run))
    print(f"{args.mailboxes} existing mailboxes, one message to {args.recipients} new recipients, then one "
          f"to 1 recipient; medians of {args.runs} runs")  # fmt: skip
    print(f"{'allocation':<16}{'fan-out message s':>20}{'1-recipient message s':>24}")
    medians = {}
    for name, rows in results.items():
        medians[name] = (statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows))
        print(f"{name:<16}{medians[name][0]:>20.3f}{medians[name][1]:>24.3f}")
    before, now = medians["scan (before)"], medians["counter (now)"]
    print(f"ratio before/now: fan-out {before[0] / now[0]:.1f}x, 1-recipient {before[1] / now[1]:.1f}x")


if __name__ == "__main__":
    main()
