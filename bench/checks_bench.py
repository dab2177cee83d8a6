"""Message checks benchmark: html-check latency on a newsletter and on a 1 MB HTML body, and the SMTP
capture rate while a client keeps asking for HTML checks of stored newsletters (each new to the checker),
against the capture rate with no checks, in the same run. The sandbox runs in its own process, so client
and server do not share a GIL.

    .venv/bin/python bench/checks_bench.py [--messages 400] [--checks 40]
"""

from __future__ import annotations

import argparse
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
ROW = (
    '<tr><td style="padding:12px; background-color:#fafafa" width="600">'
    '<a href="https://x.example/{0}">Item {0}</a></td></tr>\n'
)
NEWSLETTER = (
    "<html><head><style>.btn:hover{color:red} @media (max-width:600px){.col{display:block!important}}</style>"
    "</head><body><table>" + "".join(ROW.format(i) for i in range(300)) + "</table></body></html>"
)  # about 40 KB, a rich newsletter
BIG = "<html><body><table>" + "".join(ROW.format(i) for i in range(8000)) + "</table></body></html>"  # ~1 MB

SERVER = r"""
import asyncio, sys
from mailsandbox.app import Sandbox
from mailsandbox.config import Config, Listen
async def main():
    zero = Listen("127.0.0.1", 0)
    sandbox = Sandbox(Config(smtp=zero, http=zero, pop3=None, imap=None, dns=None, relay=False,
                             db=":memory:", data_dir=__import__("pathlib").Path(sys.argv[1])))
    await sandbox.start()
    print(sandbox.address("smtp").port, sandbox.address("http").port, flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def message(subject: str, html: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "app@example.test", "ann@example.test", subject
    msg.set_content("text")
    msg.add_alternative(html, subtype="html")
    return msg


def capture_rate(smtp_port: int, count: int) -> float:
    msg = message("rate", "<p>small</p>")
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", smtp_port) as client:
        for _ in range(count):
            client.send_message(msg)
    return count / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--checks", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen([sys.executable, "-c", SERVER, tmp], stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert server.stdout is not None
        smtp_port, http_port = map(int, server.stdout.readline().split())
        try:
            return run(smtp_port, http_port, args.messages, args.checks)
        finally:
            server.terminate()
            server.wait(10)


def run(smtp_port: int, http_port: int, messages: int, checks: int) -> int:
    http = httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=120)
    with smtplib.SMTP("127.0.0.1", smtp_port) as client:
        client.send_message(message("big", BIG))
        client.send_message(message("newsletter", NEWSLETTER))
    ids = {m["Subject"]: m["ID"] for m in http.get("/api/v1/messages").json()["messages"]}

    def timed(path: str) -> float:
        started = time.perf_counter()
        assert http.get(path).status_code == 200
        return time.perf_counter() - started

    view = [timed(f"/api/v1/message/{ids['newsletter']}") for _ in range(20)]
    # Each html-check of a new message parses it; the answer is then cached, so time first calls only.
    first_news = timed(f"/api/v1/message/{ids['newsletter']}/html-check")
    first_big = timed(f"/api/v1/message/{ids['big']}/html-check")
    cached = [timed(f"/api/v1/message/{ids['newsletter']}/html-check") for _ in range(20)]
    print(f"GET message (baseline)      median {statistics.median(view) * 1000:7.1f} ms")
    print(f"html-check, 40 KB newsletter first {first_news * 1000:7.1f} ms (starts the checker), cached median "
          f"{statistics.median(cached) * 1000:.1f} ms")  # fmt: skip
    print(f"html-check, 1 MB HTML       first {first_big * 1000:7.1f} ms")

    # Messages to check while capture is timed: each is new to the checker, so every check does the work.
    with smtplib.SMTP("127.0.0.1", smtp_port) as client:
        for n in range(checks):
            client.send_message(message(f"check {n}", NEWSLETTER.replace("Item", f"Item {n}")))
    listed = http.get("/api/v1/messages", params={"limit": checks}).json()["messages"]
    to_check = [m["ID"] for m in listed if m["Subject"].startswith("check ")]
    stop = threading.Event()
    done = [0]

    def hammer() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=120) as c:
            while not stop.is_set() and done[0] < len(to_check):
                assert c.get(f"/api/v1/message/{to_check[done[0]]}/html-check").status_code == 200
                done[0] += 1

    # Rounds alternate, so a neighbour's load on a shared machine falls on both columns alike.
    quiet, busy = [], []
    for _ in range(3):
        quiet.append(capture_rate(smtp_port, messages))
        stop.clear()
        worker = threading.Thread(target=hammer)
        worker.start()
        busy.append(capture_rate(smtp_port, messages))
        stop.set()
        worker.join()
    q, b = statistics.median(quiet), statistics.median(busy)
    print(f"capture, no checks          {q:7.0f} msg/s (rounds: {', '.join(f'{r:.0f}' for r in quiet)})")
    print(f"capture, html-checks going  {b:7.0f} msg/s (rounds: {', '.join(f'{r:.0f}' for r in busy)}; "
          f"{b / q:.2f}x; {done[0]} checks meanwhile)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
