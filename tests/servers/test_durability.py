"""A 250 after DATA means the message is on disk: kill -9 the server mid-load and count after restart."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(data_dir: Path, smtp_port: int, http_port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailsandbox", "serve", "--smtp", f"127.0.0.1:{smtp_port}",
         "--http", f"127.0.0.1:{http_port}", "--pop3", "off", "--imap", "off", "--dns", "off",
         "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("Press Ctrl-C"):
            return proc
    raise RuntimeError(f"server did not start: exit {proc.wait()}")


def test_kill_9_during_load_loses_no_acknowledged_message(tmp_path: Path) -> None:
    smtp_port, http_port = free_port(), free_port()
    proc = start_server(tmp_path, smtp_port, http_port)
    acknowledged: list[str] = []
    lock = threading.Lock()
    enough = threading.Event()

    def sender(n: int) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
                client.ehlo("loader")
                for i in range(10_000):
                    client.mail(f"s{n}@example.test")
                    client.rcpt("sink@example.test")
                    code, reply = client.data(f"Subject: {n}-{i}\r\n\r\nbody\r\n".encode())
                    if code == 250:
                        with lock:
                            acknowledged.append(reply.decode().split()[-1])
                            if len(acknowledged) >= 300:
                                enough.set()
        except (OSError, smtplib.SMTPException):
            return  # the server died under us: expected

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    assert enough.wait(60), "the server never acknowledged 300 messages"
    os.kill(proc.pid, signal.SIGKILL)  # mid-load, no chance to flush anything
    proc.wait()
    for thread in threads:
        thread.join(30)
    with lock:
        acked = set(acknowledged)
    assert len(acked) >= 300

    proc = start_server(tmp_path, smtp_port, http_port)
    try:
        stored: set[str] = set()
        with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=30) as client:
            total = client.get("/api/v1/messages", params={"limit": 1}).json()["total"]
            for start in range(0, total, 1000):
                page = client.get("/api/v1/messages", params={"start": start, "limit": 1000}).json()
                stored.update(m["ID"] for m in page["messages"])
        missing = acked - stored
        assert not missing, f"{len(missing)} of {len(acked)} acknowledged messages lost"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0  # and a clean shutdown exits 0
