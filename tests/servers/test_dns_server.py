"""The DNS server on loopback, asked by dnspython and dig over UDP and TCP."""

from __future__ import annotations

import asyncio
import errno
import os
import random
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import pytest

import mailsandbox.servers.dns
from mailsandbox.servers.dns import DnsServer, start_dns
from mailsandbox.zone import Zone

EXAMPLE = Path(__file__).parent.parent / "data" / "example.zone"
TIMEOUT = 5.0


@dataclass
class Running:
    zone: Zone
    host: str
    port: int


@pytest.fixture(scope="module")
def running() -> Iterator[Running]:
    """One server for the module, on its own loop in a thread, so blocking clients can call it."""
    zone = Zone.from_files([EXAMPLE])
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server: DnsServer = asyncio.run_coroutine_threadsafe(start_dns("127.0.0.1", 0, zone), loop).result(
        TIMEOUT
    )
    host, port = server.address
    try:
        yield Running(zone, host, port)
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(TIMEOUT)
        loop.close()


@pytest.fixture
def srv(running: Running) -> Iterator[Running]:
    """The shared server, with the zone's run-time changes undone after each test."""
    before = running.zone.snapshot()
    try:
        yield running
    finally:
        running.zone.restore(before)


def udp(srv: Running, name: str, rdtype: str, **kw: object) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]
    return dns.query.udp(query, srv.host, port=srv.port, timeout=TIMEOUT)


def tcp(srv: Running, name: str, rdtype: str) -> dns.message.Message:
    return dns.query.tcp(dns.message.make_query(name, rdtype), srv.host, port=srv.port, timeout=TIMEOUT)


def texts(response: dns.message.Message, rdtype: str) -> list[str]:
    kind = dns.rdatatype.from_text(rdtype)
    return [r.to_text() for rrset in response.answer if rrset.rdtype == kind for r in rrset]


def mx_sorted(response: dns.message.Message) -> list[str]:
    return sorted(texts(response, "MX"), key=lambda mx: int(mx.split()[0]))


# -- dnspython -----------------------------------------------------------------------------


@pytest.mark.parametrize("ask", [udp, tcp])
def test_records_over_udp_and_tcp(srv: Running, ask: object) -> None:
    assert callable(ask)
    mx = ask(srv, "example.test", "MX")
    assert mx.flags & dns.flags.AA and mx_sorted(mx) == ["10 mx1.example.test.", "20 mx2.example.test."]
    assert texts(ask(srv, "mx1.example.test", "A"), "A") == ["192.0.2.25"]
    assert texts(ask(srv, "mx1.example.test", "AAAA"), "AAAA") == ["2001:db8::25"]
    assert texts(ask(srv, "example.test", "TXT"), "TXT") == ['"v=spf1 ip4:192.0.2.0/24 mx -all"']
    dmarc = texts(ask(srv, "_dmarc.example.test", "TXT"), "TXT")
    assert dmarc == ['"v=DMARC1; p=reject; rua=mailto:dmarc@example.test; adkim=s; aspf=s"']
    dkim = ask(srv, "selector1._domainkey.example.test", "TXT").answer[0][0]
    assert isinstance(dkim, dns.rdtypes.ANY.TXT.TXT) and dkim.strings[0].startswith(b"v=DKIM1; k=rsa; p=")
    cname = ask(srv, "smtp.example.test", "A")
    assert texts(cname, "CNAME") == ["mx1.example.test."] and texts(cname, "A") == ["192.0.2.25"]
    assert texts(ask(srv, "26.2.0.192.in-addr.arpa", "PTR"), "PTR") == ["mx2.example.test."]
    assert texts(ask(srv, "nullmx.test", "MX"), "MX") == ["0 ."]


def test_catch_all_then_strict(srv: Running) -> None:
    caught = udp(srv, "anything.example.org", "MX")
    assert texts(caught, "MX") == ["10 mailsandbox.local."] and not caught.flags & dns.flags.AA
    assert texts(udp(srv, "mailsandbox.local", "A"), "A") == ["127.0.0.1"]
    srv.zone.strict = True
    strict = udp(srv, "anything.example.org", "MX")
    assert strict.rcode() == dns.rcode.NXDOMAIN and strict.answer == []
    missing = tcp(srv, "missing.example.test", "A")
    assert missing.rcode() == dns.rcode.NXDOMAIN and missing.authority[0].rdtype == dns.rdatatype.SOA
    assert texts(udp(srv, "mailsandbox.local", "A"), "A") == ["127.0.0.1"]


def test_run_time_add_and_remove_are_seen_at_once(srv: Running) -> None:
    srv.zone.add_record("example.test", "MX", "5 mx0.example.test")
    srv.zone.add_record("mx0.example.test", "A", "192.0.2.24")
    answer = udp(srv, "example.test", "MX")
    assert mx_sorted(answer)[0] == "5 mx0.example.test."
    assert ("mx0.example.test.", "192.0.2.24") in {
        (rrset.name.to_text(), r.to_text()) for rrset in answer.additional for r in rrset
    }
    assert srv.zone.remove_record("example.test", "MX", "5 mx0.example.test") == 1
    assert mx_sorted(tcp(srv, "example.test", "MX"))[0] == "10 mx1.example.test."


def test_zone_file_loaded_from_disk(srv: Running, tmp_path: Path) -> None:
    path = tmp_path / "disk.test.zone"
    path.write_text('@ 60 IN MX 10 in.disk.test.\nin 60 IN A 192.0.2.44\n@ 60 IN TXT "v=spf1 -all"\n')
    assert srv.zone.load_file(path) == ["disk.test"]
    assert texts(udp(srv, "disk.test", "MX"), "MX") == ["10 in.disk.test."]
    assert texts(tcp(srv, "in.disk.test", "A"), "A") == ["192.0.2.44"]


def test_big_answer_truncated_over_udp_complete_over_tcp(srv: Running) -> None:
    for i in range(12):
        srv.zone.add_record("big.example.test", "TXT", f"{i:02d}" + "t" * 60)
    query = dns.message.make_query("big.example.test", "TXT", use_edns=False)
    truncated = dns.query.udp(query, srv.host, port=srv.port, timeout=TIMEOUT)
    assert truncated.flags & dns.flags.TC
    full, used_tcp = dns.query.udp_with_fallback(query, srv.host, port=srv.port, timeout=TIMEOUT)
    assert used_tcp and len(texts(full, "TXT")) == 12


# -- malformed input -----------------------------------------------------------------------


@pytest.fixture
def udp_sock(srv: Running) -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.connect((srv.host, srv.port))
        yield sock


def query_after(sock: socket.socket, qid: int) -> dns.message.Message:
    """Send a real query and return the first reply carrying its id (earlier replies are FORMERRs)."""
    query = dns.message.make_query("example.test", "MX", id=qid)
    sock.send(query.to_wire())
    while True:
        reply = dns.message.from_wire(sock.recv(65535))
        if reply.id == qid:
            return reply
        assert reply.rcode() == dns.rcode.FORMERR


def test_garbage_over_udp_is_dropped_or_formerr_and_service_goes_on(udp_sock: socket.socket) -> None:
    rng = random.Random(5)
    for size in [0, 1, 5, 11, *(rng.randrange(12, 700) for _ in range(150))]:
        udp_sock.send(rng.randbytes(size) if size else b"")
    # a header-only packet that claims a question: FORMERR with its id
    udp_sock.send(b"\xbe\xef\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00")
    # replies come back in order, so the real answer proves everything before it was handled
    reply = query_after(udp_sock, 4242)
    assert mx_sorted(reply) == ["10 mx1.example.test.", "20 mx2.example.test."]


def test_truncated_header_gets_nothing(udp_sock: socket.socket) -> None:
    udp_sock.send(b"\x12\x34\x01\x00\x00")  # five bytes: no header to answer
    udp_sock.send(b"\x99\x99\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00")  # its FORMERR comes first
    first = dns.message.from_wire(udp_sock.recv(65535))
    assert (first.id, first.rcode()) == (0x9999, dns.rcode.FORMERR)
    assert query_after(udp_sock, 7).rcode() == dns.rcode.NOERROR


def recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "server closed the connection"
        data += chunk
    return data


def recv_framed(sock: socket.socket) -> dns.message.Message:
    return dns.message.from_wire(recv_exact(sock, int.from_bytes(recv_exact(sock, 2), "big")))


def test_garbage_over_tcp(srv: Running) -> None:
    with socket.create_connection((srv.host, srv.port), timeout=TIMEOUT) as sock:
        junk = b"\x43\x21" + bytes(range(40))
        sock.sendall(len(junk).to_bytes(2, "big") + junk + b"\x00\x03abc")
        formerr = recv_framed(sock)
        assert (formerr.id, formerr.rcode()) == (0x4321, dns.rcode.FORMERR)
        query = dns.message.make_query("nullmx.test", "MX")
        sock.sendall(len(query.to_wire()).to_bytes(2, "big") + query.to_wire())
        assert texts(recv_framed(sock), "MX") == ["0 ."]  # same connection, still serving
    with socket.create_connection((srv.host, srv.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")  # not DNS at all: reads as a long frame, never completes
    assert texts(tcp(srv, "example.test", "A"), "A") == ["192.0.2.10"]


def test_response_packets_are_not_answered(udp_sock: socket.socket) -> None:
    reply = dns.message.make_response(dns.message.make_query("example.test", "A", id=1))
    udp_sock.send(reply.to_wire())
    assert query_after(udp_sock, 2).id == 2  # the reply to our reply would have come first


# -- lifecycle -----------------------------------------------------------------------------


def test_udp_and_tcp_share_the_port_and_close_with_open_connections() -> None:
    async def scenario() -> None:
        server = await start_dns("127.0.0.1", 0, Zone())
        host, port = server.address
        query = dns.message.make_query("a.test", "A")
        assert texts(await dns.asyncquery.udp(query, host, port=port, timeout=TIMEOUT), "A") == ["127.0.0.1"]
        assert texts(await dns.asyncquery.tcp(query, host, port=port, timeout=TIMEOUT), "A") == ["127.0.0.1"]
        _, writer = await asyncio.open_connection(host, port)  # left open: close() must not wait on it
        await asyncio.wait_for(server.close(), TIMEOUT)
        writer.close()
        # an explicit port whose TCP side is taken is an error, not a silent move elsewhere
        blocker = await asyncio.start_server(lambda r, w: None, "127.0.0.1", port)
        try:
            with pytest.raises(OSError):
                await start_dns("127.0.0.1", port, Zone())
        finally:
            blocker.close()
            await blocker.wait_closed()

    asyncio.run(scenario())


def test_a_name_is_served_on_its_addresses_and_a_taken_port_is_never_moved(monkeypatch: pytest.MonkeyPatch) -> None:
    """A --dns name binds where it resolves: IPv4 first, else its IPv6 address (an IPv6-only name); a port
    taken on the first is reported, not dodged onto the next. (The names are made up, so the resolver is
    told what they are; the sockets and the server are real.)"""
    real = socket.getaddrinfo
    names = {"v6only.test": ["::1"], "both.test": ["127.0.0.1", "::1"]}

    def resolve(host: str, port: int, *args: object, **kwargs: object) -> list[Any]:
        if host in names:
            return [info for address in names[host] for info in real(address, port, *args, **kwargs)]  # type: ignore[arg-type]
        return real(host, port, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)

    async def scenario() -> None:
        server = await start_dns("v6only.test", 0, Zone())
        try:
            host, port = server.address[:2]
            assert host == "::1"
            query = dns.message.make_query("a.test", "A")
            assert texts(await dns.asyncquery.udp(query, "::1", port=port, timeout=TIMEOUT), "A") == ["127.0.0.1"]
        finally:
            await asyncio.wait_for(server.close(), TIMEOUT)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
            taken.bind(("127.0.0.1", 0))
            with pytest.raises(OSError) as caught:
                await start_dns("both.test", taken.getsockname()[1], Zone())
            assert caught.value.errno == errno.EADDRINUSE

    asyncio.run(scenario())


def test_idle_tcp_connection_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mailsandbox.servers.dns, "IDLE_TIMEOUT", 0.05)

    async def scenario() -> None:
        server = await start_dns("127.0.0.1", 0, Zone())
        reader, writer = await asyncio.open_connection(*server.address)
        writer.write(b"\x00\x30half a message")  # RFC 7766 §6.2.3: idle, so the server hangs up
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
        writer.close()
        await server.close()

    asyncio.run(scenario())


# -- dig -----------------------------------------------------------------------------------


@pytest.fixture
def dig(srv: Running) -> Iterator[list[str]]:
    """The dig command line aimed at the server; skipped without dig, except in CI."""
    path = shutil.which("dig")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("dig is missing (Debian package bind9-dnsutils)")
        pytest.skip("dig is not installed (Debian package bind9-dnsutils)")
    yield [path, f"@{srv.host}", "-p", str(srv.port), "+time=2", "+tries=1"]


def run(cmd: list[str]) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=30).stdout


@pytest.mark.parametrize("transport", ["+notcp", "+tcp"])
def test_dig_mx_txt_cname(dig: list[str], transport: str) -> None:
    mx = run([*dig, transport, "+short", "example.test", "MX"]).split("\n")
    assert sorted(filter(None, mx), key=lambda m: int(m.split()[0])) == [
        "10 mx1.example.test.",
        "20 mx2.example.test.",
    ]
    spf = run([*dig, transport, "+short", "example.test", "TXT"])
    assert spf == '"v=spf1 ip4:192.0.2.0/24 mx -all"\n'
    dkim = run([*dig, transport, "+short", "selector1._domainkey.example.test", "TXT"])
    assert dkim.startswith('"v=DKIM1; k=rsa; p=MIIB') and '" "' in dkim  # two quoted strings
    assert run([*dig, transport, "+short", "www.example.test", "A"]) == "example.test.\n192.0.2.10\n"
    assert run([*dig, transport, "+short", "-x", "192.0.2.25"]) == "mx1.example.test.\n"
    assert run([*dig, transport, "+short", "nullmx.test", "MX"]) == "0 .\n"


def test_dig_status_catch_all_strict_and_run_time_records(srv: Running, dig: list[str]) -> None:
    assert run([*dig, "+short", "shop.example.com", "MX"]) == "10 mailsandbox.local.\n"
    full = run([*dig, "missing.example.test", "A"])
    assert "status: NXDOMAIN" in full and "flags: qr aa rd ra" in full and "IN\tSOA\tns.example.test." in full
    srv.zone.strict = True
    assert "status: NXDOMAIN" in run([*dig, "shop.example.com", "MX"])
    srv.zone.add_record("shop.example.com", "TXT", 'v=spf1 include:_spf.shop.example.com "-all"')
    assert (
        run([*dig, "+short", "shop.example.com", "TXT"])
        == '"v=spf1 include:_spf.shop.example.com \\"-all\\""\n'
    )


# -- pipelined floods over TCP ---------------------------------------------------------------------


def pipelined(count: int, distinct: bool = False) -> tuple[bytes, list[int]]:
    """`count` framed MX queries: one name (the answer cache's case), or a new name each (every one a miss)."""
    ids = [i % 65536 for i in range(count)]
    data = bytearray()
    for query_id in ids:
        name = f"host{query_id}.example.test" if distinct else "example.test"
        wire = dns.message.make_query(name, "MX", id=query_id).to_wire()
        data += len(wire).to_bytes(2, "big") + wire
    return bytes(data), ids


def read_replies(sock: socket.socket, count: int) -> list[int]:
    """The ids of `count` framed replies read off a blocking socket."""
    buffer, ids = bytearray(), list[int]()
    while len(ids) < count:
        chunk = sock.recv(65536)
        assert chunk, f"the server hung up after {len(ids)} replies"
        buffer += chunk
        while len(buffer) >= 2 and len(buffer) >= 2 + (size := int.from_bytes(buffer[:2], "big")):
            ids.append(int.from_bytes(buffer[2:4], "big"))
            del buffer[: 2 + size]
    return ids


@pytest.mark.parametrize("count, distinct", [(24_000, False), (2_000, True)], ids=["700KB-same", "distinct"])
def test_a_pipelined_flood_does_not_stall_the_sandbox(sandbox_factory: object, count: int, distinct: bool) -> None:
    from tests.conftest import probe_during

    sandbox = sandbox_factory()  # type: ignore[operator]
    data, ids = pipelined(count, distinct)  # 24,000: about 700 KB of queries, which froze it for 9-40 s
    address = sandbox.address("dns")

    def flood() -> None:
        with socket.create_connection((address.host, address.port), timeout=30) as sock:
            sender = threading.Thread(target=sock.sendall, args=(data,), daemon=True)
            sender.start()
            assert read_replies(sock, len(ids)) == ids  # every query answered, in order
            sender.join(30)

    worst = probe_during(sandbox, flood)  # SMTP and /livez answer within 100 ms, the loop never stalls
    assert worst["stall"] < 0.1


def test_a_client_that_does_not_read_cannot_grow_the_servers_buffers() -> None:
    data, ids = pipelined(24_000)

    async def scenario() -> None:
        server = await start_dns("127.0.0.1", 0, Zone.from_files([EXAMPLE]))
        reader, writer = await asyncio.open_connection(*server.address)
        writer.write(data)  # and read nothing for now
        (protocol,) = server._live
        assert protocol.transport is not None
        transport = protocol.transport
        for _ in range(2000):  # until the server has stopped reading: our replies fill its buffers
            if not transport.is_reading():
                break
            await asyncio.sleep(0.005)
        assert not transport.is_reading()
        limit = mailsandbox.servers.dns.READ_AHEAD + 65_536
        assert protocol.connection.pending <= limit  # most of the 700 KB still waits in the kernel
        assert transport.get_write_buffer_size() <= mailsandbox.servers.dns.WRITE_HIGH_WATER + 32 * 512
        got, buffer = 0, bytearray()
        while got < len(ids):  # now read: the server resumes and answers everything
            buffer += await asyncio.wait_for(reader.read(65536), TIMEOUT)
            while len(buffer) >= 2 and len(buffer) >= 2 + (size := int.from_bytes(buffer[:2], "big")):
                got += 1
                del buffer[: 2 + size]
        writer.close()
        await server.close()

    asyncio.run(scenario())


def test_eof_after_pipelined_queries_still_gets_every_answer(running: Running) -> None:
    data, ids = pipelined(300)
    with socket.create_connection((running.host, running.port), timeout=TIMEOUT) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)  # done sending: the server answers, then closes
        assert read_replies(sock, len(ids)) == ids
        assert sock.recv(1) == b""
