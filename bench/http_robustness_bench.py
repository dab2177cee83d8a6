"""HTTP robustness figures: what hostile API requests cost the event loop and memory.

    .venv/bin/python bench/http_robustness_bench.py [--messages 3000] [--body-mb 800]

Prints, for a sandbox running in this process (so the loop's stalls can be measured):
- a 2,000-word search, and 50 prefix terms that make FTS5 work hard on the stored messages: status,
  seconds, and the loop's longest stall while each ran;
- GET of an 11 MB message (parsed), one of its parts and its headers: seconds and the longest stall;
- first, before anything else has raised the peak: a chunked request body of --body-mb MB streamed
  from a generator, how much was sent before the 413 and how much the process's peak RSS grew.
"""

from __future__ import annotations

import argparse
import os
import random
import select
import socket
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailsandbox.app import SandboxThread  # noqa: E402
from mailsandbox.models import Envelope  # noqa: E402
from tests.conftest import LoopWatch, free_config  # noqa: E402

ENV = Envelope(mail_from="a@example.test", rcpt_tos=("b@example.test",), peer="", helo="")


def _hwm() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _timed(sandbox: object, client: httpx.Client, path: str, **params: str) -> str:
    with LoopWatch(sandbox) as watch:  # type: ignore[arg-type]
        started = time.perf_counter()
        response = client.get(path, params=params)
        seconds = time.perf_counter() - started
    return f"{response.status_code}  {seconds:7.3f} s  loop stall {watch.max_stall * 1000:6.1f} ms"


def _stream_body(host: str, port: int, total: int) -> tuple[int, bytes]:
    chunk = b"[" + b"0," * 32_767 + b"0"
    framed = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    sent = 0
    with socket.create_connection((host, port)) as sock:
        sock.sendall(b"PUT /api/v1/messages HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n")
        sock.setblocking(False)
        while sent < total:
            readable, writable, _ = select.select([sock], [sock], [], 30)
            if readable or not writable:
                break
            try:
                sent += sock.send(framed)
            except OSError:
                break
        else:
            sock.setblocking(True)
            sock.sendall(b"0\r\n\r\n")  # all of it was taken: end the body
        sock.setblocking(True)
        sock.settimeout(300)
        return sent, sock.recv(200).split(b"\r\n", 1)[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--body-mb", type=int, default=800)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        thread = SandboxThread(free_config(Path(tmp)))
        sandbox = thread.start()
        http = sandbox.address("http")
        before = _hwm()
        started = time.perf_counter()
        sent, status = _stream_body(http.host, http.port, args.body_mb * 1_000_000)
        print(f"a {args.body_mb} MB chunked body: {status.decode()!r} after {sent / 1e6:.1f} MB sent, "
              f"{time.perf_counter() - started:.2f} s; peak RSS grew {(_hwm() - before) / 1e6:.1f} MB")  # fmt: skip
        store = sandbox.store
        rnd = random.Random(1)
        words = [f"w{i}x" for i in range(3000)]
        for i in range(args.messages):
            body = " ".join(rnd.choice(words) for _ in range(200))
            store.add_message_sync(f"Subject: m{i}\r\n\r\n{body}\r\n".encode(), ENV)  # type: ignore[attr-defined]
        with httpx.Client(base_url=f"http://{http.host}:{http.port}", timeout=300) as client:
            print(f"searches over {args.messages} messages of 200 words:")
            many = " ".join(rnd.choice(words)[:2] for _ in range(2000))
            print("  2,000 two-letter prefixes  ", _timed(sandbox, client, "/api/v1/search", query=many))
            heavy = " ".join("w" + "." * k for k in range(1, 51))
            print("  50 prefix terms 'w.'...    ", _timed(sandbox, client, "/api/v1/search", query=heavy))
            msg = EmailMessage()
            msg["Subject"], msg["From"], msg["To"] = "big", "a@example.test", "b@example.test"
            msg.set_content("hello " * 100_000)
            msg.add_attachment(os.urandom(8_000_000), maintype="application", subtype="octet-stream", filename="x")
            big = store.add_message_sync(msg.as_bytes(), ENV)  # type: ignore[attr-defined]
            print(f"an {len(msg.as_bytes()) / 1e6:.0f} MB message:")
            for tail in ("", "/part/2", "/headers"):
                print(f"  GET /api/v1/message/ID{tail:10}", _timed(sandbox, client, f"/api/v1/message/{big.id}{tail}"))
        thread.stop()


if __name__ == "__main__":
    main()
