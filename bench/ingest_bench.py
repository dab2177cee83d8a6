"""Ingest of a large mbox: our streaming reader and `mailsandbox ingest --db` against baselines in the same run.

    .venv/bin/python bench/ingest_bench.py [--messages 10000] [--size 2000]

Baselines: Python's `mailbox.mbox` reading the same file (messages as bytes), and loading the same
messages one `add_message_sync` at a time (a commit each). Prints msgs/s and ratios.
"""

from __future__ import annotations

import argparse
import mailbox
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mailsandbox.mailfiles import read_mbox, write_mbox_message
from mailsandbox.models import Envelope
from mailsandbox.store.sqlite import SqliteStore


def build(path: Path, count: int, size: int) -> None:
    body = b"x" * size
    with path.open("wb") as out:
        for i in range(count):
            head = f"From: s{i}@example.test\r\nTo: r{i % 50}@example.test\r\nSubject: n{i}\r\n\r\n".encode()
            write_mbox_message(out, head + body + b"\r\n", f"s{i}@example.test", 1_700_000_000 + i)


def timed(label: str, count: int, fn: object) -> float:
    started = time.perf_counter()
    fn()  # type: ignore[operator]
    seconds = time.perf_counter() - started
    print(f"{label:<44} {seconds:7.2f}s {count / seconds:9.0f} msgs/s")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--size", type=int, default=2000)
    args = ap.parse_args()
    n = args.messages
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        path = d / "big.mbox"
        build(path, n, args.size)
        print(f"{n} messages, {path.stat().st_size / 1e6:.1f} MB mbox")
        ours = timed("read: sandbox.mailfiles.read_mbox", n, lambda: sum(1 for _ in read_mbox(path)))
        theirs = timed("read: mailbox.mbox (baseline)", n, lambda: sum(1 for _ in mailbox.mbox(path).itervalues()))
        script = Path(sys.executable).with_name("mailsandbox")
        command = [str(script), "ingest", "--db", str(d / "a.db"), str(path)]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        ingest = timed("mailsandbox ingest --db (the command)", n, lambda: subprocess.run(command, check=True))
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        print(f"{'  its CPU time (user + system)':<44} {cpu:7.2f}s {n / cpu:9.0f} msgs/s of CPU")

        def one_by_one() -> None:
            store = SqliteStore(str(d / "b.db"))
            env = Envelope("s@example.test", ("r@example.test",))
            for m in read_mbox(path):
                store.add_message_sync(m.raw, env)
            store.close()

        single = timed("baseline: add_message_sync, a commit each", n, one_by_one)
        print(f"reader vs mailbox.mbox: {theirs / ours:.1f}x faster; ingest vs one commit each: {single / ingest:.1f}x")


if __name__ == "__main__":
    main()
