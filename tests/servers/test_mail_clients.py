"""Independent mail clients from Debian (fetchmail, mbsync) read what was sent over SMTP."""

from __future__ import annotations

import os
import re
import smtplib
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from mailsandbox.app import Sandbox
from mailsandbox.config import Listen
from tests.conftest import require_binary

T = TypeVar("T")
USER = "bob@example.test"


@dataclass
class Mailhost:
    sandbox: Sandbox
    listeners: dict[str, Listen]
    cert: Path  # the sandbox's self-signed certificate: clients trust exactly it

    def send(self, raw: bytes, rcpt: str = USER) -> None:
        smtp = self.sandbox.address("smtp")
        with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as client:
            client.sendmail("alice@example.test", [rcpt], raw)

    def stored(self) -> list[bytes]:
        """The INBOX as the store holds it, in UID order."""
        store = self.sandbox.store
        return [store.raw(e.message_id) for e in store.entries(USER, "INBOX")]


@pytest.fixture
def mailhost(sandbox_factory: Callable[..., Sandbox]) -> Mailhost:
    zero = Listen("127.0.0.1", 0)
    sandbox = sandbox_factory(pop3_tls_port=zero, imap_tls_port=zero)
    listeners = {n: sandbox.address(n) for n in ("pop3", "pop3_tls", "imap")}
    return Mailhost(sandbox, listeners, sandbox.config.data_dir / "tls" / "cert.pem")


def sample(n: int) -> bytes:
    # Lines a naive client or server would break: a leading dot, a lone dot, trailing spaces, 8-bit text.
    return (
        f"From: Alice <alice@example.test>\r\nTo: {USER}\r\nSubject: sample {n}\r\n"
        f"Message-ID: <{n}@example.test>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        f"Hello {n} \u00e9t\u00e9\r\n.leading dot\r\n.\r\n..\r\ntrailing space  \r\n\r\nend\r\n"
    ).encode()


def lf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n")  # both clients hand over messages with Unix line ends


def assert_same_mail(got: list[bytes], stored: list[bytes], sent: list[bytes]) -> None:
    """What the client wrote is what the store holds, which is what SMTP sent plus our Received: line."""
    assert sorted(got) == sorted(lf(raw) for raw in stored)
    for raw, original in zip(stored, sent, strict=True):
        assert raw.endswith(original) and raw.startswith(b"Received: ")


class Fetchmail:
    """Debian's fetchmail polling our POP3 port, delivering each message into a directory."""

    def __init__(self, tmp: Path, host: Mailhost, implicit_tls: bool = False) -> None:
        self.binary = require_binary("fetchmail")
        self.home = tmp / "fetchmail"
        self.home.mkdir(mode=0o700)
        self.out = tmp / "delivered"
        self.out.mkdir()
        self.host = host
        self.listen = host.listeners["pop3_tls" if implicit_tls else "pop3"]
        self.implicit_tls = implicit_tls
        self.log = ""

    def run(self, options: str) -> tuple[int, list[bytes]]:
        """One poll; returns fetchmail's exit status and the messages delivered by this poll."""
        before = set(self.out.iterdir())
        tls = "ssl" if self.implicit_tls else "sslproto tls1.2+"  # sslproto alone: STLS, mandatory
        hostname = self.host.sandbox.config.hostname
        rc = self.home / "fetchmailrc"
        rc.write_text(
            "set no bouncemail\n"
            f"poll {self.listen.host} with proto POP3 port {self.listen.port} auth password\n"
            f'  user "{USER}" there with password "any" is "nobody" here\n'
            f"  options {options} no rewrite {tls}\n"
            f"  sslcertck sslcertfile {self.host.cert} sslcommonname {hostname}\n"
            f"  mda \"/bin/sh -c 'cat > $(mktemp {self.out}/msg.XXXXXX)'\"\n"
        )
        rc.chmod(0o600)
        env = {**os.environ, "FETCHMAILHOME": str(self.home), "HOME": str(self.home)}
        argv = [self.binary, "-f", str(rc), "--idfile", str(self.home / "ids"), "--nodetach", "--nosyslog"]
        done = subprocess.run(  # our own fixed argv
            [*argv, "--invisible", "-v"], env=env, capture_output=True, timeout=60, check=False
        )
        self.log = done.stdout.decode() + done.stderr.decode()
        assert done.returncode in (0, 1), self.log  # 1: no mail
        return done.returncode, [p.read_bytes() for p in sorted(set(self.out.iterdir()) - before)]


def test_fetchmail_over_stls_keeps_uidl_state_then_deletes(mailhost: Mailhost, tmp_path: Path) -> None:
    fetch = Fetchmail(tmp_path, mailhost)
    sent = [sample(n) for n in range(3)]
    for raw in sent:
        mailhost.send(raw)
    stored = mailhost.stored()

    status, got = fetch.run("keep")
    assert status == 0
    assert "POP3> STLS" in fetch.log and "POP3> UIDL" in fetch.log
    assert_same_mail(got, stored, sent)

    # UIDL tells fetchmail what it already has: only the new message comes down.
    mailhost.send(sample(3))
    status, got = fetch.run("keep")
    assert_same_mail(got, mailhost.stored()[3:], [sample(3)])
    status, got = fetch.run("keep")
    assert status == 1 and got == []

    # Without "keep" fetchmail deletes what it fetched: DELE, then QUIT makes it so in the store.
    ids = [e.message_id for e in mailhost.sandbox.store.entries(USER, "INBOX")]
    status, got = fetch.run("fetchall no keep")
    assert len(got) == 4
    assert mailhost.sandbox.store.entries(USER, "INBOX") == []
    assert all(mailhost.sandbox.store.get(i) is None for i in ids)


def test_fetchmail_over_implicit_tls(mailhost: Mailhost, tmp_path: Path) -> None:
    fetch = Fetchmail(tmp_path, mailhost, implicit_tls=True)
    mailhost.send(sample(7))
    status, got = fetch.run("keep")
    assert status == 0
    assert_same_mail(got, mailhost.stored(), [sample(7)])


def maildir_messages(folder: Path) -> dict[str, bytes]:
    # mbsync adds one header of its own, X-TUID, to recognise a message it is still propagating.
    return {
        p.name.split(",")[0]: re.sub(rb"\nX-TUID: [^\n]*\n", b"\n", p.read_bytes(), count=1)
        for sub in ("cur", "new")
        for p in (folder / sub).iterdir()
    }


def test_mbsync_pulls_inbox_over_starttls(mailhost: Mailhost, tmp_path: Path) -> None:
    binary = require_binary("mbsync")
    if "imap" not in mailhost.listeners:
        pytest.skip("no IMAP server yet")
    imap = mailhost.listeners["imap"]
    local = tmp_path / "Mail"
    local.mkdir()
    rc = tmp_path / "mbsyncrc"
    rc.write_text(
        f"IMAPAccount sandbox\nHost {imap.host}\nPort {imap.port}\nUser {USER}\nPass any\n"
        f"SSLType STARTTLS\nCertificateFile {mailhost.cert}\nAuthMechs PLAIN\n\n"
        "IMAPStore far\nAccount sandbox\n\n"
        f"MaildirStore near\nPath {local}/\nInbox {local}/INBOX\n\n"
        "Channel inbox\nFar :far:\nNear :near:\nPatterns INBOX\nCreate Near\nSync Pull\n"
        f"SyncState {tmp_path}/state/\n"
    )
    (tmp_path / "state").mkdir()

    def sync() -> None:
        done = subprocess.run(  # our own fixed argv
            [binary, "-c", str(rc), "-a"], capture_output=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()

    sent = [sample(n) for n in range(3)]
    for raw in sent:
        mailhost.send(raw)
    sync()
    first = maildir_messages(local / "INBOX")
    assert_same_mail(list(first.values()), mailhost.stored(), sent)

    mailhost.send(sample(3))
    sync()
    second = maildir_messages(local / "INBOX")
    new = [raw for name, raw in second.items() if name not in first]
    assert_same_mail(new, mailhost.stored()[3:], [sample(3)])
    assert len(second) == 4


def test_swaks_pipelines_over_starttls_with_auth(mailhost: Mailhost, tmp_path: Path) -> None:
    # swaks (Perl, OpenSSL through Net::SSLeay), the tool the README suggests, as a third-party SMTP client.
    swaks = require_binary("swaks")
    smtp = mailhost.sandbox.address("smtp")
    message = tmp_path / "message.eml"
    message.write_bytes(sample(7))
    done = subprocess.run(
        [swaks, "--server", f"{smtp.host}:{smtp.port}", "--from", "alice@example.test", "--to", USER,
         "--tls", "--pipeline", "--auth", "LOGIN", "--auth-user", "app", "--auth-password", "secret",
         "--data", str(message), "--timeout", "10"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    [stored] = mailhost.stored()
    # Dot-stuffed by swaks, unstuffed by us: the lines come back exactly (swaks ends DATA with a CRLF of its own).
    assert stored.endswith(sample(7) + b"\r\n")
    [summary] = mailhost.sandbox.store.list().messages
    assert summary.envelope.tls and summary.envelope.auth_user == "app"
