"""Web benchmark: list, search and view latency over HTTP with 100,000 stored messages, and the time
from an SMTP 250 to the matching "new" frame on an /api/events WebSocket client.

The messages are bulk-loaded through the Store (not SMTP); the sandbox then runs in its own process on
that database, so the timing client and the server do not share a GIL.

    .venv/bin/python bench/web_bench.py [--messages 100000] [--requests 300] [--events 300] [--db PATH]

Search terms: "invoice" is in ~9% of subjects; "kalys" is in ~25% of bodies; "payment" in ~9%.

Targets: list and view < 20 ms median, search < 100 ms median, event < 50 ms p99.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailsandbox.models import Envelope  # noqa: E402
from mailsandbox.store.sqlite import SqliteStore  # noqa: E402

WORDS = (
    "invoice order shipping account password reset welcome newsletter report meeting update security "
    "payment receipt confirm verify delivery schedule project budget review team launch release notes "
    "customer support ticket feedback survey offer discount event webinar reminder alert backup server "
    "database deploy build failure success weekly monthly quarterly annual summary digest comment reply"
).split()
MAILBOXES = [f"user{n}@example.test" for n in range(50)]
# Body text: 3,000 made-up words with Zipf-like frequencies, so a common word is in many messages and
# most words in few, as in real mail (a 70-word body vocabulary would put every word in every message).
_SYLLABLES = "ka lo mi ne ru sa ti vo be da fe gi ho ju ly ze pa qu xi wo".split()
BODY_WORDS = [a + b + c for a in _SYLLABLES for b in _SYLLABLES for c in ("", "n", "s", "t", "r", "l", "m")][:3000]
BODY_CUM_WEIGHTS = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(BODY_WORDS))))

# Runs the sandbox in a child process; prints its addresses as JSON, stops when stdin closes.
SERVER = """
import json, sys
sys.path.insert(0, sys.argv[1])
import mailsandbox.web.app
from starlette.routing import Route, WebSocketRoute
original = mailsandbox.web.app.create_app
def create_app(store, bus, **kwargs):
    app = original(store, bus, **kwargs)
    if "/api/events" not in {getattr(r, "path", None) for r in app.routes}:  # until create_app mounts them
        from mailsandbox.web.security import SecurityHeaders
        from mailsandbox.web.ui import web_routes
        app.router.routes.extend(web_routes(store, bus))
        app.add_middleware(SecurityHeaders)
    return app
mailsandbox.web.app.create_app = create_app
import socket
import mailsandbox.app
bind = mailsandbox.app._bind_tcp
def bind_nodelay(listen):
    # A socket made with proto 0 misses asyncio's automatic TCP_NODELAY; without it every keep-alive
    # response waits ~40 ms for the client's delayed ACK (Nagle). Set here until _bind_tcp does it.
    sock = bind(listen)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock
mailsandbox.app._bind_tcp = bind_nodelay
from pathlib import Path
from mailsandbox.app import SandboxThread
from mailsandbox.config import Config, Listen
zero = Listen("127.0.0.1", 0)
db = Path(sys.argv[2])
thread = SandboxThread(Config(smtp=zero, http=zero, pop3=None, imap=None, dns=None, relay=False,
                              data_dir=db.parent, db=str(db)))
sandbox = thread.start()
print(json.dumps({k: [v.host, v.port] for k, v in sandbox.addresses.items()}), flush=True)
sys.stdin.read()
thread.stop()
"""


def make_message(rng: random.Random, n: int) -> tuple[bytes, Envelope]:
    to = rng.sample(MAILBOXES, rng.choice((1, 1, 1, 2, 3)))
    sender = f"sender{rng.randrange(500)}@shop{rng.randrange(20)}.test"
    subject = " ".join(rng.choices(WORDS, k=rng.randint(3, 7))).capitalize() + f" #{n}"
    lines = rng.randint(5, 40)
    body = "\r\n".join(" ".join(rng.choices(BODY_WORDS, cum_weights=BODY_CUM_WEIGHTS, k=12)) for _ in range(lines))
    headers = (
        f"From: Sender {n % 500} <{sender}>\r\nTo: {', '.join(to)}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{n}.bench@example.test>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\n"
    )
    if n % 10 == 0:
        boundary = f"b{n}"
        raw = (
            f"{headers}Content-Type: multipart/mixed; boundary={boundary}\r\n\r\n--{boundary}\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n--{boundary}\r\n"
            f'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="doc{n}.pdf"\r\n'
            f"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--{boundary}--\r\n"
        )
    else:
        raw = f"{headers}Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    return raw.encode(), Envelope(sender, tuple(to), peer="127.0.0.1:1", helo="bench")


async def _load(path: str, count: int) -> None:
    store = SqliteStore(path, durable=False)
    rng = random.Random(42)
    base = time.time() - count
    try:
        for start in range(0, count, 1000):
            batch = [make_message(rng, n) for n in range(start, min(count, start + 1000))]
            # Concurrent adds share the store's group commit: one transaction per batch.
            adds = [store.add_message(raw, env, received_at=base + start + i) for i, (raw, env) in enumerate(batch)]
            await asyncio.gather(*adds)
            print(f"\rloaded {min(count, start + 1000):,}/{count:,}", end="", file=sys.stderr, flush=True)
    finally:
        store.close()
    print(file=sys.stderr)


def stats(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"median {statistics.median(ms):7.2f} ms   p99 {p99:7.2f} ms   (n={len(ms)})"


def timed(client: httpx.Client, url: str, repeat: int, **params: object) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        response = client.get(url, params=params)  # type: ignore[arg-type]
        out.append(time.perf_counter() - t0)
        response.raise_for_status()
    return out


def event_latency(http: tuple[str, int], smtp: tuple[str, int], count: int) -> list[float]:
    arrived: dict[str, float] = {}
    done = threading.Event()
    url = f"ws://{http[0]}:{http[1]}/api/events"
    with connect(url) as ws:

        def reader() -> None:
            while len(arrived) < count:
                frame = json.loads(ws.recv(timeout=30))
                if frame["Type"] == "new":
                    arrived[frame["Data"]["Subject"]] = time.perf_counter()
            done.set()

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        sent: dict[str, float] = {}
        with smtplib.SMTP(*smtp) as client:
            for n in range(count):
                subject = f"event latency {n}"
                raw = f"From: a@example.test\r\nTo: b@example.test\r\nSubject: {subject}\r\n\r\nhi\r\n"
                client.sendmail("a@example.test", ["b@example.test"], raw)  # returns on the 250
                sent[subject] = time.perf_counter()
        done.wait(30)
    return [max(0.0, arrived[s] - t) for s, t in sent.items() if s in arrived]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--db", help="reuse (or create) this database instead of a temporary one")
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="web-bench-")
    db = Path(args.db) if args.db else Path(tmp.name) / "bench.db"
    if not db.exists():
        t0 = time.perf_counter()
        asyncio.run(_load(str(db), args.messages))
        print(f"bulk load: {args.messages:,} messages in {time.perf_counter() - t0:.1f} s", file=sys.stderr)

    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(ROOT), str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        addresses = json.loads(server.stdout.readline())
        http: tuple[str, int] = (addresses["http"][0], addresses["http"][1])
        smtp: tuple[str, int] = (addresses["smtp"][0], addresses["smtp"][1])
        with httpx.Client(base_url=f"http://{http[0]}:{http[1]}", timeout=30) as client:
            total = client.get("/api/v1/messages", params={"limit": 1}).json()["total"]
            ids = [m["ID"] for m in client.get("/api/v1/messages", params={"limit": 1000}).json()["messages"]]
            rng = random.Random(7)
            timed(client, "/api/v1/messages", 20)  # warm the page cache
            n = args.requests
            search = "/api/v1/search"
            results = {
                "list (first page, 50)": timed(client, "/api/v1/messages", n, limit=50),
                "list (start=50000)": timed(client, "/api/v1/messages", n // 3, start=50_000, limit=50),
                "search word": timed(client, search, n, query="invoice"),
                "search common body word": timed(client, search, n, query="kalys"),
                "search from:+word": timed(client, search, n, query="from:shop3 payment"),
                "search to:+is:unread": timed(client, search, n, query="to:user7@example.test is:unread"),
                "search phrase -neg": timed(client, search, n, query='"weekly digest" -alert'),
                "search mailbox filter": timed(client, search, n, query="meeting", mailbox="user3@example.test"),
            }
            view: list[float] = []
            preview: list[float] = []
            for _ in range(args.requests):
                mid = rng.choice(ids)
                view += timed(client, f"/api/v1/message/{mid}", 1)
                preview += timed(client, f"/view/{mid}.txt", 1)
            results["view message"] = view
            results["view /view/{ID}.txt"] = preview
        results["SMTP 250 -> WS event"] = event_latency(http, smtp, args.events)
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(30)
        tmp.cleanup()
    print(f"{total:,} stored messages")
    for name, samples in results.items():
        print(f"{name:24} {stats(samples)}")


if __name__ == "__main__":
    main()
