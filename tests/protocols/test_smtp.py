"""Byte transcripts of the sans-IO SMTP core, one line per step; no sockets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Callable

import pytest

from mailsandbox.protocols import smtp
from mailsandbox.protocols.smtp import (
    ALREADY_AUTH,
    ALREADY_TLS,
    AUTH_CANCELLED,
    AUTH_FAILED,
    AUTH_IN_TX,
    AUTH_NEEDS_TLS,
    AUTH_OK,
    BAD_BASE64,
    BAD_MECHANISM,
    BAD_PARAMETER,
    BAD_RECIPIENT,
    BAD_SENDER,
    BAD_SYNTAX,
    BDAT_MIXED,
    BYE,
    MAX_AUTH_LINE,
    MAX_COMMAND,
    MAX_RECIPIENTS,
    NEED_EHLO,
    NEED_HELO,
    NEED_MAIL,
    NEED_RCPT,
    NEED_TLS,
    NEEDS_SMTPUTF8,
    NESTED_MAIL,
    OK,
    RCPT_AFTER_BDAT,
    RCPT_OK,
    READY_TLS,
    SENDER_OK,
    START_DATA,
    TEMP_ERROR,
    TIMEOUT,
    TLS_UNAVAILABLE,
    TOO_BIG,
    TOO_LONG,
    TOO_MANY_RCPTS,
    UNKNOWN,
    CloseRequested,
    Event,
    LoginFailed,
    MessageReceived,
    Reply,
    SmtpConnection,
    StartTlsRequested,
    State,
)

HOST = "mx.test"
EHLO_LINES = [HOST, "PIPELINING", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING"]
TX = b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n"


class Driver:
    """Answers the core's requests as the asyncio adapter does: store at once, handshake at once."""

    def __init__(self, conn: SmtpConnection, store_reply: bytes | None = None) -> None:
        self.conn = conn
        self.store_reply = store_reply
        self.out = bytearray()
        self.events: list[Event] = []
        self.messages: list[MessageReceived] = []
        self.handshakes = 0
        self.closed = False
        self.feed_events(conn.greeting())

    def feed(self, data: bytes) -> bytes:
        start = len(self.out)
        self.feed_events(self.conn.receive_data(data))
        return bytes(self.out[start:])

    def feed_events(self, events: list[Event]) -> None:
        queue = list(events)
        while queue:
            event = queue.pop(0)
            self.events.append(event)
            if isinstance(event, Reply):
                self.out += event.data
            elif isinstance(event, MessageReceived):
                self.messages.append(event)
                reply = self.store_reply or f"250 2.0.0 Ok: queued as {len(self.messages)}\r\n".encode()
                queue.extend(self.conn.message_stored(reply))
            elif isinstance(event, StartTlsRequested):
                self.handshakes += 1
                queue.extend(self.conn.tls_started())
            elif isinstance(event, CloseRequested):
                self.closed = True


def ehlo_reply(*extra: str) -> bytes:
    lines = [*EHLO_LINES, *extra, "HELP"]
    return ("".join(f"250-{line}\r\n" for line in lines[:-1]) + f"250 {lines[-1]}\r\n").encode()


def queued(n: int) -> bytes:
    return f"250 2.0.0 Ok: queued as {n}\r\n".encode()


def session(**options: object) -> Driver:
    d = Driver(SmtpConnection(HOST, **options))  # type: ignore[arg-type]
    d.feed(b"EHLO client.test\r\n")
    return d


def test_greeting_helo_and_ehlo() -> None:
    d = Driver(SmtpConnection(HOST))
    assert bytes(d.out) == b"220 mx.test Mailsandbox ESMTP\r\n"
    assert d.feed(b"HELO\r\n") == b"501 5.5.4 Syntax: HELO hostname\r\n"
    assert d.feed(b"helo client.test\r\n") == b"250 mx.test\r\n"
    assert d.conn.helo == "client.test" and not d.conn.extended
    assert d.feed(b"EHLO\r\n") == b"501 5.5.4 Syntax: EHLO hostname\r\n"
    assert d.feed(b"EHLO client.test\r\n") == ehlo_reply("SIZE")
    assert d.conn.extended


def test_ehlo_offers_size_starttls_and_auth_by_options() -> None:
    assert session(max_message_size=1000).feed(b"EHLO c\r\n") == ehlo_reply("SIZE 1000")
    assert session(tls_available=True).feed(b"EHLO c\r\n") == ehlo_reply("SIZE", "STARTTLS")
    assert session(tls_available=True, tls_active=True).feed(b"EHLO c\r\n") == ehlo_reply(
        "SIZE", "AUTH PLAIN LOGIN CRAM-MD5"
    )
    assert session(allow_insecure_auth=True).feed(b"EHLO c\r\n") == ehlo_reply("SIZE", "AUTH PLAIN LOGIN CRAM-MD5")


def test_transaction_yields_message_with_envelope() -> None:
    d = session()
    assert d.feed(b"MAIL FROM:<a@x.test>\r\n") == SENDER_OK
    assert d.feed(b"RCPT TO:<b@y.test>\r\n") == RCPT_OK
    assert d.feed(b"RCPT TO:<c@y.test>\r\n") == RCPT_OK
    assert d.feed(b"DATA\r\n") == START_DATA
    assert d.feed(b"Subject: hi\r\n\r\nbody\r\n") == b""
    assert d.feed(b".\r\n") == queued(1)
    [msg] = d.messages
    assert msg.content == b"Subject: hi\r\n\r\nbody\r\n"
    assert (msg.transaction.mail_from, msg.transaction.rcpt_tos) == ("a@x.test", ["b@y.test", "c@y.test"])
    assert (msg.helo, msg.auth_user, msg.tls) == ("client.test", None, False)
    assert d.conn.transaction is None and d.conn.state is State.COMMAND


def test_dot_unstuffing_bare_lf_and_empty_message() -> None:
    d = session()
    d.feed(TX + b"DATA\r\n")
    assert d.feed(b"..lead\r\n...two\r\nbare\n.kept\r\n.\r\n") == queued(1)
    assert d.messages[0].content == b".lead\r\n..two\r\nbare\n.kept\r\n"
    assert d.feed(TX + b"DATA\r\n.\r\n") == SENDER_OK + RCPT_OK + START_DATA + queued(2)
    assert d.messages[1].content == b""


def test_terminator_split_across_reads() -> None:
    d = session()
    d.feed(TX + b"DATA\r\nline\r")
    for byte in b"\n.\r":
        assert d.feed(bytes([byte])) == b""
    assert d.feed(b"\nNOOP\r\n") == queued(1) + OK
    assert d.messages[0].content == b"line\r\n"


def test_pipelined_input_waits_for_the_store() -> None:
    conn = SmtpConnection(HOST)
    conn.greeting()
    events = conn.receive_data(b"EHLO c\r\n" + TX + b"DATA\r\nx\r\n.\r\nNOOP\r\n")
    assert [e.data for e in events if isinstance(e, Reply)][1:] == [SENDER_OK, RCPT_OK, START_DATA]
    assert isinstance(events[-1], MessageReceived) and conn.state is State.WAITING
    assert conn.receive_data(b"RSET\r\n") == []  # held until the store answers
    assert conn.message_stored(TEMP_ERROR) == [Reply(TEMP_ERROR), Reply(OK), Reply(OK)]
    assert conn.transaction is None
    with pytest.raises(RuntimeError):
        conn.message_stored(OK)
    with pytest.raises(RuntimeError):
        conn.tls_started()


def test_mail_parameters() -> None:
    d = session(max_message_size=1000)
    assert d.feed(b"MAIL FROM:<a@x.test> SIZE=1001\r\n") == TOO_BIG
    assert d.feed(b"MAIL FROM:<a@x.test> SIZE=big\r\n") == BAD_SYNTAX
    assert d.feed("MAIL FROM:<a@x.test> SIZE=²\r\n".encode()) == BAD_SYNTAX  # a digit to str.isdigit only
    assert d.feed(b"MAIL FROM:<a@x.test> BODY=9BIT\r\n") == BAD_SYNTAX
    assert d.feed(b"MAIL FROM:<a@x.test> SMTPUTF8=yes\r\n") == BAD_SYNTAX
    assert d.feed(b"MAIL FROM:<a@x.test> X-FOO=1\r\n") == BAD_PARAMETER
    assert d.feed(b"MAIL FROM:<a@x.test> SIZE=1000 BODY=8BITMIME SMTPUTF8 AUTH=<>\r\n") == SENDER_OK
    txn = d.conn.transaction
    assert txn is not None and txn.body_8bit and txn.smtputf8
    assert txn.mail_options == ["SIZE=1000", "BODY=8BITMIME", "SMTPUTF8", "AUTH=<>"]
    assert d.feed(b"RCPT TO:<b@y.test> NOTIFY=NEVER\r\n") == BAD_PARAMETER
    helo = Driver(SmtpConnection(HOST))
    helo.feed(b"HELO old.test\r\n")
    assert helo.feed(b"MAIL FROM:<a@x.test> SIZE=10\r\n") == BAD_PARAMETER  # RFC 5321 §4.1.1.11: EHLO only
    assert helo.feed(b"MAIL FROM:<a@x.test>\r\n") == SENDER_OK


def test_non_ascii_addresses_need_smtputf8() -> None:
    d = session()
    assert d.feed("MAIL FROM:<jörg@x.test>\r\n".encode()) == NEEDS_SMTPUTF8
    assert NEEDS_SMTPUTF8.startswith(b"553 5.6.7 ")
    assert d.feed(b"MAIL FROM:<a@x.test>\r\n") == SENDER_OK
    assert d.feed("RCPT TO:<zoë@y.test>\r\n".encode()) == NEEDS_SMTPUTF8
    assert d.feed(b"RSET\r\n") == OK
    assert d.feed("MAIL FROM:<jörg@x.test> SMTPUTF8\r\n".encode()) == SENDER_OK
    assert d.feed("RCPT TO:<zoë@y.test>\r\n".encode()) == RCPT_OK
    assert d.feed(b"MAIL FROM:<\xff@x.test>\r\n") == BAD_SYNTAX  # not UTF-8 at all


@pytest.mark.parametrize(
    "path",
    [
        "<a@x.test,b@x.test>",  # a comma list is not one forward-path
        "<a@x.test>,<b@x.test>",
        "<a\x00b@x.test>",  # NUL and other controls, in the local part, the domain or a quoted string
        "<a@x\x00.test>",
        '<"a\x01"@x.test>',
        "<a\x7f@x.test>",
        '<a"b@x.test>',  # a bare quote
        '<"ab@x.test>',
        "<a@x.test>>",
        "<<a@x.test>",
        "<a..b@x.test>",
        "<.a@x.test>",
        "<a.@x.test>",
        "<a@x..test>",
        "<a@x.test.>",
        "<a@-x.test>",
        "<a@x-.test>",
        "<a@>",
        "<@x.test>",
        "<a@x.test@y.test>",
        "<a@[999.0.0.1]>",
        "<a@[IPv6:nonsense]>",
        "<a@[1.2.3.4>",
        "<@relay.test,b@y.test>",  # a source route needs its colon
        "<>",  # the null path is a reverse-path only
        "<a@x.test>\tNOTIFY=NEVER",
    ],
)
def test_malformed_forward_paths_get_501_5_1_3(path: str) -> None:
    d = session()
    d.feed(b"MAIL FROM:<a@x.test>\r\n")
    assert d.feed(b"RCPT TO:" + path.encode() + b"\r\n") == BAD_RECIPIENT
    assert d.conn.transaction is not None and d.conn.transaction.rcpt_tos == []
    assert d.feed(b"RCPT TO:<b@y.test>\r\n") == RCPT_OK  # the session goes on


@pytest.mark.parametrize(
    "path", ["<a@x.test,b@x.test>", "<a\x00@x.test>", '<a"@x.test>', "<Postmaster>", "<a@x.test> SIZE=1\x00"]
)
def test_malformed_reverse_paths_get_501_5_1_7(path: str) -> None:
    d = session()
    assert d.feed(b"MAIL FROM:" + path.encode() + b"\r\n") == BAD_SENDER
    assert d.conn.transaction is None
    assert d.feed(b"MAIL FROM:<a@x.test>\r\n") == SENDER_OK


@pytest.mark.parametrize(
    ("path", "address"),
    [
        ('<"john doe"@example.com>', '"john doe"@example.com'),  # RFC 5321 Quoted-string
        ('<"a>b,c"@example.com>', '"a>b,c"@example.com'),  # brackets and commas inside quotes are text
        ('<"quote\\"d"@example.com>', '"quote\\"d"@example.com'),  # quoted-pairSMTP
        ("<first.last+tag@sub.example.com>", "first.last+tag@sub.example.com"),
        ("<!#$%&'*+/=?^_`{|}~-@example.com>", "!#$%&'*+/=?^_`{|}~-@example.com"),
        ("<user@[192.0.2.1]>", "user@[192.0.2.1]"),
        ("<user@[IPv6:2001:db8::1]>", "user@[IPv6:2001:db8::1]"),
        ("<user@app_db>", "user@app_db"),  # the one leniency: "_" in host names
        ("<@a.test,@b.test:user@c.test>", "user@c.test"),  # source route read and dropped
        (" user@example.com", "user@example.com"),  # lenient framing: a space, no brackets
        ("<postmaster>", "postmaster"),
    ],
)
def test_valid_forward_paths_are_accepted_as_written(path: str, address: str) -> None:
    d = session()
    d.feed(b"MAIL FROM:<a@x.test>\r\n")
    assert d.feed(b"RCPT TO:" + path.encode() + b"\r\n") == RCPT_OK
    assert d.conn.transaction is not None and d.conn.transaction.rcpt_tos == [address]


def test_utf8_addresses_follow_smtputf8_rules() -> None:
    d = session()
    d.feed("MAIL FROM:<jörg@bücher.test> SMTPUTF8\r\n".encode())
    assert d.feed('RCPT TO:<"zoë k"@bücher.test>\r\n'.encode()) == RCPT_OK
    assert d.feed("RCPT TO:<a\u0085b@x.test>\r\n".encode()) == BAD_RECIPIENT  # a C1 control, even in UTF-8
    d = session()
    d.feed(b"MAIL FROM:<a@x.test>\r\n")
    assert d.feed("RCPT TO:<zoë@bücher.test>\r\n".encode()) == NEEDS_SMTPUTF8


def test_path_parsing_is_linear_in_hostile_arguments() -> None:
    """Inputs a backtracking grammar would choke on; each doubling may at most about double the time."""
    shapes: list[Callable[[int], str]] = [
        lambda n: "<" + "a-" * n,
        lambda n: "<" + "a." * n + "@",
        lambda n: '<"' + "\\a" * n,
        lambda n: "<@" + "a,@" * n,
        lambda n: "<a@" + "a-" * n + ">",
        lambda n: "<" + "a" * n + "@" + "b." * n,
        lambda n: "<" + "a" * n,
    ]
    for shape in shapes:
        costs = []
        for n in (2000, 4000, 8000, 16000):
            text = shape(n)
            runs = []
            for _ in range(5):  # the fastest of five: the machine is shared, noise only adds
                started = time.perf_counter()
                smtp._path(text, reverse=False)
                runs.append(time.perf_counter() - started)
            costs.append(min(runs))
        assert costs[-1] < 0.05, (shape(3), costs)
        assert costs[-1] < 8 * costs[0] + 0.002, (shape(3), costs)  # linear: 8x the input, not 64x


def test_sequence_and_syntax_errors_keep_serving() -> None:
    d = Driver(SmtpConnection(HOST))
    assert d.feed(b"MAIL FROM:<a@x.test>\r\n") == NEED_HELO
    d.feed(b"EHLO c\r\n")
    assert d.feed(b"RCPT TO:<b@y.test>\r\n") == NEED_MAIL
    assert d.feed(b"DATA\r\n") == NEED_MAIL
    assert d.feed(b"MAIL TO:<a@x.test>\r\n") == b"501 5.5.4 Syntax: MAIL FROM:<address>\r\n"
    assert d.feed(b"MAIL FROM:<a@x.test\r\n") == BAD_SENDER
    assert d.feed(b"MAIL FROM:<a@x.test>junk\r\n") == BAD_SENDER
    assert d.feed(b"MAIL FROM:<nodomain>\r\n") == BAD_SENDER
    assert d.feed(b"MAIL FROM:<>\r\n") == SENDER_OK  # the null reverse-path of bounces
    assert d.feed(b"MAIL FROM:<a@x.test>\r\n") == NESTED_MAIL
    assert d.feed(b"DATA\r\n") == NEED_RCPT
    assert d.feed(b"RCPT FROM:<b@y.test>\r\n") == b"501 5.5.4 Syntax: RCPT TO:<address>\r\n"
    assert d.feed(b"RCPT TO:<nobody>\r\n") == BAD_RECIPIENT
    assert d.feed(b"RCPT TO:<b c@y.test>\r\n") == BAD_RECIPIENT
    assert d.feed(b"RCPT TO:<Postmaster>\r\n") == RCPT_OK  # RFC 5321 §4.5.1
    assert d.feed(b"RCPT TO:<@relay.test:b@y.test>\r\n") == RCPT_OK  # source route dropped
    assert d.feed(b"RCPT TO: b@y.test\r\n") == RCPT_OK  # lenient: space, no brackets
    assert d.conn.transaction is not None
    assert d.conn.transaction.rcpt_tos == ["Postmaster", "b@y.test", "b@y.test"]
    assert d.feed(b"DATA now\r\n") == b"501 5.5.4 Syntax: DATA\r\n"
    assert d.feed(b"FROBNICATE\r\n") == UNKNOWN
    assert d.feed(b"\r\n") == UNKNOWN
    assert d.feed(b"TURN\r\n") == UNKNOWN
    assert d.feed(b"noop\r\nVRFY b\r\nVRFY\r\n") == OK + smtp.VRFY_REPLY + b"501 5.5.4 Syntax: VRFY address\r\n"
    assert d.feed(b"HELP\r\n").startswith(b"214 2.0.0 Commands: ")
    assert d.feed(b"RSET\r\n") == OK and d.conn.transaction is None
    assert d.feed(TX + b"DATA\r\nok\r\n.\r\n") == SENDER_OK + RCPT_OK + START_DATA + queued(1)


def test_too_many_recipients() -> None:
    d = session()
    d.feed(b"MAIL FROM:<a@x.test>\r\n")
    assert d.feed(b"".join(b"RCPT TO:<u%d@y.test>\r\n" % i for i in range(MAX_RECIPIENTS))) == RCPT_OK * MAX_RECIPIENTS
    assert d.feed(b"RCPT TO:<late@y.test>\r\n") == TOO_MANY_RCPTS


def test_helo_and_ehlo_reset_the_transaction() -> None:
    d = session()
    d.feed(TX)
    assert d.feed(b"HELO again.test\r\n") == b"250 mx.test\r\n"
    assert d.feed(b"DATA\r\n") == NEED_MAIL
    # A half-sent BDAT transaction is dropped too: its chunk neither blocks RCPT nor leaks into the next message.
    d.feed(b"EHLO c\r\n" + TX + b"BDAT 5\r\nstale")
    assert d.feed(b"EHLO c\r\n") == ehlo_reply("SIZE")
    assert d.feed(TX) == SENDER_OK + RCPT_OK
    assert d.feed(b"BDAT 5 LAST\r\nfresh") == queued(1)
    assert d.messages[0].content == b"fresh"


def test_data_over_the_limit_is_552_and_the_session_goes_on() -> None:
    d = session(max_message_size=100)
    d.feed(TX + b"DATA\r\n")
    for _ in range(1000):
        assert d.feed(b"x" * 98 + b"\r\n") == b""
    assert d.conn.buffered < 300  # past the limit nothing is kept but the terminator search window
    assert d.feed(b".\r\nNOOP\r\n") == TOO_BIG + OK
    assert d.messages == [] and d.conn.transaction is None
    assert d.feed(TX + b"DATA\r\n" + b"y" * 98 + b"\r\n.\r\n") == SENDER_OK + RCPT_OK + START_DATA + queued(1)
    assert d.feed(TX + b"DATA\r\n" + b"y" * 99 + b"\r\n.\r\n") == SENDER_OK + RCPT_OK + START_DATA + TOO_BIG


def test_content_is_consumed_as_it_arrives_so_only_pipelined_input_counts_as_buffered() -> None:
    """The adapter stops reading past 1 MiB buffered; content must never count, or any message
    over 1 MiB waits for the idle timeout."""
    body = b"".join(b"%07d ..dotted line\r\n" % i for i in range(150_000))  # 3.6 MB, every line dot-stuffed
    for command, data in ((b"DATA\r\n", body.replace(b"\r\n..", b"\r\n...") + b".\r\n"),
                          (b"BDAT %d LAST\r\n" % len(body), body)):  # fmt: skip
        d = session()
        d.feed(TX + command)
        for start in range(0, len(data), 65536):
            d.feed(data[start : start + 65536])
            assert d.conn.buffered <= 4  # at most a tail that may begin CRLF.CRLF
        [msg] = d.messages
        assert msg.content == body and msg.size == len(body)
        assert all(len(part) >= smtp.PIECE for part in msg.parts[:-1])


def test_dot_unstuffing_does_not_depend_on_how_the_bytes_are_split() -> None:
    wire = b"..a\r\n.\r\r\n..\r\n.b\r\n\r\n...\r\nc.\r\n.\r\n"
    expected = b".a\r\n\r\r\n.\r\nb\r\n\r\n..\r\nc.\r\n"
    for cut in range(len(wire) + 1):
        for second in range(cut, len(wire) + 1):
            d = session()
            d.feed(TX + b"DATA\r\n" + wire[:cut])
            if second > cut:  # b"" would be EOF
                d.feed(wire[cut:second])
            d.feed(wire[second:] + b"NOOP\r\n")
            assert [m.content for m in d.messages] == [expected], (cut, second)
            assert d.out.endswith(queued(1) + OK)


def test_tiny_reads_are_merged_into_pieces() -> None:
    d = session()
    d.feed(TX + b"DATA\r\n")
    line = b"0123456789abcdef\r\n"
    for _ in range(10_000):
        for byte in range(0, len(line), 3):
            d.feed(line[byte : byte + 3])
    d.feed(b".\r\n")
    [msg] = d.messages
    assert msg.content == line * 10_000
    assert len(msg.parts) <= len(msg.content) // smtp.PIECE + 1
    assert msg.take() == msg.parts or msg.parts == []  # take hands the pieces over
    assert msg.parts == [] and msg.content == b""


def test_data_at_the_limit_does_not_depend_on_how_it_arrives() -> None:
    whole, split = session(max_message_size=10), session(max_message_size=10)
    data = TX + b"DATA\r\n12345678\r\n.\r\n"
    whole.feed(data)
    split.feed(data[:-1])  # the body and ".\r" of the terminator: still within the limit
    split.feed(data[-1:])
    assert [m.content for m in whole.messages] == [m.content for m in split.messages] == [b"12345678\r\n"]


def test_bdat_chunks() -> None:
    d = session()
    d.feed(TX)
    assert d.feed(b"BDAT 6\r\nHello ") == b"250 2.0.0 6 octets received\r\n"
    assert d.feed(b"BDAT 10\r\n.\r\nworld") == b""  # chunk bytes are never commands nor dot-stuffed
    assert d.feed(b"\r\n") == b"250 2.0.0 16 octets received\r\n"
    assert d.feed(b"RCPT TO:<c@y.test>\r\n") == RCPT_AFTER_BDAT
    assert d.feed(b"DATA\r\n") == BDAT_MIXED
    assert d.feed(b"BDAT 0 last\r\nNOOP\r\n") == queued(1) + OK
    assert d.messages[0].content == b"Hello .\r\nworld\r\n"
    assert d.feed(TX + b"BDAT 0 LAST\r\n") == SENDER_OK + RCPT_OK + queued(2)
    assert d.messages[1].content == b""


def test_bdat_errors_read_the_chunk_then_reply() -> None:
    d = session(max_message_size=10)
    assert d.feed(b"BDAT 4\r\nRSET") == NEED_MAIL  # RFC 3030 §2: the chunk is consumed, not run
    assert d.feed(b"MAIL FROM:<a@x.test>\r\nBDAT 4 LAST\r\nQUIT") == SENDER_OK + NEED_RCPT
    for bad in (b"BDAT\r\n", b"BDAT x\r\n", b"BDAT 1 FIRST\r\n", b"BDAT 1 LAST more\r\n", "BDAT ²\r\n".encode()):
        assert d.feed(bad) == b"501 5.5.4 Syntax: BDAT size [LAST]\r\n", bad
    d.feed(b"RCPT TO:<b@y.test>\r\n")
    assert d.feed(b"BDAT 8\r\n12345678") == b"250 2.0.0 8 octets received\r\n"
    assert d.feed(b"BDAT 8\r\n12345678") == TOO_BIG
    assert d.feed(b"BDAT 3 LAST\r\nabc") == TOO_BIG
    assert d.conn.transaction is None and d.messages == []
    assert d.feed(TX + b"BDAT 10 LAST\r\n0123456789") == SENDER_OK + RCPT_OK + queued(1)
    assert d.feed(TX + b"BDAT 11 LAST\r\n0123456789X") == SENDER_OK + RCPT_OK + TOO_BIG


def test_rset_drops_a_bdat_transaction() -> None:
    d = session()
    d.feed(TX + b"BDAT 3\r\nold")
    assert d.feed(b"RSET\r\n") == OK
    assert d.feed(TX + b"BDAT 3 LAST\r\nnew") == SENDER_OK + RCPT_OK + queued(1)
    assert d.messages[0].content == b"new"


def test_line_length_limits() -> None:
    d = session()
    # MAX_COMMAND counts the line with its CRLF.
    assert d.feed(b"NOOP " + b"x" * (MAX_COMMAND - 7) + b"\r\n") == OK
    assert d.feed(b"NOOP " + b"x" * (MAX_COMMAND - 6) + b"\r\n") == TOO_LONG
    assert d.feed(b"NOOP " + b"x" * 5000) == TOO_LONG  # refused before its end arrives
    assert d.feed(b"y" * 5000) == b""  # the rest of that line is dropped quietly
    assert d.feed(b"QUIT\r\nNOOP\r\n") == OK  # "QUIT" was still part of it
    assert d.conn.buffered == 0
    assert d.feed(b"X" * 3000 + b"\r\nNOOP\r\n") == TOO_LONG + OK


def test_auth_plain_login_and_cancel() -> None:
    d = session(allow_insecure_auth=True)
    assert d.feed(b"AUTH PLAIN\r\n") == b"334 \r\n"
    assert d.feed(b"*\r\n") == AUTH_CANCELLED
    assert d.feed(b"AUTH PLAIN !!\r\n") == BAD_BASE64
    assert d.feed(b"AUTH PLAIN " + base64.b64encode(b"no-nul") + b"\r\n") == BAD_BASE64
    assert d.feed(b"AUTH LOGIN\r\n") == b"334 VXNlcm5hbWU6\r\n"  # "Username:"
    assert d.feed(base64.b64encode(b"ann") + b"\r\n") == b"334 UGFzc3dvcmQ6\r\n"  # "Password:"
    assert d.feed(base64.b64encode(b"any") + b"\r\n") == AUTH_OK
    assert d.conn.auth_user == "ann"  # no credentials configured: any login, recorded
    assert d.feed(b"AUTH PLAIN\r\n") == ALREADY_AUTH
    d.feed(TX + b"DATA\r\nx\r\n.\r\n")
    assert d.messages[0].auth_user == "ann"


def test_auth_checks_configured_credentials() -> None:
    d = session(allow_insecure_auth=True, credentials={"ann": "s3cret"})
    assert d.feed(b"AUTH PLAIN " + base64.b64encode(b"\0ann\0wrong") + b"\r\n") == AUTH_FAILED
    assert d.feed(b"AUTH PLAIN " + base64.b64encode(b"\0eve\0s3cret") + b"\r\n") == AUTH_FAILED
    assert d.feed(b"AUTH PLAIN " + base64.b64encode(b"\0\0s3cret") + b"\r\n") == AUTH_FAILED
    assert d.feed(b"AUTH PLAIN " + base64.b64encode(b"\0ann\0s3cret") + b"\r\n") == AUTH_OK
    assert d.conn.auth_user == "ann"


def test_require_auth_refuses_mail_until_login_and_reports_failures() -> None:
    d = session(allow_insecure_auth=True, credentials={"ann": "s3cret"}, require_auth=True)
    assert d.feed(b"MAIL FROM:<a@x.test>\r\n") == b"530 5.7.0 Authentication required\r\n"  # RFC 4954 §6
    assert d.feed(b"AUTH PLAIN " + base64.b64encode(b"\0ann\0wrong") + b"\r\n") == AUTH_FAILED
    assert [e for e in d.events if isinstance(e, LoginFailed)] == [LoginFailed("ann")]
    assert d.feed(b"MAIL FROM:<a@x.test>\r\n").startswith(b"530 ")
    assert d.feed(b"AUTH PLAIN " + base64.b64encode(b"\0ann\0s3cret") + b"\r\n") == AUTH_OK
    assert d.feed(b"MAIL FROM:<a@x.test>\r\n") == b"250 2.1.0 Ok\r\n"
    assert len([e for e in d.events if isinstance(e, LoginFailed)]) == 1


def test_auth_cram_md5() -> None:
    challenge = "<42.1@mx.test>"
    d = session(allow_insecure_auth=True, credentials={"ann": "s3cret"}, challenge=challenge)
    assert d.feed(b"AUTH CRAM-MD5 dGVzdA==\r\n") == BAD_MECHANISM  # no initial response (RFC 2195)
    assert d.feed(b"AUTH CRAM-MD5\r\n") == b"334 " + base64.b64encode(challenge.encode()) + b"\r\n"
    assert d.feed(base64.b64encode(b"ann 0123456789abcdef") + b"\r\n") == AUTH_FAILED
    digest = hmac.new(b"s3cret", challenge.encode(), hashlib.md5).hexdigest()
    d.feed(b"AUTH CRAM-MD5\r\n")
    assert d.feed(base64.b64encode(f"ann {digest.upper()}".encode()) + b"\r\n") == AUTH_OK


def test_auth_refusals() -> None:
    d = Driver(SmtpConnection(HOST, allow_insecure_auth=True))
    assert d.feed(b"AUTH PLAIN\r\n") == NEED_EHLO
    d.feed(b"HELO c\r\n")
    assert d.feed(b"AUTH PLAIN\r\n") == NEED_EHLO  # AUTH is an ESMTP extension
    d.feed(b"EHLO c\r\n")
    assert d.feed(b"AUTH GSSAPI\r\n") == BAD_MECHANISM
    d.feed(b"MAIL FROM:<a@x.test>\r\n")
    assert d.feed(b"AUTH PLAIN\r\n") == AUTH_IN_TX
    assert session().feed(b"AUTH PLAIN\r\n") == AUTH_NEEDS_TLS


def test_auth_responses_may_be_long_but_not_endless() -> None:
    d = session(allow_insecure_auth=True)
    long_plain = base64.b64encode(b"\0" + b"u" * 4000 + b"\0pw")
    assert len(long_plain) > MAX_COMMAND
    assert d.feed(b"AUTH PLAIN " + long_plain + b"\r\n") == AUTH_OK
    d = session(allow_insecure_auth=True)
    d.feed(b"AUTH LOGIN\r\n")
    assert d.feed(b"A" * (MAX_AUTH_LINE + 1)) == TOO_LONG
    assert d.conn.state is State.COMMAND  # the exchange is abandoned
    assert d.feed(b"A\r\nNOOP\r\n") == OK
    # The over-long line and the next command in one read: the command is a command, not a SASL answer.
    d.feed(b"AUTH LOGIN\r\n")
    assert d.feed(b"A" * (MAX_AUTH_LINE + 1) + b"\r\nNOOP\r\n") == TOO_LONG + OK


def test_starttls_drops_pipelined_commands_and_resets_the_session() -> None:
    d = Driver(SmtpConnection(HOST, tls_available=True, require_tls=True))
    d.feed(b"EHLO c\r\n")
    assert d.feed(b"MAIL FROM:<a@x.test>\r\n") == NEED_TLS
    assert d.feed(b"STARTTLS now\r\n") == b"501 5.5.4 Syntax: STARTTLS\r\n"
    # CVE-2011-0411: what was pipelined behind STARTTLS in clear must not run once TLS is up.
    assert d.feed(b"STARTTLS\r\nMAIL FROM:<x@y.test>\r\n") == READY_TLS
    assert d.handshakes == 1 and d.conn.tls_active and d.conn.state is State.COMMAND
    assert d.conn.buffered == 0 and d.conn.helo is None and d.conn.transaction is None
    assert d.feed(b"MAIL FROM:<a@x.test>\r\n") == NEED_HELO
    assert d.feed(b"EHLO c\r\n") == ehlo_reply("SIZE", "AUTH PLAIN LOGIN CRAM-MD5")
    assert d.feed(b"STARTTLS\r\n") == ALREADY_TLS
    assert d.feed(TX + b"DATA\r\nx\r\n.\r\n") == SENDER_OK + RCPT_OK + START_DATA + queued(1)
    assert d.messages[0].tls
    assert session().feed(b"STARTTLS\r\n") == TLS_UNAVAILABLE


def test_bytes_arriving_during_the_handshake_are_dropped() -> None:
    conn = SmtpConnection(HOST, tls_available=True)
    conn.greeting()
    assert conn.receive_data(b"EHLO c\r\nSTARTTLS\r\n")[-1] == StartTlsRequested()
    assert conn.receive_data(b"MAIL FROM:<x@y.test>\r\n") == []
    assert conn.tls_started() == []
    assert conn.buffered == 0


def test_quit_eof_and_timeout_close() -> None:
    d = session()
    assert d.feed(b"QUIT\r\nNOOP\r\n") == BYE
    assert d.closed and d.conn.state is State.CLOSED
    assert d.feed(b"NOOP\r\n") == b""
    eof = session()
    eof.feed(TX + b"DATA\r\npartial")
    assert eof.conn.receive_data(b"") == [] and eof.conn.state is State.CLOSED
    assert eof.feed(b"\r\n.\r\n") == b"" and eof.messages == []
    idle = session()
    assert idle.conn.timed_out() == [Reply(TIMEOUT), CloseRequested()]
    assert TIMEOUT.startswith(b"421 4.4.2 ")
    assert idle.feed(b"NOOP\r\n") == b""


REPLY_LINE = re.compile(rb"([2-5])\d\d ([245])\.\d{1,3}\.\d{1,3} [^\r\n]*\r\n")


REPLIES = sorted(n for n in dir(smtp) if n.isupper() and n != "CRLF" and isinstance(getattr(smtp, n), bytes))


@pytest.mark.parametrize("name", REPLIES)
def test_reply_constants_carry_a_matching_enhanced_code(name: str) -> None:
    reply = getattr(smtp, name)
    if reply.startswith(b"3"):  # 354: RFC 3463 codes exist only for classes 2, 4 and 5
        assert re.fullmatch(rb"3\d\d [^\r\n]*\r\n", reply)
        return
    match = REPLY_LINE.fullmatch(reply)
    assert match is not None, reply
    assert match[1] == match[2], reply


def test_a_client_that_leaves_before_the_250_ends_the_session_quietly() -> None:
    # Fire-and-forget clients send the message and QUIT and hang up; the commit finishes after that.
    d = session()
    d.conn.receive_data(b"EHLO x\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n")
    events = d.conn.receive_data(b"Subject: s\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    assert any(isinstance(e, MessageReceived) for e in events)
    assert d.conn.receive_data(b"") == []  # EOF while the store commits
    assert d.conn.message_stored(b"250 2.0.0 Ok\r\n") == []
    assert d.conn.state is State.CLOSED


def test_expn_is_not_implemented_and_vrfy_neither_confirms_nor_denies() -> None:
    d = session()
    assert d.feed(b"EXPN staff\r\n") == smtp.NOT_IMPLEMENTED
    assert d.feed(b"VRFY bob\r\n") == smtp.VRFY_REPLY  # RFC 5321 §3.5.3: 252
