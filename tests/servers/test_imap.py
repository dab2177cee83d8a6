"""IMAP over real loopback sockets with Python's imaplib: every command, TLS both ways, IDLE, two sessions."""

from __future__ import annotations

import asyncio
import email
import imaplib
import re
import socket
import ssl
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trustme

from mailsandbox.events import EventBus
from mailsandbox.models import Envelope
from mailsandbox.servers.imap import start_imap
from mailsandbox.store.sqlite import SqliteStore

T = TypeVar("T")
USER = "bob@example.test"


def sample(n: int, subject: str = "") -> bytes:
    return (
        f"From: Alice <alice@example.test>\r\nTo: Bob <{USER}>\r\nSubject: {subject or f'sample {n}'}\r\n"
        f"Date: Tue, 14 Nov 2023 10:00:00 +0000\r\nMessage-ID: <{n}@example.test>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n"
        f"--b\r\nContent-Type: text/plain\r\n\r\nplain {n}\r\n"
        f"--b\r\nContent-Type: text/html\r\n\r\n<p>html {n}</p>\r\n--b--\r\n"
    ).encode()


class ImapServer:
    """A store, a bus and IMAP listeners (plain+STARTTLS, implicit TLS, with credentials) on a loop thread."""

    def __init__(self, ca: trustme.CA, db: str = ":memory:", **options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.bus = EventBus()
        self.store = SqliteStore(db, bus=self.bus)
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
        self.client_ctx = ssl.create_default_context()
        ca.configure_trust(self.client_ctx)
        self.servers = [
            self.run(start_imap("127.0.0.1", 0, self.store, self.bus, server_ctx, **options)),
            self.run(start_imap("127.0.0.1", 0, self.store, self.bus, server_ctx, implicit_tls=True)),
            self.run(start_imap("127.0.0.1", 0, self.store, self.bus, credentials={"Alice@X.test": "pw1"})),
        ]
        self.port, self.tls_port, self.auth_port = (s.sockets[0].getsockname()[1] for s in self.servers)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def deliver(self, raw: bytes, user: str = USER) -> str:
        return self.run(self.store.add_message(raw, Envelope("alice@example.test", (user,)))).id

    def client(self) -> imaplib.IMAP4:
        return imaplib.IMAP4("127.0.0.1", self.port, timeout=10)

    def login(self) -> imaplib.IMAP4:
        imap = self.client()
        imap.login(USER, "anything")
        return imap

    def close(self) -> None:
        async def stop() -> None:
            for server in self.servers:
                server.close()  # also says BYE to sessions still open
            for server in self.servers:
                await server.wait_closed()

        self.run(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        self.store.close()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server(ca: trustme.CA) -> Iterator[ImapServer]:
    server = ImapServer(ca)
    yield server
    server.close()


def ok(result: tuple[str, Any]) -> Any:
    status, data = result
    assert status == "OK", data
    return data


def test_login_select_fetch(server: ImapServer) -> None:
    for n in (1, 2, 3):
        server.deliver(sample(n))
    imap = server.client()
    assert {"IMAP4REV1", "IDLE", "UIDPLUS", "MOVE", "LITERAL-", "STARTTLS"} <= set(imap.capabilities)
    ok(imap.login("Bob@Example.TEST", "x"))  # the user name is the address, compared case-insensitively
    assert ok(imap.select("INBOX")) == [b"3"]
    assert imap.untagged_responses.get("RECENT") == [b"3"]
    data = ok(imap.fetch("2", "(FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODYSTRUCTURE)"))
    assert data[0][1] == b"Subject: sample 2\r\n\r\n"
    assert data[1].startswith(b' BODYSTRUCTURE (("text" "plain"') and b'"alternative"' in data[1]
    raw = ok(imap.fetch("2", "(BODY[])"))[0][1]
    assert raw == server.store.raw(server.store.entries(USER, "INBOX")[1].message_id)
    assert email.message_from_bytes(raw)["Subject"] == "sample 2"
    assert ok(imap.fetch("2", "(FLAGS)")) == [b"2 (FLAGS (\\Seen \\Recent))"]  # BODY[] set \Seen
    assert ok(imap.fetch("1", "(BODY.PEEK[2] BODY.PEEK[1.MIME] ENVELOPE)"))[0][1] == b"<p>html 1</p>"
    assert ok(imap.uid("FETCH", "2:3", "(FLAGS)")) == [
        b"2 (UID 2 FLAGS (\\Seen \\Recent))",
        b"3 (UID 3 FLAGS (\\Recent))",
    ]
    assert ok(imap.search(None, "UNSEEN")) == [b"1 3"]
    assert ok(imap.uid("SEARCH", "SUBJECT", '"sample 3"')) == [b"3"]
    imap.literal = b"plain 1"  # type: ignore[assignment]  # typeshed says str; imaplib sends bytes
    assert ok(imap.search("UTF-8", "BODY")) == [b"1"]
    assert imap.logout()[0] == "BYE"


def test_store_copy_move_expunge(server: ImapServer) -> None:
    for n in (1, 2, 3, 4):
        server.deliver(sample(n))
    imap = server.login()
    ok(imap.create("Archive"))
    ok(imap.select("INBOX"))
    assert ok(imap.store("1", "+FLAGS", "(\\Flagged $Work)")) == [b"1 (FLAGS ($Work \\Flagged \\Recent))"]
    assert ok(imap.uid("STORE", "2", "FLAGS.SILENT", "(\\Answered)")) == [None]
    assert ok(imap.store("1", "-FLAGS", "$Work")) == [b"1 (FLAGS (\\Flagged \\Recent))"]
    ok(imap.copy("1:2", "Archive"))
    validity = server.store.folder(USER, "Archive").uidvalidity
    assert imap.response("COPYUID") == ("COPYUID", [b"%d 1:2 1:2" % validity])  # RFC 4315
    ok(imap.uid("MOVE", "3", "Archive"))
    assert imap.response("COPYUID") == ("COPYUID", [b"%d 3 3" % validity])
    assert imap.response("EXPUNGE") == ("EXPUNGE", [b"3"])
    ok(imap.store("1", "+FLAGS", "\\Deleted"))
    ok(imap.expunge())
    assert ok(imap.search(None, "ALL")) == [b"1 2"]
    ok(imap.store("1:2", "+FLAGS.SILENT", "\\Deleted"))
    ok(imap.uid("EXPUNGE", "2"))
    assert [e.uid for e in server.store.entries(USER, "INBOX")] == [4]
    assert [(e.uid, sorted(e.flags)) for e in server.store.entries(USER, "Archive")] == [
        (1, ["\\Flagged"]),
        (2, ["\\Answered"]),
        (3, []),
    ]
    ok(imap.check())
    ok(imap.close())
    assert imap.logout()[0] == "BYE"


def test_mailboxes(server: ImapServer, monkeypatch: pytest.MonkeyPatch) -> None:
    imap = server.login()
    ok(imap.create("Work/Projects"))
    ok(imap.create("Trash"))
    assert ok(imap.list()) == [
        b'(\\HasNoChildren) "/" "INBOX"',
        b'(\\HasNoChildren) "/" "Trash"',
        b'(\\HasChildren) "/" "Work"',
        b'(\\HasNoChildren) "/" "Work/Projects"',
    ]
    assert ok(imap.list("Work/", "%")) == [b'(\\HasNoChildren) "/" "Work/Projects"']
    ok(imap.rename("Work", "Job"))
    ok(imap.unsubscribe("Trash"))
    assert ok(imap.lsub()) == [b'() "/" "INBOX"', b'() "/" "Job"', b'() "/" "Job/Projects"']
    ok(imap.subscribe("Trash"))
    ok(imap.delete("Trash"))
    assert imap.delete("Trash")[0] == "NO"
    assert imap.select("Trash")[0] == "NO"
    ok(imap.append("Job", "(\\Seen)", imaplib.Time2Internaldate(1_700_000_000), sample(9)))
    status = ok(imap.status("Job", "(MESSAGES UNSEEN UIDNEXT)"))
    assert status == [b'"Job" (MESSAGES 1 UNSEEN 0 UIDNEXT 2)']
    assert ok(imap.select("Job", readonly=True)) == [b"1"]  # EXAMINE
    assert imap.store("1", "+FLAGS", "\\Deleted")[0] == "NO"  # EXAMINE is read-only
    assert ok(imap.fetch("1", "(INTERNALDATE)")) == [b'1 (INTERNALDATE "14-Nov-2023 22:13:20 +0000")']
    ok(imap.unselect())
    assert ok(imap.namespace()) == [b'(("" "/")) NIL NIL']
    ok(imap.enable("CONDSTORE"))
    monkeypatch.setitem(imaplib.Commands, "ID", ("NONAUTH", "AUTH", "SELECTED"))
    typ, data = imap._simple_command("ID", '("name" "imaplib")')
    assert typ == "OK" and imap._untagged_response(typ, data, "ID")[1] == [
        b'("name" "Mailsandbox" "vendor" "Mailsandbox")'
    ]
    ok(imap.noop())
    assert imap.logout()[0] == "BYE"


def test_authenticate_plain_and_credentials(server: ImapServer) -> None:
    imap = imaplib.IMAP4("127.0.0.1", server.auth_port, timeout=10)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        imap.login("alice@x.test", "wrong")
    ok(imap.authenticate("PLAIN", lambda _: b"\0ALICE@x.test\0pw1"))
    ok(imap.select())
    assert imap.logout()[0] == "BYE"


def test_starttls_and_implicit_tls(server: ImapServer) -> None:
    server.deliver(sample(1))
    imap = server.client()
    ok(imap.starttls(ssl_context=server.client_ctx))
    assert "STARTTLS" not in imap.capabilities
    ok(imap.login(USER, "x"))
    assert ok(imap.select()) == [b"1"]
    assert imap.logout()[0] == "BYE"
    secure = imaplib.IMAP4_SSL("127.0.0.1", server.tls_port, ssl_context=server.client_ctx, timeout=10)
    assert "STARTTLS" not in secure.capabilities
    ok(secure.login(USER, "x"))
    ok(secure.select())
    assert ok(secure.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))[0][1] == b"Subject: sample 1\r\n\r\n"
    assert secure.logout()[0] == "BYE"


def idle_until(imap: imaplib.IMAP4, tag: bytes, pattern: bytes, act: Any) -> tuple[list[bytes], float]:
    """IDLE (RFC 2177), do `act`, read untagged lines until one matches; returns them and the wait."""
    imap.send(tag + b" IDLE\r\n")
    while not imap.readline().startswith(b"+ "):
        pass  # news that was waiting comes first
    started = time.monotonic()
    act()
    lines = [imap.readline()]
    while not re.search(pattern, lines[-1]):
        lines.append(imap.readline())
    waited = time.monotonic() - started
    imap.send(b"DONE\r\n")
    while not lines[-1].startswith(tag + b" "):
        lines.append(imap.readline())
    assert lines[-1] == tag + b" OK IDLE terminated\r\n"
    return lines, waited


def test_two_sessions_see_each_others_flags_and_idle_wakes(server: ImapServer) -> None:
    server.deliver(sample(1))
    first, second = server.login(), server.login()
    ok(first.select())
    ok(second.select())
    ok(first.store("1", "+FLAGS", "\\Flagged"))
    ok(second.noop())
    assert second.untagged_responses.get("FETCH") == [b"1 (UID 1 FLAGS (\\Flagged))"]
    lines, waited = idle_until(second, b"I1", rb"FETCH", lambda: ok(first.store("1", "-FLAGS", "\\Flagged")))
    assert lines[0] == b"* 1 FETCH (UID 1 FLAGS ())\r\n" and waited < 0.5
    lines, waited = idle_until(first, b"I2", rb"EXISTS", lambda: server.deliver(sample(2)))
    assert b"* 2 EXISTS\r\n" in lines and waited < 0.5
    # The web UI marks a message read: the store's flag change reaches the IDLE session too.
    mid = server.store.entries(USER, "INBOX")[1].message_id
    lines, _ = idle_until(second, b"I3", rb"FETCH", lambda: server.run(server.store.set_read([mid], True)))
    assert any(b"2 FETCH (UID 2 FLAGS (\\Seen" in line for line in lines)
    for imap in (first, second):
        assert imap.logout()[0] == "BYE"


def test_hostile_input_keeps_the_session(server: ImapServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        stream = sock.makefile("rwb")
        assert stream.readline().startswith(b"* OK [CAPABILITY")
        flood = b"b NOOP " + b"x" * 5_000_000 + b"\r\n"  # memory stays bounded; reading pauses as needed
        for line in (b"\x00\xff garbage\r\n", b"a FETCH\r\n", b"b NOOP " + b"x" * 70_000 + b"\r\n", flood):
            stream.write(line)
            stream.flush()
            assert b" BAD " in stream.readline()
        stream.write(b"c LOGIN {16+}\r\nbob@example.test x\r\nd APPEND INBOX {12+}\r\nSubject: x\r\n\r\n")
        stream.flush()
        assert stream.readline().startswith(b"c OK")
        assert stream.readline().startswith(b"d OK [APPENDUID ")
        stream.write(b"e LOGOUT\r\n")
        stream.flush()
        assert stream.readline() == b"* BYE Mailsandbox logging out\r\n"
        assert stream.readline() == b"e OK LOGOUT completed\r\n"
        assert stream.readline() == b""  # the server closed the connection


def test_literal_limit(ca: trustme.CA) -> None:
    server = ImapServer(ca, max_literal=1000)
    try:
        imap = server.login()
        status, data = imap.append("INBOX", None, None, b"x" * 1001)  # RFC 7889: NO [TOOBIG], no "+"
        assert (status, data) == ("NO", [b"[TOOBIG] Message over the 1000 byte limit"])
        assert "APPENDLIMIT=1000" in imap.capabilities
        ok(imap.append("INBOX", None, None, b"Subject: small\r\n\r\nok\r\n"))
        assert ok(imap.select()) == [b"1"]
        assert imap.logout()[0] == "BYE"
    finally:
        server.close()


def test_uids_survive_a_restart(ca: trustme.CA, tmp_path: Path) -> None:
    db = str(tmp_path / "imap.db")
    server = ImapServer(ca, db)
    for n in (1, 2, 3):
        server.deliver(sample(n))
    imap = server.login()
    ok(imap.select())
    ok(imap.store("2", "+FLAGS", "\\Deleted"))
    ok(imap.expunge())
    validity = imap.response("UIDVALIDITY")
    before = ok(imap.uid("SEARCH", "ALL"))
    assert imap.logout()[0] == "BYE"
    server.close()

    again = ImapServer(ca, db)
    try:
        imap = again.login()
        ok(imap.select())
        assert imap.response("UIDVALIDITY") == validity
        assert ok(imap.uid("SEARCH", "ALL")) == before == [b"1 3"]
        assert imap.logout()[0] == "BYE"
    finally:
        again.close()
