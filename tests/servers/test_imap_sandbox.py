"""IMAP inside a whole sandbox: SMTP delivery wakes IDLE, \\Seen is the web UI's read state, TLS both ways."""

from __future__ import annotations

import imaplib
import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest

from mailsandbox.app import Sandbox
from mailsandbox.config import Listen

USER = "bob@example.test"
SENT = (
    b"From: Alice <alice@example.test>\r\nTo: Bob <bob@example.test>\r\nSubject: over SMTP\r\n"
    b"Message-ID: <smtp-1@example.test>\r\n\r\nHello Bob,\r\n.leading dot\r\n"
)


@dataclass
class World:
    sandbox: Sandbox
    imap: Listen
    imap_tls: Listen
    client_ctx: ssl.SSLContext

    def send(self, raw: bytes = SENT) -> None:
        smtp = self.sandbox.address("smtp")
        with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as client:
            client.sendmail("alice@example.test", [USER], raw)

    def login(self) -> imaplib.IMAP4:
        imap = imaplib.IMAP4(self.imap.host, self.imap.port, timeout=10)
        imap.login(USER, "any password")
        return imap

    def api(self) -> httpx.Client:
        http = self.sandbox.address("http")
        return httpx.Client(base_url=f"http://{http.host}:{http.port}", timeout=10)


@pytest.fixture
def world(sandbox_factory: Callable[..., Sandbox]) -> World:
    sandbox = sandbox_factory(imap_tls_port=Listen("127.0.0.1", 0))
    client_ctx = ssl.create_default_context(cafile=str(sandbox.config.data_dir / "tls" / "cert.pem"))
    return World(sandbox, sandbox.address("imap"), sandbox.address("imap_tls"), client_ctx)


def test_idle_wakes_on_smtp_delivery(world: World) -> None:
    imap = world.login()
    assert imap.select() == ("OK", [b"0"])
    imap.send(b"I1 IDLE\r\n")
    assert imap.readline() == b"+ idling\r\n"
    started = time.monotonic()
    world.send()
    line = imap.readline()
    waited = time.monotonic() - started
    assert line == b"* 1 EXISTS\r\n"
    assert waited < 1.0  # smtplib's whole dialogue included; the wake-up itself is one loop turn
    assert imap.readline() == b"* 1 RECENT\r\n"
    imap.send(b"DONE\r\n")
    assert imap.readline() == b"I1 OK IDLE terminated\r\n"
    status, data = imap.fetch("1", "(BODY.PEEK[])")
    assert status == "OK" and isinstance(data[0], tuple)
    fetched = data[0][1]
    assert fetched.endswith(SENT) and fetched.startswith(b"Received: ")  # SMTP added its trace line
    assert imap.logout()[0] == "BYE"


def test_seen_is_the_web_read_state(world: World) -> None:
    world.send()
    imap = world.login()
    imap.select()
    with world.api() as api:
        [summary] = api.get("/api/v1/messages").json()["messages"]
        assert summary["Read"] is False
        assert imap.store("1", "+FLAGS", "\\Seen")[0] == "OK"
        assert api.get("/api/v1/messages").json()["messages"][0]["Read"] is True
        assert api.put("/api/v1/messages", json={"IDs": [summary["ID"]], "Read": False}).status_code == 200
    assert imap.noop()[0] == "OK"
    assert imap.untagged_responses.get("FETCH") == [b"1 (UID 1 FLAGS (\\Recent))"]
    assert imap.logout()[0] == "BYE"


def test_starttls_and_implicit_tls_with_the_sandbox_certificate(world: World) -> None:
    world.send()
    imap = imaplib.IMAP4(world.imap.host, world.imap.port, timeout=10)
    assert imap.starttls(ssl_context=world.client_ctx)[0] == "OK"
    assert imap.login(USER, "x")[0] == "OK"
    assert imap.select() == ("OK", [b"1"])
    assert imap.logout()[0] == "BYE"
    secure = imaplib.IMAP4_SSL(world.imap_tls.host, world.imap_tls.port, ssl_context=world.client_ctx, timeout=10)
    assert secure.login(USER, "x")[0] == "OK"
    status, data = secure.select("INBOX", readonly=True)
    assert (status, data) == ("OK", [b"1"])
    assert secure.logout()[0] == "BYE"
