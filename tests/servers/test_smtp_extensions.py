"""SMTP extensions and robustness over real loopback sockets: CHUNKING, CRAM-MD5, enhanced codes, SMTPUTF8,
limits, STARTTLS injection, idle timeout, dropped and parallel clients (smtplib and raw sockets)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import smtplib
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trustme

from mailsandbox.servers.smtp import CaptureHandler, SmtpOptions, start_smtp
from mailsandbox.store.sqlite import SqliteStore
from tests.conftest import require_binary

T = TypeVar("T")
HOST = "mx.test"
RECEIVED = re.compile(rb"\AReceived:.*?\r\n(?![\t ])", re.DOTALL)


class SmtpServer:
    """Our SMTP server (start_smtp + CaptureHandler on a throw-away store) on a loop thread."""

    def __init__(self, tls: ssl.SSLContext, **options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.store = SqliteStore(":memory:")
        options.setdefault("max_message_size", 10_000)
        handler = CaptureHandler(self.store, HOST)
        self.server = self.run(start_smtp("127.0.0.1", 0, handler, SmtpOptions(HOST, tls_context=tls, **options)))
        self.port: int = self.server.sockets[0].getsockname()[1]

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def client(self) -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.port, timeout=10)

    def raws(self) -> list[bytes]:
        """Every stored message, oldest first, without the Received: field we prepend."""
        page = self.store.list(limit=1000)
        return [RECEIVED.sub(b"", self.store.raw(m.id), count=1) for m in reversed(page.messages)]

    def close(self) -> None:
        async def stop() -> None:
            self.server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.server.wait_closed(), 2)

        self.run(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        self.store.close()


class Wire:
    """A raw SMTP client: bytes out, one whole (possibly multi-line) reply in."""

    def __init__(self, port: int) -> None:
        self.sock: socket.socket = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""
        self.greeting = self.reply()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self) -> bytes:
        return self.sock.recv(65536)

    def reply(self) -> bytes:
        out = b""
        while True:
            while b"\n" not in self.buffer:
                chunk = self.recv()
                if not chunk:
                    raise EOFError(out)
                self.buffer += chunk
            line, _, self.buffer = self.buffer.partition(b"\n")
            out += line + b"\n"
            if line[3:4] != b"-":
                return out

    def cmd(self, line: bytes) -> bytes:
        return self.exchange(line + b"\r\n")

    def exchange(self, data: bytes) -> bytes:
        self.send(data)
        return self.reply()

    def at_eof(self) -> bool:
        return self.buffer == b"" and self.recv() == b""

    def close(self) -> None:
        self.sock.close()


class TlsWire(Wire):
    """Continues a Wire after "220 Ready to start TLS" through an SSLObject, so the test decides what shares
    a segment: `first` leaves in the same write as the client's last handshake message."""

    def __init__(self, wire: Wire, context: ssl.SSLContext, first: bytes) -> None:
        assert wire.buffer == b""
        self.sock, self.buffer = wire.sock, b""
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname=HOST)
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.sock.sendall(self.outgoing.read())
                self.incoming.write(self.sock.recv(65536))
        self.send(first)

    def send(self, data: bytes) -> None:
        if data:
            self.tls.write(data)
        self.sock.sendall(self.outgoing.read())

    def recv(self) -> bytes:
        while True:
            try:
                return self.tls.read(65536)
            except ssl.SSLWantReadError:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return b""
                self.incoming.write(chunk)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
def serve(ca: trustme.CA) -> Iterator[Callable[..., SmtpServer]]:
    """Start servers with chosen SmtpOptions; all are stopped at the end of the test."""
    started: list[SmtpServer] = []
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", HOST).configure_cert(tls)

    def start(**options: Any) -> SmtpServer:
        started.append(SmtpServer(tls, **options))
        return started[-1]

    yield start
    for server in started:
        server.close()


def envelope(wire: Wire) -> None:
    assert wire.cmd(b"EHLO raw.test").startswith(b"250-mx.test\r\n")
    assert wire.cmd(b"MAIL FROM:<a@x.test>") == b"250 2.1.0 Ok\r\n"
    assert wire.cmd(b"RCPT TO:<b@y.test>") == b"250 2.1.5 Ok\r\n"


def test_chunking_in_several_chunks_and_bdat_0_last(serve: Callable[..., SmtpServer]) -> None:
    server = serve()
    wire = Wire(server.port)
    ehlo = wire.cmd(b"EHLO raw.test")
    assert b"250-CHUNKING\r\n" in ehlo and b"250-ENHANCEDSTATUSCODES\r\n" in ehlo
    wire.cmd(b"MAIL FROM:<a@x.test>")
    wire.cmd(b"RCPT TO:<b@y.test>")
    assert wire.exchange(b"BDAT 17\r\nSubject: chunks\r\n") == b"250 2.0.0 17 octets received\r\n"
    wire.send(b"BDAT 13\r\n\r\n.one\r\n")  # a chunk split over writes; its dot is content, not stuffing
    assert wire.exchange(b"two\r\n") == b"250 2.0.0 30 octets received\r\n"
    assert wire.cmd(b"BDAT 0 LAST").startswith(b"250 2.0.0 Ok: queued as ")
    # Pipelined (RFC 2920), the whole transaction in one write.
    body = b"Subject: one go\r\n\r\nx\r\n"
    wire.send(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nBDAT %d LAST\r\n%s" % (len(body), body))
    assert [wire.reply()[:9] for _ in range(3)] == [b"250 2.1.0", b"250 2.1.5", b"250 2.0.0"]
    assert wire.cmd(b"QUIT") == b"221 2.0.0 Bye\r\n"
    assert server.raws() == [b"Subject: chunks\r\n\r\n.one\r\ntwo\r\n", b"Subject: one go\r\n\r\nx\r\n"]


def test_bdat_over_the_limit_is_552_and_the_session_goes_on(serve: Callable[..., SmtpServer]) -> None:
    server = serve(max_message_size=1000)
    wire = Wire(server.port)
    envelope(wire)
    assert wire.exchange(b"BDAT 1500 LAST\r\n" + b"x" * 1500) == b"552 5.3.4 Error: message too big\r\n"
    wire.cmd(b"MAIL FROM:<a@x.test>")
    wire.cmd(b"RCPT TO:<b@y.test>")
    assert wire.exchange(b"BDAT 800\r\n" + b"y" * 800).startswith(b"250 2.0.0 800 octets")
    assert wire.exchange(b"BDAT 800\r\n" + b"y" * 800) == b"552 5.3.4 Error: message too big\r\n"
    assert wire.exchange(b"BDAT 1 LAST\r\ny") == b"552 5.3.4 Error: message too big\r\n"
    wire.cmd(b"MAIL FROM:<a@x.test>")
    wire.cmd(b"RCPT TO:<b@y.test>")
    assert wire.exchange(b"BDAT 10 LAST\r\nSubject: k").startswith(b"250 2.0.0 Ok: queued as ")
    assert server.raws() == [b"Subject: k"]


def test_data_after_bdat_is_503(serve: Callable[..., SmtpServer]) -> None:
    server = serve()
    wire = Wire(server.port)
    envelope(wire)
    assert wire.exchange(b"BDAT 3\r\nabc") == b"250 2.0.0 3 octets received\r\n"
    assert wire.cmd(b"DATA") == b"503 5.5.1 Error: DATA after BDAT\r\n"
    assert wire.cmd(b"RSET") == b"250 2.0.0 Ok\r\n"
    wire.cmd(b"MAIL FROM:<a@x.test>")
    wire.cmd(b"RCPT TO:<b@y.test>")
    assert wire.cmd(b"DATA").startswith(b"354 ")
    assert wire.cmd(b"Subject: data\r\n\r\nok\r\n.").startswith(b"250 2.0.0 Ok: queued as ")
    assert server.raws() == [b"Subject: data\r\n\r\nok\r\n"]


class RecordingSMTP(smtplib.SMTP):
    """smtplib as is; it only notes which SASL mechanism login() chose."""

    mechanisms: list[str]

    def auth(self, mechanism: str, authobject: Callable[..., str], *, initial_response_ok: bool = True) -> Any:
        self.mechanisms = [*getattr(self, "mechanisms", []), mechanism]
        return super().auth(mechanism, authobject, initial_response_ok=initial_response_ok)


def test_auth_cram_md5_with_configured_credentials(serve: Callable[..., SmtpServer]) -> None:
    server = serve(credentials={"alice": "s3cret"}, allow_insecure_auth=True)
    with RecordingSMTP("127.0.0.1", server.port, timeout=10) as client:
        client.ehlo("me")
        assert "CRAM-MD5" in client.esmtp_features["auth"].split()
        client.user, client.password = "alice", "wrong"
        with pytest.raises(smtplib.SMTPAuthenticationError) as failed:
            client.auth("CRAM-MD5", client.auth_cram_md5)
        error = failed.value.smtp_error
        assert failed.value.smtp_code == 535 and isinstance(error, bytes) and error.startswith(b"5.7.8 ")
        client.mechanisms = []
        client.login("alice", "s3cret")
        assert client.mechanisms == ["CRAM-MD5"]  # smtplib's first choice when offered
        client.sendmail("a@x.test", ["b@y.test"], b"Subject: cram\r\n\r\nx\r\n")
    [stored] = server.store.list().messages
    assert stored.envelope.auth_user == "alice"


def test_enhanced_status_codes_on_replies(serve: Callable[..., SmtpServer]) -> None:
    server = serve()
    with server.client() as client:
        client.ehlo("me")
        assert client.has_extn("enhancedstatuscodes")
        assert client.mail("a@x.test") == (250, b"2.1.0 Ok")
        assert client.rcpt("b@y.test") == (250, b"2.1.5 Ok")
        assert client.docmd("FROB") == (500, b"5.5.2 Error: command not recognized")


def test_non_ascii_address_needs_smtputf8(serve: Callable[..., SmtpServer]) -> None:
    server = serve()
    wire = Wire(server.port)
    wire.cmd(b"EHLO raw.test")
    assert wire.cmd("MAIL FROM:<jörg@exämple.test>".encode()).startswith(b"553 5.6.7 ")
    assert wire.cmd("MAIL FROM:<jörg@exämple.test> SMTPUTF8".encode()) == b"250 2.1.0 Ok\r\n"
    assert wire.cmd("RCPT TO:<zoë@exämple.test>".encode()) == b"250 2.1.5 Ok\r\n"
    wire.cmd(b"DATA")
    assert wire.cmd(b"Subject: utf8\r\n\r\nx\r\n.").startswith(b"250 ")
    [stored] = server.store.list().messages
    assert stored.envelope.mail_from == "jörg@exämple.test" and stored.envelope.smtputf8


def test_unknown_mail_parameter_is_555(serve: Callable[..., SmtpServer]) -> None:
    server = serve()
    with server.client() as client:
        client.ehlo("me")
        assert client.mail("a@x.test", ["X-FOO=1"]) == (555, b"5.5.4 Unsupported MAIL/RCPT parameter")
        assert client.mail("a@x.test") == (250, b"2.1.0 Ok")


def test_over_long_command_line_is_500_and_the_session_goes_on(serve: Callable[..., SmtpServer]) -> None:
    server = serve()
    wire = Wire(server.port)
    assert wire.cmd(b"NOOP " + b"x" * 5000) == b"500 5.5.2 Error: line too long\r\n"
    wire.send(b"NOOP " + b"y" * 20_000)  # no end of line at all: refused before it ends
    assert wire.reply() == b"500 5.5.2 Error: line too long\r\n"
    wire.send(b"y" * 20_000 + b"\r\n")
    envelope(wire)
    wire.cmd(b"DATA")
    assert wire.cmd(b"Subject: after\r\n\r\nx\r\n.").startswith(b"250 ")
    assert server.raws() == [b"Subject: after\r\n\r\nx\r\n"]


def test_commands_pipelined_behind_starttls_are_not_run(
    serve: Callable[..., SmtpServer], client_tls: ssl.SSLContext
) -> None:
    server = serve()
    wire = Wire(server.port)
    assert b"250-STARTTLS\r\n" in wire.cmd(b"EHLO raw.test")
    wire.send(b"STARTTLS\r\nMAIL FROM:<x@y.test>\r\n")  # CVE-2011-0411: injected in clear
    assert wire.reply() == b"220 2.0.0 Ready to start TLS\r\n"
    tls = TlsWire(wire, client_tls, b"")
    # The first reply under TLS is the EHLO's: nothing answers the injected MAIL, and no transaction is open.
    ehlo = tls.cmd(b"EHLO raw.test")
    assert ehlo.startswith(b"250-mx.test\r\n") and b"STARTTLS" not in ehlo
    assert tls.cmd(b"RCPT TO:<b@y.test>") == b"503 5.5.1 Error: need MAIL command\r\n"
    assert tls.cmd(b"NOOP") == b"250 2.0.0 Ok\r\n"
    assert tls.buffer == b""
    tls.close()


def test_a_command_sharing_a_segment_with_the_handshake_end_is_answered(
    serve: Callable[..., SmtpServer], client_tls: ssl.SSLContext
) -> None:
    # GnuTLS clients (msmtp) send EHLO in the same write as their Finished: it came through TLS, so it counts.
    server = serve()
    wire = Wire(server.port)
    assert wire.cmd(b"STARTTLS") == b"220 2.0.0 Ready to start TLS\r\n"
    tls = TlsWire(wire, client_tls, b"EHLO tls.test\r\n")
    assert tls.reply().startswith(b"250-mx.test\r\n")
    assert tls.cmd(b"QUIT") == b"221 2.0.0 Bye\r\n"
    tls.close()


def test_idle_client_gets_421_then_the_connection_closes(serve: Callable[..., SmtpServer]) -> None:
    server = serve(idle_timeout=0.2)
    wire = Wire(server.port)
    assert wire.cmd(b"EHLO raw.test").startswith(b"250")
    assert wire.reply() == b"421 4.4.2 Timeout: closing connection\r\n"  # blocks until the server speaks
    assert wire.at_eof()
    with server.client() as client:  # the server itself goes on
        assert client.noop()[0] == 250


def test_client_vanishing_mid_data_or_bdat_leaves_the_server_serving(serve: Callable[..., SmtpServer]) -> None:
    server = serve()
    for opener in (b"DATA\r\nSubject: half\r\n\r\nno end", b"BDAT 100 LAST\r\nSubject: half"):
        wire = Wire(server.port)
        envelope(wire)
        wire.send(opener)
        wire.sock.shutdown(socket.SHUT_RDWR)
        wire.close()
    with server.client() as client:
        client.sendmail("a@x.test", ["b@y.test"], b"Subject: whole\r\n\r\nx\r\n")
    assert server.raws() == [b"Subject: whole\r\n\r\nx\r\n"]


def test_parallel_clients_all_get_stored(serve: Callable[..., SmtpServer]) -> None:
    server = serve()

    def send(n: int) -> None:
        with server.client() as client:
            for i in range(20):
                client.sendmail("a@x.test", [f"u{n}@y.test"], f"Subject: {n}-{i}\r\n\r\nbody\r\n".encode())

    with ThreadPoolExecutor(20) as pool:
        list(pool.map(send, range(20)))
    subjects = {m.summary.subject for m in server.store.list(limit=1000).messages}
    assert subjects == {f"{n}-{i}" for n in range(20) for i in range(20)}


def test_msmtp_over_starttls_with_cram_md5(serve: Callable[..., SmtpServer], ca: trustme.CA, tmp_path: Path) -> None:
    msmtp = require_binary("msmtp")  # Debian package msmtp, installed by .ci/run
    server = serve(credentials={"alice": "s3cret"})
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    args = [
        msmtp, "--host=127.0.0.1", f"--port={server.port}", "--tls=on", "--tls-starttls=on",
        f"--tls-trust-file={ca_file}", f"--tls-host-override={HOST}", "--auth=cram-md5", "--user=alice",
        "--passwordeval=echo s3cret", "--from=a@x.test", "b@y.test",
    ]  # fmt: skip
    message = b"Subject: from msmtp\n\n.dot line\nbody\n"
    done = subprocess.run(args, input=message, capture_output=True, timeout=10, check=False)
    assert done.returncode == 0, done.stderr
    [stored] = server.store.list().messages
    assert stored.envelope.auth_user == "alice" and stored.envelope.tls
    [raw] = server.raws()  # msmtp adds From:, Date: and Message-ID: above ours
    assert raw.endswith(b"Subject: from msmtp\r\n\r\n.dot line\r\nbody\r\n")
