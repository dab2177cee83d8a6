"""Bytes a relayed recipient costs in the database, and the time of one relayed delivery.

    .venv/bin/python bench/relay_copies_bench.py [--size 1048576] [--recipients 20]

Stores one message of --size octets, then delivers it to --recipients mailboxes as the relay does (a few
prepended Received: lines each, one transaction per recipient: record_delivery), and prints the database
growth per recipient and the median delivery time. Before migration 8 each recipient stored a whole copy.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from mailsandbox.models import Envelope
from mailsandbox.store.sqlite import SqliteStore


def used_bytes(path: str) -> int:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages, free = (conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "freelist_count"))
        size: int = conn.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)


async def run(size: int, recipients: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(str(Path(tmp) / "bench.db"))
        try:
            body = os.urandom(size // 2).hex().encode()
            raw = b"Subject: relayed\r\n\r\n" + b"\r\n".join(body[i : i + 76] for i in range(0, len(body), 76))
            users = [f"r{n}@example.test" for n in range(recipients)]
            message = await store.add_message(raw, Envelope("a@sender.test", tuple(users)), deliver_to=[],
                                              queue=users)  # fmt: skip
            before = used_bytes(store.path)
            times = []
            for n, user in enumerate(users):
                prefix = f"Received: from mx{n}.example.test by sandbox; Wed, 2 Dec 2026 05:00:00 +0000\r\n"
                start = time.perf_counter()
                entry = await store.record_delivery(message.id, user, [], prefix.encode())
                times.append(time.perf_counter() - start)
                assert entry is not None
            grown = used_bytes(store.path) - before
        finally:
            store.close()
    print(f"message {len(raw):,} octets, {recipients} relayed recipients")
    print(f"database growth per recipient: {grown / recipients:,.0f} bytes")
    print(f"one relayed delivery (median): {statistics.median(times) * 1000:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1 << 20)
    parser.add_argument("--recipients", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(run(args.size, args.recipients))


if __name__ == "__main__":
    main()
