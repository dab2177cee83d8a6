"""The limiter every TCP listener shares, and the rate-limited log it reports through."""

from __future__ import annotations

import logging

import pytest

from sandbox.servers._limits import ConnectionLimiter, RateLimitedLog


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
