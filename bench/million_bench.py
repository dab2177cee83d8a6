"""A store of many messages, measured through the real server.

For each size (default 10k and 100k; 1M with `--sizes 10000,100000,1000000`) this fills a fresh database
file with 2 KB messages through the store API (`add_messages_sync`: group-committed windows), with
varied words so that searches match a realistic share, then starts `mailsandbox serve` on it as its own
process and measures over HTTP (httpx): the first and a middle page of the listing, three searches (a
subject word, a body word, from: plus a word), viewing a message, start-up (process start to the first
answer), bytes on disk per message, a `DELETE /api/v1/search`, retention (a restart with --max-age of half
the store's span) and `DELETE /api/v1/messages` of everything, each while an SMTP prober in another thread
sends one message at a time: the longest probe (MAIL to 250 after DATA) is the capture stall. Figures
are medians of --requests requests.

    .venv/bin/python bench/million_bench.py [--sizes 10000,100000] [--requests 30]

To compare two versions, run it from each checkout with its own venv (the server runs `python -m mailsandbox`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import smtplib
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.append(str(Path(__file__).resolve().parent.parent))  # last: PYTHONPATH can name another checkout

from smtp_bench import cpu_seconds, message, run_load  # bench/ is on sys.path when run as a script

from mailsandbox.models import Envelope
from mailsandbox.store.sqlite import SqliteStore

CAPTURE_MESSAGES = 5000
SUBJECT_WORD = "invoice"  # in 1% of subjects
BODY_WORD = "quarterly"  # in 1% of bodies
FROM_ADDR = "alice@example.test"  # 5% of senders; the from+word search adds a common word
SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "do", "gu", "fe", "hi", "jo", "be"]


def vocabulary(rng: random.Random, size: int = 20000) -> list[str]:
    words = {"".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))) for _ in range(size * 2)}
    return sorted(words)[:size]


def messages(count: int, seed: int = 17) -> Iterator[tuple[bytes, Envelope, float]]:
    """`count` messages of about 2 KB: Zipf-like word frequencies, one sender in 20 is alice."""
    rng = random.Random(seed)
    words = vocabulary(rng)
    cum, total = [], 0.0
    for rank in range(len(words)):
        total += 1 / (rank + 1)
        cum.append(total)
    start = time.time() - count
    for n in range(count):
        picked = rng.choices(words, cum_weights=cum, k=220)
        subject = " ".join(picked[:6]) + (f" {SUBJECT_WORD}" if n % 100 == 7 else "")
        body_words = picked[6:]
        if n % 100 == 42:
            body_words[len(body_words) // 2] = BODY_WORD
        lines = [" ".join(body_words[i : i + 12]) for i in range(0, len(body_words), 12)]
        sender = FROM_ADDR if n % 20 == 3 else f"user{n % 5000}@sender{n % 97}.test"
        raw = (
            f"Received: from bench (127.0.0.1 [127.0.0.1])\r\n\tby mailsandbox (Mailsandbox) with ESMTP id"
            f" MS{n:08d}\r\n\tfor <sink@example.test>; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
            f"From: Sender {n % 5000} <{sender}>\r\nTo: Sink <sink{n % 50}@example.test>\r\n"
            f"Subject: {subject}\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
            f"Message-ID: <{n}.bench@example.test>\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n" + "\r\n".join(lines) + "\r\n"
        ).encode()
        env = Envelope(mail_from=sender, rcpt_tos=(f"sink{n % 50}@example.test",), peer="127.0.0.1:1", helo="b")
        yield raw, env, start + n


def fill(path: str, count: int) -> float:
    began = time.perf_counter()
    store = SqliteStore(path)
    try:
        for _ in store.add_messages_sync(messages(count), window=512):
            pass
    finally:
        store.close()
    return time.perf_counter() - began


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, db: str, *flags: str) -> None:
        self.smtp, self.http = free_port(), free_port()
        began = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailsandbox", "serve", "--db", db, "--smtp", f"127.0.0.1:{self.smtp}",
             "--http", f"127.0.0.1:{self.http}", "--pop3", "off", "--imap", "off", "--dns", "off", *flags],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )  # fmt: skip
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.http}", timeout=600)
        deadline = time.monotonic() + 120
        while True:
            try:
                self.client.get("/api/v1/messages?limit=1").raise_for_status()
                break
            except httpx.TransportError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(self.proc.stderr.read().decode() if self.proc.stderr else "no start") from None
                time.sleep(0.01)
        self.startup = time.perf_counter() - began

    def close(self) -> None:
        self.client.close()
        self.proc.terminate()
        self.proc.wait(30)


def median_ms(client: httpx.Client, url: str, requests: int, **params: object) -> str:
    """The median in ms, or the status code of a refusal (503: the search ran over its time budget)."""
    times = []
    for _ in range(requests):
        began = time.perf_counter()
        answer = client.get(url, params=params)
        if answer.status_code != 200:
            return f"{answer.status_code}"
        times.append(time.perf_counter() - began)
    return f"{statistics.median(times) * 1000:.0f}"


def capture_cpu_us(server: Server, total: int = CAPTURE_MESSAGES) -> float:
    """The server's CPU per 2 KB message, `total` of them over 20 persistent SMTP connections."""
    before = cpu_seconds(server.proc.pid)
    asyncio.run(run_load(server.smtp, total, 20, message(2048, False), reconnect=False))
    return (cpu_seconds(server.proc.pid) - before) / total * 1e6


class Prober:
    """An SMTP client in its own thread sending one message at a time: `worst` is the longest (MAIL to the
    250 after DATA), the capture stall."""

    def __init__(self, port: int) -> None:
        self.port, self.worst = port, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with smtplib.SMTP("127.0.0.1", self.port, timeout=600) as smtp:
            while not self._stop.is_set():
                began = time.perf_counter()
                smtp.sendmail("probe@example.test", ["probe@example.test"], b"Subject: probe\r\n\r\nhi\r\n")
                self.worst = max(self.worst, time.perf_counter() - began)
                time.sleep(0.005)

    def stop(self) -> float:
        time.sleep(1.0)  # and a second after
        self._stop.set()
        self._thread.join(600)
        return self.worst


def wait_reaped(db: str) -> None:
    """Until no set-aside tables and no hidden messages are left."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        # A store from before migration 13 has no `doomed`.
        hidden = " UNION ALL SELECT 1 FROM doomed" if conn.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'doomed'").fetchone() else ""  # fmt: skip
        while conn.execute(f"SELECT 1 FROM sqlite_master WHERE name GLOB 'dead_[0-9]*'{hidden} LIMIT 1").fetchone():
            time.sleep(0.2)


def delete_all(server: Server, db: str, search: str = "") -> tuple[float, float, float]:
    """(seconds DELETE took to answer, the longest SMTP probe while it ran, while the store reaped what it
    set aside or hid and for 1 s after, seconds until the reaping was done). With `search`: DELETE /api/v1/search
    of what it matches instead."""
    prober = Prober(server.smtp)
    time.sleep(0.3)
    began = time.perf_counter()
    if search:
        server.client.delete("/api/v1/search", params={"query": search}).raise_for_status()
    else:
        server.client.delete("/api/v1/messages").raise_for_status()
    took = time.perf_counter() - began
    wait_reaped(db)
    reaped = time.perf_counter() - began
    return took, prober.stop(), reaped


def retention(db: str, size: int) -> tuple[Server, float, int, float, float]:
    """Start the server with --max-age of half the store's span (a message a second, the newest now):
    (the server, seconds from its first answer until the listing lost the older half, how many went, the
    longest SMTP probe meanwhile and while the store reaped them, seconds until the reaping was done)."""
    server = Server(db, "--max-age", f"{size // 2}s")
    prober = Prober(server.smtp)
    began = time.perf_counter()
    first = server.client.get("/api/v1/messages", params={"limit": 1}).json()["total"]
    left = first
    while left > first - size // 2 + size // 50:  # within 2% of half: the window moves a second a second
        time.sleep(0.05)
        left = server.client.get("/api/v1/messages", params={"limit": 1}).json()["total"]
    pruned = time.perf_counter() - began
    wait_reaped(db)
    return server, pruned, first - left, prober.stop(), time.perf_counter() - began


def run(size: int, requests: int, workdir: str) -> dict[str, str]:
    db = str(Path(workdir) / f"bench-{size}.db")
    filled = fill(db, size)
    on_disk = sum(os.path.getsize(p) for p in (db, db + "-wal") if os.path.exists(p))
    print(f"  {size}: filled in {filled:.1f} s ({size / filled:,.0f}/s), {on_disk / 1e6:.1f} MB", flush=True)
    server = Server(db)
    try:
        c = server.client
        page = c.get("/api/v1/messages", params={"limit": 50}).json()
        total = page["total"]
        some_id = page["messages"][0]["ID"]
        first = median_ms(c, "/api/v1/messages", requests, limit=50)
        middle = median_ms(c, "/api/v1/messages", requests, limit=50, start=total // 2)
        searches = [
            median_ms(c, "/api/v1/search", requests, query=q, limit=50)
            for q in (f"subject:{SUBJECT_WORD}", BODY_WORD, f"from:{FROM_ADDR} {vocabulary(random.Random(17))[50]}")
        ]
        view = median_ms(c, f"/api/v1/message/{some_id}", requests)
        capture = capture_cpu_us(server)
        matched = c.get("/api/v1/search", params={"query": f"subject:{SUBJECT_WORD}", "limit": 1}).json()
        by_search = delete_all(server, db, f"subject:{SUBJECT_WORD}")
        startup = server.startup
        server.close()
        server, pruned, aged, prune_stall, prune_reaped = retention(db, size)
        took, stall, reaped = delete_all(server, db)
    finally:
        server.close()
    for p in Path(workdir).glob(f"bench-{size}.db*"):
        p.unlink()
    return {
        "at": f"{size // 1000}k" if size < 1_000_000 else f"{size // 1_000_000}M",
        "list first page": f"{first} ms",
        "list middle page": f"{middle} ms",
        "search (subject word / body word / from+word)": " / ".join(searches) + " ms",
        "view": f"{view} ms",
        "delete by search: answer (matches; longest capture stall; reaped in)": (
            f"{by_search[0]:.2f} s ({matched['messages_count']:,}; {by_search[1] * 1000:.0f} ms;"
            f" {by_search[2]:.1f} s)"
        ),
        "retention (--max-age of half): pruned in (messages; longest capture stall; reaped in)": (
            f"{pruned:.2f} s ({aged:,}; {prune_stall * 1000:.0f} ms; {prune_reaped:.1f} s)"
        ),
        "delete all: answer (longest capture stall; reaped in)": (
            f"{took:.2f} s ({stall * 1000:.0f} ms; {reaped:.0f} s)"
        ),
        "start-up": f"{startup:.2f} s",
        "capture CPU per message (20 connections)": f"{capture:.0f} us",
        "db bytes per 2 KB message": f"{on_disk / size / 1000:.1f} KB ({on_disk / 1e6:.0f} MB)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--dir", default=None, help="where the database files go (default: a temp dir)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="million-bench-", dir=args.dir) as workdir:
        for size in (int(s) for s in args.sizes.split(",")):
            rows.append(run(size, args.requests, workdir))
            print("  | " + " | ".join(rows[-1].values()) + " |", flush=True)  # each row as it is measured
    heads = list(rows[0])
    print("| " + " | ".join(heads) + " |")
    print("|" + "---|" * len(heads))
    for row in rows:
        print("| " + " | ".join(row[h] for h in heads) + " |")


if __name__ == "__main__":
    main()
