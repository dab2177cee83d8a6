"""Store capture benchmark: the CPU cost of SqliteStore.add_message, without SMTP in the way.

Feeds --messages 2 KB messages (as bench/smtp_bench.py sends them, with the Received: line the SMTP
handler prepends) from one asyncio loop, --concurrency add_message() calls in flight (like that many
SMTP sessions), into a SqliteStore on a temp file (WAL, synchronous=NORMAL), and prints per run:
messages/s, process CPU per message, and the CPU of the loop thread and of the writer thread per
message (from /proc/self/task/<tid>/schedstat), and add_message latency (p50, p99). Each run uses a
fresh store; the figures after the runs are medians.

    .venv/bin/python bench/store_bench.py [--messages 20000] [--concurrency 20] [--runs 3]

To compare two versions, run it with PYTHONPATH pointing at the other checkout's root, interleaved.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent.parent))  # last: PYTHONPATH can name another checkout

from smtp_bench import message as smtp_message  # bench/ is sys.path[0]

from mailsandbox.models import Envelope
from mailsandbox.store.sqlite import SqliteStore


def message(size: int) -> bytes:
    """bench/smtp_bench.py's plain-text message, with the Received: line the SMTP handler prepends."""
    received = (
        b"Received: from bench (127.0.0.1 [127.0.0.1])\r\n\tby mailsandbox (Mailsandbox) with ESMTP id"
        b" MS000001\r\n\tfor <sink@example.test>; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    )
    return received + smtp_message(size, False)


def thread_cpu(tid: int) -> float:
    """Seconds a thread of this process has run (schedstat: nanoseconds on the CPU)."""
    return int(Path(f"/proc/self/task/{tid}/schedstat").read_text().split()[0]) / 1e9


async def load(store: SqliteStore, raw: bytes, total: int, concurrency: int) -> list[float]:
    env = Envelope(
        mail_from="bench@example.test", rcpt_tos=("sink@example.test",), peer="127.0.0.1:40000", helo="bench"
    )
    per_worker = [total // concurrency + (1 if i < total % concurrency else 0) for i in range(concurrency)]

    latencies: list[float] = []

    async def worker(count: int) -> None:
        for _ in range(count):
            start = time.perf_counter()
            await store.add_message(raw, env, deliver_to=list(env.rcpt_tos), queue=[])
            latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(worker(n) for n in per_worker))
    return sorted(latencies)


def run(total: int, concurrency: int, raw: bytes) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="store-bench-") as tmp:
        store = SqliteStore(str(Path(tmp) / "bench.db"))
        try:
            writer = store._writer._thread.native_id
            loop_tid = threading.get_native_id()
            assert writer is not None
            cpu, wall = time.process_time(), time.perf_counter()
            loop_cpu, writer_cpu = thread_cpu(loop_tid), thread_cpu(writer)
            latencies = asyncio.run(load(store, raw, total, concurrency))
            figures = {
                "rate": total / (time.perf_counter() - wall),
                "cpu_us": (time.process_time() - cpu) / total * 1e6,
                "loop_us": (thread_cpu(loop_tid) - loop_cpu) / total * 1e6,
                "writer_us": (thread_cpu(writer) - writer_cpu) / total * 1e6,
                "p50_ms": latencies[len(latencies) // 2] * 1000,
                "p99_ms": latencies[len(latencies) * 99 // 100] * 1000,
            }
        finally:
            store.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    raw = message(2048)
    print(f"{len(raw)}-byte messages, {args.messages} per run, {args.concurrency} in flight, "
          f"{os.cpu_count()} cores, sandbox from {Path(sys.modules['sandbox'].__file__ or '').parent}")  # fmt: skip
    results = []
    for i in range(args.runs):
        r = run(args.messages, args.concurrency, raw)
        results.append(r)
        print(f"  run {i + 1}: {line(r)}", flush=True)
    print(f"median: {line({k: statistics.median(r[k] for r in results) for k in results[0]})}")


def line(r: dict[str, float]) -> str:
    return (
        f"{r['rate']:6.0f} msg/s  process CPU {r['cpu_us']:4.0f} us/msg  (loop thread {r['loop_us']:4.0f}, "
        f"writer thread {r['writer_us']:4.0f})  latency p50 {r['p50_ms']:5.1f} ms, p99 {r['p99_ms']:5.1f} ms"
    )


if __name__ == "__main__":
    main()
