"""Bounded resources on POP3, IMAP and DNS over loopback: connection limits and their refusals, 1,000
idle connections, timeouts before and after login, the IMAP literal limits, and executors that keep
releases to a dead upstream from stalling IMAP."""

from __future__ import annotations

import asyncio
import imaplib
import os
import poplib
import selectors
import smtplib
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import dns.message
import dns.query
import httpx
import pytest

from mailsandbox.app import Sandbox
from mailsandbox.servers.imap import start_imap
from mailsandbox.servers.pop3 import start_pop3
from mailsandbox.store.sqlite import SqliteStore

T = TypeVar("T")
Factory = Callable[..., Sandbox]
USER = "bob@example.test"


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def connect(sandbox: Sandbox, name: str, source: str = "127.0.0.1") -> socket.socket:
    address = sandbox.address(name)
    return socket.create_connection((address.host, address.port), timeout=10, source_address=(source, 0))


def first_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(4096) == b""
    except ConnectionResetError:
        return True


def dns_query_tcp(sock: socket.socket, name: str) -> dns.message.Message:
    query = dns.message.make_query(name, "MX")
    dns.query.send_tcp(sock, query)
    response, _ = dns.query.receive_tcp(sock, time.time() + 5)
    assert response.id == query.id
    return response


def send_mail(sandbox: Sandbox, to: str = USER, body: bytes = b"Subject: hi\r\n\r\nhello\r\n") -> None:
    smtp = sandbox.address("smtp")
    with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as client:
        client.sendmail("alice@example.test", [to], body)


GREETING = {"pop3": b"+OK ", "imap": b"* OK "}
REFUSAL = {
    "pop3": b"-ERR [SYS/TEMP] too many connections\r\n",  # RFC 3206
    "imap": b"* BYE [UNAVAILABLE] too many connections\r\n",  # RFC 5530
}
COMMAND = {"pop3": (b"CAPA\r\n", b"+OK"), "imap": (b"a NOOP\r\n", b"a OK")}


# -- connection limits -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pop3", "imap"])
def test_limits_refuse_with_the_protocols_answer_and_free_up(sandbox_factory: Factory, name: str) -> None:
    sandbox = sandbox_factory(max_connections=3, max_connections_per_client=2)
    limiter = sandbox.limiter(name)
    a1, a2 = connect(sandbox, name), connect(sandbox, name)
    assert first_line(a1).startswith(GREETING[name]) and first_line(a2).startswith(GREETING[name])
    over_client = connect(sandbox, name)  # a third from 127.0.0.1
    assert first_line(over_client) == REFUSAL[name] and closed_by_server(over_client)
    b1 = connect(sandbox, name, "127.0.0.2")  # another client: the third place overall
    assert first_line(b1).startswith(GREETING[name])
    over_total = connect(sandbox, name, "127.0.0.3")
    assert first_line(over_total) == REFUSAL[name] and closed_by_server(over_total)
    command, reply = COMMAND[name]
    for admitted in (a1, a2, b1):  # the admitted sessions go on working
        admitted.sendall(command)
        assert first_line(admitted).startswith(reply)
    assert (limiter.active, limiter.refused) == (3, 2)
    a1.close()
    wait_for(lambda: limiter.active == 2)  # the place is given back when the connection goes
    c1 = connect(sandbox, name, "127.0.0.3")
    assert first_line(c1).startswith(GREETING[name])
    for sock in (a2, b1, c1, over_client, over_total):
        sock.close()
    wait_for(lambda: limiter.active == 0)


def test_dns_tcp_limit_closes_and_frees_up(sandbox_factory: Factory) -> None:
    sandbox = sandbox_factory(max_connections=3, max_connections_per_client=2)
    limiter = sandbox.limiter("dns")
    a1, a2, b1 = connect(sandbox, "dns"), connect(sandbox, "dns"), connect(sandbox, "dns", "127.0.0.2")
    refused = connect(sandbox, "dns")
    assert closed_by_server(refused)  # DNS has no refusal message: the connection is closed
    for sock in (a1, a2, b1):
        assert dns_query_tcp(sock, "example.test").answer
    a1.close()
    wait_for(lambda: limiter.active == 2)
    again = connect(sandbox, "dns")
    assert dns_query_tcp(again, "example.test").answer
    for sock in (a2, b1, again, refused):
        sock.close()


def test_a_thousand_idle_connections_leave_every_server_usable(sandbox_factory: Factory) -> None:
    sandbox = sandbox_factory()  # the default limits: 1,000 per listener, 200 per client address
    send_mail(sandbox)
    idle: list[socket.socket] = []
    try:
        for name, count in (("pop3", 400), ("imap", 400), ("dns", 200)):
            idle += open_idle(sandbox, name, count)
        wait_for(lambda: sum(sandbox.limiter(n).active for n in ("pop3", "imap", "dns")) == 1000)
        over = connect(sandbox, "imap", "127.0.0.2")  # the 201st from one address
        assert first_line(over) == REFUSAL["imap"]
        over.close()
        started = time.perf_counter()
        imap_address, pop3_address = sandbox.address("imap"), sandbox.address("pop3")
        imap = imaplib.IMAP4(imap_address.host, imap_address.port, timeout=10)
        imap.login(USER, "x")
        assert imap.select("INBOX") == ("OK", [b"1"])
        fetched = imap.fetch("1", "(BODY[])")[1][0]
        assert isinstance(fetched, tuple) and b"hello" in fetched[1]
        imap.logout()
        pop = poplib.POP3(pop3_address.host, pop3_address.port, timeout=10)
        pop.user(USER)
        pop.pass_("x")
        assert pop.stat()[0] == 1
        pop.quit()
        with connect(sandbox, "dns") as sock:
            assert dns_query_tcp(sock, "example.test").answer
        send_mail(sandbox)
        http = sandbox.address("http")
        httpx.get(f"http://{http.host}:{http.port}/livez", timeout=10).raise_for_status()
        assert time.perf_counter() - started < 5
    finally:
        for sock in idle:
            sock.close()
    wait_for(lambda: sum(sandbox.limiter(n).active for n in ("pop3", "imap", "dns")) == 0)


def open_idle(sandbox: Sandbox, name: str, count: int) -> list[socket.socket]:
    """`count` connections that never send, 200 per source address (127.0.0.2, .3, ...). Connected 50 at a
    time without blocking (one blocking connect at a time waits on the sandbox thread for the GIL), each
    batch accepted before the next, so the listen backlog never overflows into SYN-ACK retries."""
    address = sandbox.address(name)
    limiter = sandbox.limiter(name)
    base = limiter.active
    sockets: list[socket.socket] = []
    with selectors.DefaultSelector() as selector:
        for i in range(count):
            sock = socket.socket()
            sock.setblocking(False)
            sock.bind((f"127.0.0.{2 + i // 200}", 0))
            sock.connect_ex((address.host, address.port))
            sockets.append(sock)
            selector.register(sock, selectors.EVENT_WRITE)
            if len(sockets) % 50 and len(sockets) < count:
                continue
            while selector.get_map():
                ready = selector.select(10)
                assert ready, "connections did not complete"
                for key, _ in ready:
                    selector.unregister(key.fileobj)
            wait_for(lambda: limiter.active == base + len(sockets))
    return sockets


# -- timeouts before and after login -----------------------------------------------------------------


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


async def closed(server: asyncio.AbstractServer) -> None:
    server.close()
    await server.wait_closed()


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.stop()


def seconds_until_closed(sock: socket.socket) -> tuple[float, bytes]:
    started, received = time.perf_counter(), b""
    sock.settimeout(10)
    while chunk := sock.recv(4096):
        received += chunk
    return time.perf_counter() - started, received


@pytest.mark.parametrize("protocol", ["pop3", "imap"])
def test_silence_before_login_is_cut_short_after_login_is_not(loop_thread: LoopThread, protocol: str) -> None:
    store = SqliteStore(":memory:")
    if protocol == "pop3":
        server = loop_thread.run(start_pop3("127.0.0.1", 0, store, login_timeout=0.3, idle_timeout=1.2))
        login = f"USER {USER}\r\nPASS x\r\n".encode()
    else:
        bus = store.bus
        server = loop_thread.run(start_imap("127.0.0.1", 0, store, bus, login_timeout=0.3, autologout=1.2))
        login = f"a LOGIN {USER} x\r\n".encode()
    port = server.sockets[0].getsockname()[1]
    try:
        with socket.create_connection(("127.0.0.1", port)) as silent:
            first_line(silent)
            waited, said = seconds_until_closed(silent)
            assert 0.2 < waited < 1.0, waited  # the short timer before login
            if protocol == "imap":
                assert said == b"* BYE Login timeout\r\n"
        with socket.create_connection(("127.0.0.1", port)) as session:
            first_line(session)
            session.sendall(login)
            reply = b""
            while reply.count(b"\r\n") < (2 if protocol == "pop3" else 1):
                reply += session.recv(4096)
            assert b"OK" in reply.splitlines()[-1]
            waited, said = seconds_until_closed(session)
            assert waited > 1.0, waited  # logged in: the autologout timer, not the login one
            if protocol == "imap":
                assert said == b"* BYE Autologout; idle for too long\r\n"
    finally:
        loop_thread.run(closed(server))  # on its loop: a close from this thread raced the last session's end
        store.close()


# -- IMAP literals ----------------------------------------------------------------------------------


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_append_over_the_message_size_limit_is_refused_without_sending_it(sandbox_factory: Factory) -> None:
    sandbox = sandbox_factory(max_message_size=1024 * 1024)
    address = sandbox.address("imap")
    imap = imaplib.IMAP4(address.host, address.port, timeout=10)
    assert "APPENDLIMIT=1048576" in imap.capabilities  # RFC 7889
    imap.login(USER, "x")
    big = b"Subject: big\r\n\r\n" + b"x" * (20 * 1024 * 1024)
    started = time.perf_counter()
    status, data = imap.append("INBOX", None, None, big)
    assert (status, data) == ("NO", [b"[TOOBIG] Message over the 1048576 byte limit"])
    assert time.perf_counter() - started < 2  # refused before the "+": the 20 MB were never sent
    assert imap.append("INBOX", None, None, b"Subject: small\r\n\r\nok\r\n")[0] == "OK"
    assert imap.select("INBOX") == ("OK", [b"1"])
    imap.logout()


def test_a_large_literal_before_login_is_refused_without_buffering_it(sandbox_factory: Factory) -> None:
    sandbox = sandbox_factory()
    chunk = b"x" * (1024 * 1024)
    with connect(sandbox, "imap") as sync:  # synchronizing: no "+", so the client never sends it
        first_line(sync)
        sync.sendall(b"a LOGIN {52428800}\r\n")
        assert first_line(sync) == b"a BAD [TOOBIG] Literal too large before login\r\n"
        sync.sendall(b"b NOOP\r\n")
        assert first_line(sync) == b"b OK NOOP completed\r\n"
    before = rss()

    def push(sock: socket.socket) -> bytes:
        first_line(sock)
        sock.sendall(b"a LOGIN {52428800+}\r\n")
        try:
            for _ in range(50):  # 50 MB announced as non-synchronizing, so sent at once
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and hung up, as it should
        received = b""
        try:
            while data := sock.recv(4096):
                received += data
        except ConnectionResetError:
            pass
        return received

    sockets = [connect(sandbox, "imap") for _ in range(8)]
    results: list[bytes] = []
    threads = [threading.Thread(target=lambda s=s: results.append(push(s))) for s in sockets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for sock in sockets:
        sock.close()
    assert len(results) == 8
    for received in results:
        assert received.startswith(b"a BAD [TOOBIG] Literal too large\r\n") or received == b""
    assert any(received.endswith(b"* BYE Literal too large\r\n") for received in results)
    grown = rss() - before
    assert grown < 40 * 1024 * 1024, f"RSS grew by {grown / 2**20:.0f} MB"  # it was +400 MB, never returned


# -- executors: releases to a dead upstream do not stall IMAP ---------------------------------------------


def test_releases_to_an_upstream_that_never_answers_do_not_delay_imap(sandbox_factory: Factory) -> None:
    blackhole = socket.create_server(("127.0.0.1", 0), backlog=64)  # accepts (the kernel does), never speaks
    port = blackhole.getsockname()[1]
    sandbox = sandbox_factory(release={"host": "127.0.0.1", "port": port, "timeout": 20})
    send_mail(sandbox)
    http = sandbox.address("http")
    base = f"http://{http.host}:{http.port}"
    message_id = httpx.get(f"{base}/api/v1/messages", timeout=10).json()["messages"][0]["ID"]
    statuses: list[int] = []

    def release() -> None:
        url = f"{base}/api/v1/message/{message_id}/release"
        with httpx.Client(timeout=60) as client:
            statuses.append(client.post(url, json={"To": ["x@partner.example"]}).status_code)

    threads = [threading.Thread(target=release, daemon=True) for _ in range(8)]
    try:
        for thread in threads:
            thread.start()
        wait_for(lambda: len(blackhole_backlog(port)) >= 4)  # the releases hold their threads now
        address = sandbox.address("imap")
        started = time.perf_counter()
        imap = imaplib.IMAP4(address.host, address.port, timeout=30)
        imap.login(USER, "x")
        assert imap.select("INBOX") == ("OK", [b"1"])
        assert imap.fetch("1", "(FLAGS)")[0] == "OK"
        imap.logout()
        took = time.perf_counter() - started
        assert took < 1.0, f"IMAP took {took:.1f} s behind the stuck releases"  # it was 20 s (the timeout)
    finally:
        blackhole.close()  # queued connections are reset: the releases fail now, not after their timeout
        for thread in threads:
            thread.join(30)
    assert statuses and set(statuses) == {400}  # Mailpit's "SMTP error: ..."


def blackhole_backlog(port: int) -> list[str]:
    """Established connections to `port` that nobody accepted (from /proc/net/tcp): stuck releases."""
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    return [r[2] for r in rows if r[1].endswith(f":{port:04X}") and r[3] == "01"]
