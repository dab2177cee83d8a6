"""Frontends killed with SIGKILL while they capture and relay, on one PostgreSQL database: no message
that got its 250 is lost, and every relayed recipient is delivered exactly once (the simulated MX hosts of
tests/data/example.zone), whichever frontend accepted it, attempted it or died in between."""

from __future__ import annotations

import imaplib
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.store_contract.pg import Cluster, postgresql  # noqa: F401  (the cluster fixture)

pytestmark = pytest.mark.fleet

ZONE = Path(__file__).parent / "data" / "example.zone"
MESSAGES = 45


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Frontend:
    """`mailsandbox serve` on the shared database, in a process of its own (so kill -9 is real)."""

    def __init__(self, dsn: str, data_dir: Path) -> None:
        self.dsn, self.data_dir = dsn, data_dir
        self.smtp, self.http, self.imap = _port(), _port(), _port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailsandbox", "serve", "--db", self.dsn, "--data-dir", str(self.data_dir),
             "--smtp", f"127.0.0.1:{self.smtp}", "--http", f"127.0.0.1:{self.http}",
             "--imap", f"127.0.0.1:{self.imap}", "--pop3", "off", "--dns", "off", "--zone", str(ZONE),
             "--auth-checks", "off"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{self.http}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.proc.poll() is None, "the frontend did not start"
            assert time.monotonic() < deadline, "the frontend did not become ready"
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


def _send(frontend: Frontend, n: int) -> bool:
    """True once the frontend answered 250 to message `n` (to r<n>@example.test, relayed by mx1)."""
    try:
        with smtplib.SMTP("127.0.0.1", frontend.smtp, timeout=10) as client:
            client.sendmail("ann@shop.test", [f"r{n}@example.test"],
                            f"From: ann@shop.test\r\nTo: r{n}@example.test\r\nSubject: n{n}\r\n\r\nhi\r\n")  # fmt: skip
        return True
    except (OSError, smtplib.SMTPException):
        return False  # killed mid-session: not acknowledged, so it may or may not be stored


def _hosts(frontends: list[Frontend], behaviour: str) -> None:
    """Host behaviours live in each frontend's memory: set on every one (a restarted one forgets)."""
    for frontend in frontends:
        for host in ("mx1.example.test", "mx2.example.test"):
            answer = httpx.put(f"http://127.0.0.1:{frontend.http}/api/sandbox/hosts/{host}",
                               json={"behaviour": behaviour}, timeout=10)  # fmt: skip
            assert answer.status_code == 200, answer.text


@pytest.mark.timeout(240)
def test_kill_9_loses_no_acknowledged_message_and_delivers_each_recipient_once(
    postgresql: Cluster,  # noqa: F811
    tmp_path: Path,
) -> None:
    dsn = postgresql.create_database(f"crash_{int(time.time() * 1000)}")
    frontends = [Frontend(dsn, tmp_path / f"f{i}") for i in range(3)]
    acknowledged: list[int] = []
    try:
        # 1. Capture with every MX deferring (451), one frontend killed and restarted on the way.
        _hosts(frontends, "tempfail")
        for n in range(MESSAGES):
            if n == 10:
                frontends[1].kill()
            if n == 20:
                frontends[1].start()
                _hosts([frontends[1]], "tempfail")
            for k in range(3):  # a load balancer's retry: the next frontend if this one is down
                if _send(frontends[(n + k) % 3], n):
                    acknowledged.append(n)
                    break
        api = httpx.Client(base_url=f"http://127.0.0.1:{frontends[0].http}", timeout=60)
        assert len(api.get("/api/sandbox/queue").json()) == len(acknowledged)  # all of them deferred
        # 2. The hosts take mail again; the retry is due on the shared clock, every frontend's relay works
        # the shared queue at once, and one of them is killed in the middle of it.
        _hosts(frontends, "accept")
        api.post("/api/sandbox/clock", json={"advance": 3600})
        frontends[2].kill()
        frontends[2].start()  # its claims run out (CLAIM_SECONDS), then any frontend tries them
        deadline = time.monotonic() + 120
        while api.get("/api/sandbox/queue").json():
            assert time.monotonic() < deadline, "the queue was not worked off"
            time.sleep(0.25)
        subjects = {m["Subject"] for m in api.get("/api/v1/messages", params={"limit": 1000}).json()["messages"]}
        lost = [n for n in acknowledged if f"n{n}" not in subjects]
        assert not lost, f"acknowledged and lost: {lost}"
        assert len(acknowledged) >= MESSAGES - 2
        copies = {n: _delivered(frontends[n % 3], n) for n in acknowledged}
        assert {n: c for n, c in copies.items() if c != 1} == {}, "a recipient delivered more or less than once"
    finally:
        for frontend in frontends:
            frontend.stop()


def _delivered(frontend: Frontend, n: int) -> int:
    """Entries in r<n>@example.test's INBOX, as IMAP counts them."""
    with imaplib.IMAP4("127.0.0.1", frontend.imap, timeout=10) as box:
        box.login(f"r{n}@example.test", "x")
        status = box.status("INBOX", "(MESSAGES)")[1][0] or b""
        return int(status.split(b"MESSAGES ")[1].rstrip(b")"))
