"""Relay scenarios: a sandbox with a test zone and the relay on, the clients a test needs, the fixtures."""

from __future__ import annotations

import email
import email.policy
import smtplib
from collections.abc import Callable, Iterator, Sequence
from email.message import EmailMessage, Message
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailsandbox.app import SandboxThread
from mailsandbox.clock import ManualClock
from mailsandbox.config import Config, Listen
from mailsandbox.store import normalize_user

# The world the scenarios travel through. sender.test is ours (its MX is the sandbox), so
# bounces reach the sender even in strict mode.
ZONE = """\
$ORIGIN test.
$TTL 300
example.test.      MX 10 mx1.example.test.
example.test.      MX 20 mx2.example.test.
mx1.example.test.  A 192.0.2.1
mx2.example.test.  A 192.0.2.2
single.test.       MX 10 mx.single.test.
mx.single.test.    A 192.0.2.10
chain.test.        MX 10 gw1.chain.test.
gw1.chain.test.    A 192.0.2.21
gw2.chain.test.    A 192.0.2.22
mx.chain.test.     A 192.0.2.23
null.test.         MX 0 .
sender.test.       MX 10 mailsandbox.local.
bare.test.         A 192.0.2.30
"""

CHAIN = {
    "gw1.chain.test": {"relay_to": "gw2.chain.test"},
    "gw2.chain.test": {"relay_to": "mx.chain.test"},
}


class World:
    """One running sandbox plus the clients a scenario needs."""

    def __init__(self, thread: SandboxThread) -> None:
        self.thread = thread
        self.sandbox = thread.sandbox
        http = self.sandbox.address("http")
        self.http = httpx.Client(base_url=f"http://{http.host}:{http.port}", timeout=20)

    def close(self) -> None:
        """Stop the sandbox (its database stays for a restart); safe to call twice."""
        self.http.close()
        self.thread.stop()

    # -- sending ---------------------------------------------------------------------------
    def send(self, to: Sequence[str], sender: str = "alice@sender.test", subject: str = "Hello") -> str:
        """Send one message over real SMTP; returns its public id (from the 250 reply)."""
        msg = EmailMessage()
        msg["From"] = f"Alice <{sender or 'mailer-daemon@sender.test'}>"
        msg["To"] = ", ".join(to)
        msg["Subject"] = subject
        msg["Message-ID"] = email.utils.make_msgid(domain="sender.test")
        msg.set_content("Hi\n")
        smtp_addr = self.sandbox.address("smtp")
        with smtplib.SMTP(smtp_addr.host, smtp_addr.port, timeout=10) as client:
            client.ehlo("client.sender.test")
            client.mail(sender)
            for rcpt in to:
                code, _ = client.rcpt(rcpt)
                assert code == 250
            code, reply = client.data(msg.as_bytes())
        assert code == 250, reply
        return reply.decode().rsplit(" ", 1)[-1]

    # -- API ----------------------------------------------------------------------------------
    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, path, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.api(method, path, **kwargs)
        assert response.status_code < 300, (response.status_code, response.text)
        return response.json()

    def settle(self) -> dict[str, Any]:
        """Let the queue work through whatever is due, without moving time."""
        result: dict[str, Any] = self.ok("POST", "/api/sandbox/clock", json={"advance": 0})
        return result

    def advance(self, seconds: float) -> dict[str, Any]:
        result: dict[str, Any] = self.ok("POST", "/api/sandbox/clock", json={"advance": seconds})
        return result

    def next_retry(self) -> dict[str, Any]:
        result: dict[str, Any] = self.ok("POST", "/api/sandbox/clock", json={"next_retry": True})
        return result

    def set_host(self, host: str, behaviour: dict[str, Any] | str) -> None:
        self.ok("PUT", f"/api/sandbox/hosts/{host}", json=behaviour)

    def trace(self, message_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.ok("GET", f"/api/sandbox/message/{message_id}/trace")
        return result

    def queue(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.ok("GET", "/api/sandbox/queue")
        return result

    # -- mailboxes ----------------------------------------------------------------------------
    def mailbox_ids(self, user: str) -> list[str]:
        return [e.message_id for e in self.sandbox.store.entries(normalize_user(user), "INBOX")]

    def mailbox(self, user: str) -> list[EmailMessage]:
        """The messages in a user's INBOX as a mail client would read them (child copies included)."""
        store = self.sandbox.store
        out: list[EmailMessage] = []
        for entry in store.entries(normalize_user(user), "INBOX"):
            parsed = email.message_from_bytes(store.raw(entry.message_id), policy=email.policy.default)
            assert isinstance(parsed, EmailMessage)
            out.append(parsed)
        return out


def parts(message: Message) -> list[Message]:
    """The sub-parts of a multipart (or the field groups of a message/delivery-status part)."""
    payload = message.get_payload()
    assert isinstance(payload, list)
    found = [p for p in payload if isinstance(p, Message)]
    assert len(found) == len(payload)
    return found


def received(message: Message) -> list[str]:
    """A message's Received: lines, newest first, unfolded."""
    return [" ".join(str(value).split()) for value in message.get_all("Received") or []]


WorldFactory = Callable[..., World]


def _config(tmp_path: Path, **overrides: Any) -> Config:
    """Every listener on a free loopback port; the database under tmp_path (shared across restarts)."""
    zero = Listen("127.0.0.1", 0)
    base = Config(
        smtp=zero, http=zero, pop3=None, imap=None, dns=None,
        data_dir=tmp_path / "data", db=str(tmp_path / "data" / "mailsandbox.db"),
    )
    return base.replace(**overrides)


@pytest.fixture
def world_factory(tmp_path: Path) -> Iterator[WorldFactory]:
    """Start sandboxes (relay on, ZONE loaded); all stop at the end. Keyword arguments are Config
    overrides; `clock=` passes a ManualClock (to start one at a later time)."""
    zone_file = tmp_path / "world.zone"
    zone_file.write_text(ZONE)
    worlds: list[World] = []

    def start(clock: ManualClock | None = None, **overrides: Any) -> World:
        overrides.setdefault("zones", (zone_file,))
        overrides.setdefault("hosts", dict(CHAIN))
        settings = _config(tmp_path, **overrides)
        thread = SandboxThread(settings, clock)
        thread.start()
        world = World(thread)
        worlds.append(world)
        return world

    yield start
    for world in reversed(worlds):
        world.close()


@pytest.fixture
def world(world_factory: WorldFactory) -> World:
    """A catch-all sandbox (unknown domains are delivered locally) with ZONE and the relay on."""
    return world_factory()
