"""Release cannot be turned against its allow-list: RFC 5321 recipient parsing, and DATA made safe on the wire."""

from __future__ import annotations

import smtplib
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailsandbox.relay.release_addresses import AddressError, parse_recipient, wire_data
from tests.relay.conftest import World, WorldFactory

ALLOW = ["*@mycompany.example"]
SMUGGLED = ["evil%attacker.example@mycompany.example", '"evil@attacker.example"@mycompany.example',
            "@mycompany.example:evil@attacker.example", "attacker.example!evil@mycompany.example"]  # fmt: skip


def test_recipient_parsing() -> None:
    for text, expected in (("ann@MyCompany.Example", "ann@mycompany.example"),
                           ("Ann Example <ann@mycompany.example>", "ann@mycompany.example"),
                           ('"Doe, <Ann>" <ann@mycompany.example>', "ann@mycompany.example"),
                           ("<ann.b+tag@sub.mycompany.example.>", "ann.b+tag@sub.mycompany.example"),
                           ('"ann b"@mycompany.example', '"ann b"@mycompany.example'),
                           ("ann@[192.0.2.1]", "ann@[192.0.2.1]"), ("jörg@bücher.example", "jörg@bücher.example")):  # fmt: skip
        mailbox = parse_recipient(text)
        assert str(mailbox) == expected and not mailbox.unusual, text
    for bad in ("ann", "@x", "ann@", "a..b@x.test", ".a@x.test", "a@-x.test", "a@x..test", "a b@x.test",
                '"open@x.test', '"a"b@x.test', "a@x.test\r\nRCPT TO:<e@evil>", "a@[1.2.3.4", "<>", "a" * 65 + "@x.t",
                "x@" + "a" * 300):  # fmt: skip
        with pytest.raises(AddressError):
            parse_recipient(bad)
    reasons = [parse_recipient(text).unusual for text in SMUGGLED]
    assert reasons == [("the percent hack",), ("a quoted local part holding '@'",), ("a source route",),
                       ("a bang path",)]  # fmt: skip
    # the allow-list sees the parsed parts: the source route is ignored (RFC 5321 §3.3)
    routed = parse_recipient("@mycompany.example:evil@attacker.example")
    assert str(routed) == "evil@attacker.example" and not routed.matches("*@mycompany.example")
    assert parse_recipient("ops@x.test").matches("ops@*") and parse_recipient("a@x.test").matches("x.test")
    assert not parse_recipient("a@x.test.evil").matches("*@x.test")


def test_recipient_parsing_is_linear() -> None:
    def cost(n: int) -> float:
        texts = ['"' + "\\a" * n + '"@x.test', "a." * n + "a@x.test", "x@" + "a-" * n + "a", '"' * n + "<a@x.t>"]
        start = time.perf_counter()
        for text in texts:
            try:
                parse_recipient(text)
            except AddressError:
                pass
        return time.perf_counter() - start

    small, big = min(cost(2_000) for _ in range(3)), min(cost(32_000) for _ in range(3))
    assert big < small * 16 * 4  # 16 times the input: linear, with room for noise


def test_wire_data_normalises_line_ends_and_stuffs_dots() -> None:
    assert wire_data(b"a\r\nb\nc\rd\r\n") == b"a\r\nb\r\nc\r\nd\r\n.\r\n"
    assert wire_data(b"x\r.\r\nMAIL FROM:<e@evil>\r\n") == b"x\r\n..\r\nMAIL FROM:<e@evil>\r\n.\r\n"
    assert wire_data(b".lead\n..two\n.\n") == b"..lead\r\n...two\r\n..\r\n.\r\n"
    assert wire_data(b"no end") == b"no end\r\n.\r\n" and wire_data(b"") == b".\r\n"
    big = b"x\r" * 500_000
    assert wire_data(big).count(b"\r\n") == 500_001


class NaiveUpstream:
    """An MTA that ends DATA on <CR>.<CR>, <LF>.<LF> or <CRLF>.<CRLF>: what a smuggling attack needs
    upstream. Records the raw DATA of every transaction it took."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.transactions: list[bytes] = []
        self.rcpts: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self._session(conn)

    def _session(self, conn: socket.socket) -> None:
        conn.sendall(b"220 naive ESMTP\r\n")
        buffer, data = b"", None
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                return
            buffer += chunk
            while True:
                if data is not None:
                    ends = [i for i in (buffer.find(e) for e in (b"\r.\r", b"\n.\n", b"\r\n.\r\n")) if i >= 0]
                    if not ends:
                        break
                    end = min(ends)
                    self.transactions.append(buffer[:end])
                    buffer, data = buffer[end + 3 :].lstrip(b"\r\n"), None
                    conn.sendall(b"250 ok\r\n")
                    continue
                line, sep, rest = buffer.partition(b"\r\n")
                if not sep:
                    break
                buffer = rest
                verb = line[:4].upper()
                if verb == b"DATA":
                    data = b""
                    conn.sendall(b"354 go\r\n")
                elif verb == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                elif verb == b"EHLO":
                    conn.sendall(b"250-naive\r\n250 8BITMIME\r\n")
                else:
                    if verb == b"RCPT":
                        self.rcpts.append(line)
                    conn.sendall(b"250 ok\r\n")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def naive() -> Iterator[NaiveUpstream]:
    upstream = NaiveUpstream()
    yield upstream
    upstream.close()


def _capture(world: World, raw: bytes) -> str:
    smtp = world.sandbox.address("smtp")
    with smtplib.SMTP(smtp.host, smtp.port) as client:  # smtplib passes bare CRs through as they are
        client.sendmail("alice@sender.test", ["bob@anywhere.example"], raw)
    return str(world.ok("GET", "/api/v1/messages")["messages"][0]["ID"])


def test_release_cannot_smuggle_a_second_transaction(world_factory: WorldFactory, naive: NaiveUpstream) -> None:
    world = world_factory(release={"host": "127.0.0.1", "port": naive.port, "allowed": ALLOW})
    raw = (
        b"Subject: hi\r\n\r\nline\r.\r\nMAIL FROM:<x@evil.example>\r\nRCPT TO:<victim@other.example>\r\nDATA\r\n.dot\n"
    )
    message_id = _capture(world, raw)
    assert b"\r.\r" in world.api("GET", f"/api/v1/message/{message_id}/raw").content  # stored as sent
    result = world.api("POST", f"/api/v1/message/{message_id}/release", json={"To": ["ann@mycompany.example"]})
    assert (result.status_code, result.text) == (200, "ok")  # Mailpit's reply: the upstream said 250
    [data] = naive.transactions  # one transaction, not two
    assert data.endswith(b"\r\n..dot\r\n") and b"\r.\r" not in data  # smtplib added a CRLF after the LF
    assert data.replace(b"\r\n", b"").count(b"\r") == 0 and data.replace(b"\r\n", b"").count(b"\n") == 0
    assert b"\r\n..\r\nMAIL FROM:<x@evil.example>\r\n" in data  # the fake command is body text, stuffed
    assert naive.rcpts == [b"RCPT TO:<ann@mycompany.example>"]


def test_release_refuses_routing_tricks_unless_allowed(world_factory: WorldFactory, naive: NaiveUpstream) -> None:
    world = world_factory(release={"host": "127.0.0.1", "port": naive.port, "allowed": ALLOW})
    message_id = _capture(world, b"Subject: hi\r\n\r\nbody\r\n")
    path = f"/api/v1/message/{message_id}/release"
    for address in SMUGGLED:
        refused = world.api("POST", path, json={"To": [address]})
        assert refused.status_code == 400, address  # Mailpit's code and text for a refused recipient
        assert refused.text.startswith("Failed: ") and "route elsewhere" in refused.text, refused.text
    assert naive.transactions == []

    lenient = world_factory(release={"host": "127.0.0.1", "port": naive.port, "allowed": ALLOW,
                                     "allow_unusual_recipients": True})  # fmt: skip
    message_id = _capture(lenient, b"Subject: hi\r\n\r\nbody\r\n")
    path = f"/api/v1/message/{message_id}/release"
    assert lenient.api("POST", path, json={"To": [SMUGGLED[0]]}).text == "ok"
    # allowed, the source route is still ignored, so the allow-list sees attacker.example and refuses
    assert lenient.api("POST", path, json={"To": [SMUGGLED[2]]}).status_code == 400
    assert naive.rcpts == [b"RCPT TO:<evil%attacker.example@mycompany.example>"]


@given(st.one_of(st.text(max_size=300), st.text(alphabet='ab@."\\%!:,<> []-é', max_size=60)))
@settings(max_examples=300, deadline=None)
def test_any_text_is_a_mailbox_or_an_address_error(text: str) -> None:
    try:
        mailbox = parse_recipient(text)
    except AddressError:
        return
    assert "@" in str(mailbox) and not any(c in str(mailbox) for c in "\r\n\0")
    assert parse_recipient(str(mailbox)).domain == mailbox.domain  # what is sent parses the same
