"""The shared sandbox on PostgreSQL against SQLite, in one run: capture rate with one and with three
frontends on one database, and list/search latency at 100,000 messages on both backends.

A throw-away PostgreSQL cluster on loopback (Debian's binaries, as the tests use: tests/store_contract/pg.py)
with fsync on, as a real one runs. Each frontend is its own `mailsandbox serve` process; the SMTP load goes
over 20 persistent connections, spread over the frontends as a TCP load balancer would. CPU per message is
the frontends' and, for PostgreSQL, the database server's too.

    .venv/bin/python bench/postgres_bench.py [--messages 10000] [--store 100000] [--requests 30]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from million_bench import BODY_WORD, FROM_ADDR, SUBJECT_WORD, median_ms, messages
from smtp_bench import connect, cpu_seconds, free_port, message, send_one

from tests.store_contract.pg import Cluster, start_cluster


class Frontend:
    """One `mailsandbox serve` process on `db`."""

    def __init__(self, db: str, data_dir: str) -> None:
        self.smtp, self.http = free_port(), free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailsandbox", "serve", "--db", db, "--data-dir", data_dir,
             "--smtp", f"127.0.0.1:{self.smtp}", "--http", f"127.0.0.1:{self.http}", "--pop3", "off",
             "--imap", "off", "--dns", "off", "--auth-checks", "off"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )  # fmt: skip
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.http}", timeout=600)
        deadline = time.monotonic() + 120
        while True:
            try:
                self.client.get("/readyz").raise_for_status()
                return
            except (httpx.TransportError, httpx.HTTPStatusError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(self.proc.stderr.read().decode() if self.proc.stderr else "no start") from None
                time.sleep(0.05)

    def close(self) -> None:
        self.client.close()
        self.proc.terminate()
        self.proc.wait(30)


def cluster_cpu(cluster: Cluster) -> float:
    """CPU seconds of every process of the PostgreSQL cluster (the postmaster and its backends)."""
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True).stdout.split()
    total = 0.0
    for pid in [postmaster, *map(int, children)]:
        try:
            total += cpu_seconds(pid)
        except OSError:
            pass  # a backend that ended meanwhile (its time is lost: a lower bound)
    return total


async def spread_load(ports: list[int], total: int, connections: int, body: bytes) -> dict[str, float]:
    """`connections` persistent SMTP sessions, dealt round-robin over the frontends' ports."""
    latencies: list[float] = []
    per_conn = [total // connections + (1 if i < total % connections else 0) for i in range(connections)]

    async def worker(port: int, count: int) -> None:
        client = await connect(port)
        for _ in range(count):
            latencies.append(await send_one(client, body))
        assert client.transport is not None
        client.transport.write(b"QUIT\r\n")
        client.transport.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker(port, n) for port, n in zip(itertools.cycle(ports), per_conn, strict=False)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {"rate": total / elapsed, "p50": statistics.median(latencies) * 1000,
            "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000}  # fmt: skip


def capture(name: str, frontends: list[Frontend], total: int, cluster: Cluster | None) -> None:
    body = message(2048, False)
    asyncio.run(spread_load([f.smtp for f in frontends], 200, 20, body))  # warm-up
    cpu = sum(cpu_seconds(f.proc.pid) for f in frontends)
    db_cpu = cluster_cpu(cluster) if cluster else 0.0
    result = asyncio.run(spread_load([f.smtp for f in frontends], total, 20, body))
    cpu = (sum(cpu_seconds(f.proc.pid) for f in frontends) - cpu) / total * 1e6
    db_cpu = (cluster_cpu(cluster) - db_cpu) / total * 1e6 if cluster else 0.0
    print(f"  {name:<34} {result['rate']:6.0f} msg/s  p50 {result['p50']:6.1f} ms  p99 {result['p99']:6.1f} ms"
          f"  frontend CPU {cpu:5.0f} us/msg  database CPU {db_cpu:5.0f} us/msg", flush=True)  # fmt: skip


def fill(store: object, count: int) -> float:
    began = time.perf_counter()
    for _ in store.add_messages_sync(messages(count), window=512):  # type: ignore[attr-defined]
        pass
    return time.perf_counter() - began


def latency(name: str, frontend: Frontend, size: int, requests: int) -> None:
    client = frontend.client
    middle = max(0, size // 2)
    figures = {
        "list first": median_ms(client, "/api/v1/messages", requests, limit=50),
        "list middle": median_ms(client, "/api/v1/messages", requests, start=middle, limit=50),
        "subject:": median_ms(client, "/api/v1/search", requests, query=f"subject:{SUBJECT_WORD}"),
        "body word": median_ms(client, "/api/v1/search", requests, query=BODY_WORD),
        "from:+word": median_ms(client, "/api/v1/search", requests, query=f"from:{FROM_ADDR} ka"),
    }
    ids = client.get("/api/v1/messages", params={"limit": 1}).json()["messages"]
    if ids:
        figures["view"] = median_ms(client, f"/api/v1/message/{ids[0]['ID']}", requests)
    print(f"  {name:<12} " + "  ".join(f"{k} {v} ms" for k, v in figures.items()), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10000, help="messages of the capture runs")
    parser.add_argument("--store", type=int, default=100000, help="messages of the latency runs' stores")
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="pgbench-")
    cluster = start_cluster(Path(work) / "pg", fsync=True)
    try:
        print(f"capture: {args.messages} messages of 2 KB over 20 connections", flush=True)
        sqlite = Frontend(str(Path(work) / "capture.db"), work)
        capture("SQLite, 1 frontend", [sqlite], args.messages, None)
        sqlite.close()
        for count in (1, 3):
            dsn = cluster.create_database(f"capture{count}")
            frontends = [Frontend(dsn, work) for _ in range(count)]
            capture(f"PostgreSQL, {count} frontend{'s' * (count > 1)}", frontends, args.messages, cluster)
            for f in frontends:
                f.close()
        print(f"latency at {args.store} messages (medians of {args.requests} requests over HTTP)", flush=True)
        from mailsandbox.store.postgres.store import PostgresStore
        from mailsandbox.store.sqlite import SqliteStore

        path = str(Path(work) / "latency.db")
        dsn = cluster.create_database("latency")
        for name, make, db in (("SQLite", SqliteStore, path), ("PostgreSQL", PostgresStore, dsn)):
            store = make(db)
            took = fill(store, args.store)
            store.close()
            print(f"  {name}: filled in {took:.0f} s through the store API", flush=True)
            frontend = Frontend(db, work)
            latency(name, frontend, args.store, args.requests)
            frontend.close()
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
