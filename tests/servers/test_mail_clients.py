"""Independent mail clients from Debian (fetchmail) read the sandbox's mailboxes over loopback."""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import subprocess
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trustme

from sandbox.models import Envelope
from sandbox.servers.pop3 import start_pop3
from sandbox.store.sqlite import SqliteStore

T = TypeVar("T")
USER = "bob@example.test"
CERT_NAME = "mail.example.test"  # clients check this name, not the loopback address


def need(binary: str) -> str:
    """The client's path; a missing client skips, except in CI where .ci/run installs it."""
    path = shutil.which(binary)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{binary} is not installed; .ci/run must install it")
        pytest.skip(f"{binary} is not installed")
    return path


class MailServers:
    """The store plus a POP3 listener (STLS and implicit TLS) on a loop thread."""

    def __init__(self, ca: trustme.CA) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.store = SqliteStore(":memory:")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(CERT_NAME, "127.0.0.1", common_name=CERT_NAME).configure_cert(context)
        self.servers = [
            self.run(start_pop3("127.0.0.1", 0, self.store, context)),
            self.run(start_pop3("127.0.0.1", 0, self.store, context, implicit_tls=True)),
        ]
        self.pop3_port, self.pop3s_port = (s.sockets[0].getsockname()[1] for s in self.servers)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def send(self, raw: bytes, rcpt: str = USER) -> str:
        """Put a message in `rcpt`'s INBOX; returns its store id."""
        return self.run(self.store.add_message(raw, Envelope("alice@example.test", (rcpt,)))).id

    def stop(self) -> None:
        async def close() -> None:
            for server in self.servers:
                server.close()
                await server.wait_closed()

        self.run(close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        self.store.close()


@pytest.fixture
def servers() -> Iterator[tuple[MailServers, trustme.CA]]:
    ca = trustme.CA()
    srv = MailServers(ca)
    yield srv, ca
    srv.stop()


def sample(n: int) -> bytes:
    # Lines a naive client or server would break: a leading dot, a lone dot, trailing spaces, 8-bit text.
    return (
        f"From: Alice <alice@example.test>\r\nTo: {USER}\r\nSubject: sample {n}\r\n"
        f"Message-ID: <{n}@example.test>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        f"Hello {n} \u00e9t\u00e9\r\n.leading dot\r\n.\r\n..\r\ntrailing space  \r\n\r\nend\r\n"
    ).encode()


def lf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n")  # an MDA gets Unix line ends from fetchmail


class Fetchmail:
    """Runs Debian's fetchmail against our POP3 port, delivering each message into a directory."""

    def __init__(self, tmp: Path, ca: trustme.CA, port: int, implicit_tls: bool = False) -> None:
        self.binary = need("fetchmail")
        self.home = tmp / "fetchmail"
        self.home.mkdir(mode=0o700)
        self.out = tmp / "delivered"
        self.out.mkdir()
        self.ca_file = tmp / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        self.port = port
        self.implicit_tls = implicit_tls

    def run(self, options: str) -> tuple[int, list[bytes]]:
        """One poll; returns fetchmail's exit status and the messages delivered by this poll."""
        before = set(self.out.iterdir())
        tls = "ssl" if self.implicit_tls else "sslproto tls1.2+"
        rc = self.home / "fetchmailrc"
        rc.write_text(
            "set no bouncemail\n"
            f"poll 127.0.0.1 with proto POP3 port {self.port} auth password\n"
            f'  user "{USER}" there with password "any" is "nobody" here\n'
            f"  options {options} no rewrite {tls}\n"
            f"  sslcertck sslcertfile {self.ca_file} sslcommonname {CERT_NAME}\n"
            f"  mda \"/bin/sh -c 'cat > $(mktemp {self.out}/msg.XXXXXX)'\"\n"
        )
        rc.chmod(0o600)
        env = {**os.environ, "FETCHMAILHOME": str(self.home), "HOME": str(self.home)}
        done = subprocess.run(  # noqa: S603  # our own fixed argv
            [self.binary, "-f", str(rc), "--idfile", str(self.home / "ids"), "--nodetach", "--nosyslog",
             "--invisible", "-v"],
            env=env, capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        self.log = done.stdout.decode() + done.stderr.decode()
        assert done.returncode in (0, 1), self.log  # 1: no mail
        return done.returncode, [p.read_bytes() for p in sorted(set(self.out.iterdir()) - before)]


def test_fetchmail_over_stls_keeps_uidl_state_then_deletes(
    servers: tuple[MailServers, trustme.CA], tmp_path: Path
) -> None:
    srv, ca = servers
    sent = [sample(n) for n in range(3)]
    ids = [srv.send(raw) for raw in sent]
    stored = [srv.store.raw(i) for i in ids]
    assert all(raw.endswith(s) for raw, s in zip(stored, sent, strict=True))  # what SMTP sent, maybe traced
    fetch = Fetchmail(tmp_path, ca, srv.pop3_port)

    status, got = fetch.run("keep")
    assert status == 0
    assert "POP3> STLS" in fetch.log and "POP3> UIDL" in fetch.log
    assert sorted(got) == sorted(lf(raw) for raw in stored)

    # UIDL tells fetchmail what it already has: only the new message comes down.
    new = sample(3)
    ids.append(srv.send(new))
    status, got = fetch.run("keep")
    assert got == [lf(srv.store.raw(ids[-1]))]
    assert got[0].endswith(lf(new))

    status, got = fetch.run("keep")
    assert status == 1 and got == []

    # Without "keep" fetchmail deletes what it fetched: DELE, then QUIT makes it so in the store.
    status, got = fetch.run("fetchall no keep")
    assert len(got) == 4
    assert srv.store.entries(USER, "INBOX") == []
    assert all(srv.store.get(i) is None for i in ids)


def test_fetchmail_over_implicit_tls(servers: tuple[MailServers, trustme.CA], tmp_path: Path) -> None:
    srv, ca = servers
    sent = sample(7)
    mid = srv.send(sent)
    fetch = Fetchmail(tmp_path, ca, srv.pop3s_port, implicit_tls=True)
    status, got = fetch.run("keep")
    assert status == 0 and got == [lf(srv.store.raw(mid))]
    assert got[0].endswith(lf(sent))
