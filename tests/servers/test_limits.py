"""The limiter every TCP listener shares, and the rate-limited log it reports through."""

from __future__ import annotations

import logging
import resource
import smtplib
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mailsandbox.servers._limits import ConnectionLimiter, RateLimitedLog


def test_total_and_per_client_limits() -> None:
    limiter = ConnectionLimiter("smtp", total=3, per_client=2)
    a1, a2 = limiter.admit(("10.0.0.1", 1)), limiter.admit(("10.0.0.1", 2))
    assert a1 and a2
    assert limiter.admit(("10.0.0.1", 3)) is None  # per client
    b1 = limiter.admit(("::1", 4, 0, 0))
    assert b1
    assert limiter.admit(("10.0.0.2", 5)) is None  # total
    a1.release()
    a1.release()  # idempotent
    assert limiter.active == 2
    assert limiter.admit(("10.0.0.2", 6)) is not None
    assert limiter.refused == 2


def test_zero_means_no_limit() -> None:
    limiter = ConnectionLimiter("imap", total=0, per_client=0)
    assert all(limiter.admit(("127.0.0.1", i)) for i in range(5000))


def test_rate_limited_log(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    log = RateLimitedLog(logging.getLogger("t"), 10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING):
        written = [log.warning("k", "boom %d", i) for i in range(1000)]
        now[0] = 11.0
        log.warning("k", "boom again")
    assert written.count(True) == 1
    assert len(caplog.records) == 2
    assert "999 similar messages suppressed" in caplog.records[1].getMessage()


def test_connection_flood_under_a_low_fd_limit_is_refused_not_a_storm(tmp_path: Path) -> None:
    """With only 256 descriptors, the listeners' limits shrink to fit: a flood of 400 connections gets
    `421 4.7.0` past the limit instead of failing accept() (which asyncio retries in a busy loop on
    Python < 3.15, gh-151615), the server keeps answering, and its log stays a few lines."""
    ports = [_free_port() for _ in range(2)]

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    err = tmp_path / "stderr"
    with err.open("wb") as err_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "mailsandbox", "serve", "--db", ":memory:", "--data-dir", str(tmp_path),
             "--smtp", f"127.0.0.1:{ports[0]}", "--http", f"127.0.0.1:{ports[1]}",
             "--pop3", "off", "--imap", "off", "--dns", "off"],
            stdout=subprocess.PIPE, stderr=err_file, preexec_fn=low_limit,
        )  # fmt: skip
    socks: list[socket.socket] = []
    try:
        assert server.stdout is not None
        server.stdout.readline()  # the banner: listening
        greetings = []
        for _ in range(400):
            sock = socket.create_connection(("127.0.0.1", ports[0]), timeout=10)
            socks.append(sock)
            greetings.append(sock.recv(200))
        admitted = [g for g in greetings if g.startswith(b"220 ")]
        refused = [g for g in greetings if g.startswith(b"421 4.7.0")]
        assert len(admitted) + len(refused) == 400, {g[:20] for g in greetings}
        assert 50 <= len(admitted) <= 128 and refused
        for sock in socks:
            sock.close()
        socks.clear()
        # Places come back: a new session is served in full.
        with smtplib.SMTP("127.0.0.1", ports[0], timeout=10) as client:
            client.sendmail("a@example.test", ["b@example.test"], b"Subject: after the flood\r\n\r\nok\r\n")
    finally:
        for sock in socks:
            sock.close()
        server.terminate()
        server.wait(10)
    assert err.stat().st_size < 4000, err.read_text()[:2000]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
