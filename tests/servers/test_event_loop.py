"""The sandbox on either event loop: uvloop (the default where installed) and asyncio's own, each serving
SMTP, POP3, IMAP and HTTP with clients we did not write."""

from __future__ import annotations

import imaplib
import poplib
import smtplib
from pathlib import Path

import httpx
import pytest

from mailsandbox.app import SandboxThread
from mailsandbox.config import Config, SettingError
from mailsandbox.event_loop import name
from tests.conftest import free_config

uvloop = pytest.importorskip("uvloop")


@pytest.mark.parametrize("choice, expected", [("asyncio", "asyncio"), ("uvloop", "uvloop"), ("auto", "uvloop")])
def test_each_protocol_serves_on_the_loop_chosen(tmp_path: Path, choice: str, expected: str) -> None:
    thread = SandboxThread(free_config(tmp_path, event_loop=choice))
    sandbox = thread.start()
    try:
        assert name(thread.loop) == expected
        smtp, pop3, imap, http = (sandbox.addresses[k] for k in ("smtp", "pop3", "imap", "http"))
        with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as client:
            client.starttls()  # start_tls on this loop's transports
            client.sendmail("a@example.test", ["bob@example.test"], b"Subject: on " + choice.encode() + b"\r\n\r\nhi\r\n")
        listing = httpx.get(f"http://{http.host}:{http.port}/api/v1/messages", timeout=10).json()
        assert [m["Subject"] for m in listing["messages"]] == [f"on {choice}"]
        mailbox = poplib.POP3(pop3.host, pop3.port, timeout=10)
        mailbox.user("bob@example.test")
        mailbox.pass_("x")
        assert mailbox.stat()[0] == 1
        mailbox.quit()
        with imaplib.IMAP4(imap.host, imap.port, timeout=10) as session:
            session.login("bob@example.test", "x")
            assert session.select("INBOX") == ("OK", [b"1"])
    finally:
        thread.stop()


def test_an_unknown_loop_is_refused_by_name() -> None:
    with pytest.raises(SettingError, match=r"event_loop.*'trio' is not one of auto, uvloop, asyncio"):
        Config().replace(event_loop="trio")
