"""POP3 over real loopback sockets with Python's poplib: plain, STLS, implicit TLS."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import poplib
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar, cast

import pytest
import trustme

from mailsandbox.events import MessagesDeleted
from mailsandbox.models import Envelope
from mailsandbox.servers.pop3 import locks_for, start_pop3
from mailsandbox.store.sqlite import SqliteStore

T = TypeVar("T")


class Pop3Server:
    """A store and three POP3 listeners (plain+STLS, implicit TLS, with credentials) on a loop thread."""

    def __init__(self, ca: trustme.CA) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.store = SqliteStore(":memory:")
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
        self.client_ctx = ssl.create_default_context()
        ca.configure_trust(self.client_ctx)
        self.servers = [
            self.run(start_pop3("127.0.0.1", 0, self.store, server_ctx)),
            self.run(start_pop3("127.0.0.1", 0, self.store, server_ctx, implicit_tls=True)),
            self.run(start_pop3("127.0.0.1", 0, self.store, credentials={"alice@x.test": "s3cret"})),
        ]
        self.port, self.tls_port, self.auth_port = (s.sockets[0].getsockname()[1] for s in self.servers)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def deliver(self, user: str, raw: bytes) -> str:
        message = self.run(self.store.add_message(raw, Envelope("sender@x.test", (user,))))
        return message.id

    def client(self) -> poplib.POP3:
        return poplib.POP3("127.0.0.1", self.port, timeout=10)

    def login(self, user: str) -> poplib.POP3:
        pop = self.client()
        pop.user(user)
        pop.pass_("anything")
        return pop

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


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server(ca: trustme.CA) -> Iterator[Pop3Server]:
    srv = Pop3Server(ca)
    yield srv
    srv.stop()


@pytest.fixture
def user() -> str:
    return f"u{uuid.uuid4().hex[:10]}@example.test"  # one fresh mailbox per test


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def command(pop: poplib.POP3, line: str) -> bytes:
    """A command poplib has no method for (AUTH PLAIN), with poplib's own reply handling."""
    reply: bytes = pop._shortcmd(line)  # type: ignore[attr-defined]
    return reply


def message(n: int, extra: bytes = b"") -> bytes:
    return f"From: s@x.test\r\nSubject: message {n}\r\n\r\nbody {n}\r\n".encode() + extra


def test_session_commands(server: Pop3Server, user: str) -> None:
    raws = [message(i) for i in range(3)]
    for raw in raws:
        server.deliver(user, raw)
    pop = server.client()
    assert pop.getwelcome().startswith(b"+OK")
    caps = pop.capa()
    assert {"TOP", "UIDL", "USER", "SASL", "STLS", "PIPELINING"} <= set(caps)
    assert pop.user(user.upper()).startswith(b"+OK")
    assert pop.pass_("whatever").startswith(b"+OK maildrop has 3 messages")
    assert pop.stat() == (3, sum(len(r) for r in raws))
    _, listing, _ = pop.list()
    assert listing == [f"{i + 1} {len(r)}".encode() for i, r in enumerate(raws)]
    assert cast(bytes, pop.list(2)) == f"+OK 2 {len(raws[1])}".encode()
    _, uidls, _ = pop.uidl()
    assert len({line.split()[1] for line in uidls}) == 3
    assert pop.uidl(1).split()[2] == uidls[0].split()[1]
    _, lines, _ = pop.retr(2)
    assert b"\r\n".join(lines) + b"\r\n" == raws[1]
    _, lines, _ = pop.top(3, 0)
    assert lines == [b"From: s@x.test", b"Subject: message 2", b""]
    assert pop.noop() == b"+OK"
    with pytest.raises(poplib.error_proto, match="no such message"):
        pop.retr(9)
    assert pop.quit().startswith(b"+OK")


def test_deletions_take_effect_only_at_quit(server: Pop3Server, user: str) -> None:
    ids = [server.deliver(user, message(i)) for i in range(3)]
    deleted: list[str] = []
    unsubscribe = server.store.bus.subscribe(  # no loop in this thread: called on the publisher's
        lambda event: deleted.extend(event.ids) if isinstance(event, MessagesDeleted) else None
    )
    pop = server.login(user)
    pop.dele(1)
    pop.dele(3)
    assert pop.stat()[0] == 1
    assert [e.message_id for e in server.store.entries(user, "INBOX")] == ids  # not yet
    assert server.store.get(ids[0]) is not None
    pop.quit()
    assert [e.message_id for e in server.store.entries(user, "INBOX")] == [ids[1]]
    # The message was in no other folder, so it is gone from the store (the web UI sees it go).
    assert server.store.get(ids[0]) is None and server.store.get(ids[2]) is None
    wait_for(lambda: len(deleted) == 2)  # the store publishes just after its commit
    unsubscribe()
    assert sorted(deleted) == sorted([ids[0], ids[2]])  # what the web UI's live stream hears


def test_rset_undoes_dele_and_drop_without_quit_deletes_nothing(server: Pop3Server, user: str) -> None:
    ids = [server.deliver(user, message(i)) for i in range(2)]
    pop = server.login(user)
    pop.dele(1)
    assert pop.rset().startswith(b"+OK 2 ")
    pop.dele(2)
    pop.close()  # connection dropped without QUIT: RFC 1939 §6, no UPDATE
    locks = locks_for(server.store)
    wait_for(lambda: locks.acquire(user))
    locks.release(user)
    assert [e.message_id for e in server.store.entries(user, "INBOX")] == ids
    pop = server.login(user)
    pop.dele(1)
    pop.rset()
    pop.quit()
    assert [e.message_id for e in server.store.entries(user, "INBOX")] == ids


def test_second_session_is_refused_while_first_holds_the_lock(server: Pop3Server, user: str) -> None:
    server.deliver(user, message(1))
    first = server.login(user)
    second = server.client()
    second.user(user)
    with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
        second.pass_("x")
    tls = poplib.POP3_SSL("127.0.0.1", server.tls_port, context=server.client_ctx, timeout=10)
    tls.user(user)
    with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
        tls.pass_("x")
    tls.quit()
    first.quit()
    second.user(user)  # the refused session stays in AUTHORIZATION and may try again
    assert second.pass_("x").startswith(b"+OK")
    second.quit()


def test_uidl_is_stable_across_sessions(server: Pop3Server, user: str) -> None:
    for i in range(3):
        server.deliver(user, message(i))
    pop = server.login(user)
    first = pop.uidl()[1]
    pop.dele(2)
    pop.quit()
    server.deliver(user, message(9))
    pop = server.login(user)
    again = pop.uidl()[1]
    pop.quit()
    ids = [line.split()[1] for line in first]
    assert [line.split()[1] for line in again] == [ids[0], ids[2], again[2].split()[1]]
    assert again[2].split()[1] not in ids


def test_dot_stuffing_and_bare_lf(server: Pop3Server, user: str) -> None:
    raw = b"Subject: dots\n\n.starts with a dot\n..two dots\n.\nlast\n"
    server.deliver(user, raw)
    pop = server.login(user)
    # poplib removes the stuffing, so an exact round trip proves it was applied.
    assert pop.retr(1)[1] == [b"Subject: dots", b"", b".starts with a dot", b"..two dots", b".", b"last"]
    pop.sock.sendall(b"RETR 1\r\n")
    wire = b""
    while not wire.endswith(b"\r\n.\r\n"):
        wire += pop.sock.recv(4096)
    assert b"\r\n..starts with a dot\r\n...two dots\r\n..\r\nlast\r\n.\r\n" in wire
    assert b"\n" not in wire.replace(b"\r\n", b"")
    pop.quit()


def test_stls(server: Pop3Server, user: str) -> None:
    server.deliver(user, message(1))
    pop = server.client()
    assert pop.stls(server.client_ctx).startswith(b"+OK")
    assert "STLS" not in pop.capa()
    pop.user(user)
    pop.pass_("x")
    assert pop.stat()[0] == 1
    pop.quit()


def test_implicit_tls(server: Pop3Server, user: str) -> None:
    raw = message(1)
    server.deliver(user, raw)
    pop = poplib.POP3_SSL("127.0.0.1", server.tls_port, context=server.client_ctx, timeout=10)
    assert "STLS" not in pop.capa()
    pop.user(user)
    pop.pass_("x")
    assert b"\r\n".join(pop.retr(1)[1]) + b"\r\n" == raw
    pop.quit()


def test_auth_plain_and_credentials(server: Pop3Server) -> None:
    server.deliver("alice@x.test", message(1))
    pop = poplib.POP3("127.0.0.1", server.auth_port, timeout=10)
    pop.user("alice@x.test")
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        pop.pass_("wrong")
    bad = base64.b64encode(b"\0alice@x.test\0nope").decode()
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        command(pop, f"AUTH PLAIN {bad}")
    assert command(pop, "AUTH PLAIN") == b"+ "
    good = base64.b64encode(b"\0alice@x.test\0s3cret").decode()
    assert command(pop, good).startswith(b"+OK maildrop has 1 messages")
    assert pop.stat()[0] == 1
    pop.quit()
    pop = poplib.POP3("127.0.0.1", server.auth_port, timeout=10)
    assert command(pop, f"AUTH PLAIN {good}").startswith(b"+OK")
    pop.quit()


def test_auth_login_and_cram_md5_with_credentials(server: Pop3Server) -> None:
    # The SASL mechanisms POP3 shares with SMTP (sandbox/protocols/sasl.py), over a real socket.
    server.deliver("alice@x.test", message(1))
    drop = f"+OK maildrop has {len(server.store.entries('alice@x.test', 'INBOX'))} messages".encode()  # shared
    pop = poplib.POP3("127.0.0.1", server.auth_port, timeout=10)
    assert command(pop, "AUTH LOGIN") == b"+ " + base64.b64encode(b"Username:")
    assert command(pop, base64.b64encode(b"alice@x.test").decode()) == b"+ " + base64.b64encode(b"Password:")
    assert command(pop, base64.b64encode(b"s3cret").decode()).startswith(drop)
    pop.quit()
    pop = poplib.POP3("127.0.0.1", server.auth_port, timeout=10)
    challenge = base64.b64decode(command(pop, "AUTH CRAM-MD5")[2:])
    wrong = hmac.new(b"nope", challenge, hashlib.md5).hexdigest()
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        command(pop, base64.b64encode(f"alice@x.test {wrong}".encode()).decode())
    challenge = base64.b64decode(command(pop, "AUTH CRAM-MD5")[2:])
    digest = hmac.new(b"s3cret", challenge, hashlib.md5).hexdigest()
    assert command(pop, base64.b64encode(f"alice@x.test {digest}".encode()).decode()).startswith(drop)
    pop.quit()


def test_bad_commands_keep_the_session(server: Pop3Server, user: str) -> None:
    server.deliver(user, message(1))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"+OK")
        sock.sendall(b"BOGUS\r\n" + b"A" * 5000 + b"\r\nSTAT\r\n\xff\xfe\r\nUSER " + user.encode() + b"\r\n")
        assert reader.readline() == b"-ERR unknown command\r\n"
        assert reader.readline() == b"-ERR command line too long\r\n"
        assert reader.readline() == b"-ERR command not valid in this state\r\n"
        assert reader.readline() == b"-ERR unknown command\r\n"
        assert reader.readline().startswith(b"+OK")
        sock.sendall(b"PASS x\r\nRETR one\r\nDELE 7\r\nQUIT\r\n")  # pipelined (RFC 2449 §6.6)
        assert reader.readline().startswith(b"+OK maildrop")
        assert reader.readline() == b"-ERR syntax error\r\n"
        assert reader.readline() == b"-ERR no such message\r\n"
        assert reader.readline().startswith(b"+OK")
        assert reader.readline() == b""  # closed after QUIT
