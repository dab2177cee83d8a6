"""Hypothesis properties of the sans-IO SMTP core: any bytes, however split, never raise, get well-formed
replies, and leave a session that still carries a message exactly."""

from __future__ import annotations

import itertools
import re

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mailsandbox.protocols.smtp import (
    CloseRequested,
    Event,
    MessageReceived,
    Reply,
    SmtpConnection,
    StartTlsRequested,
    State,
)

HOST = "mx.test"
_WORDS = st.sampled_from(
    [
        b"EHLO c.test\r\n",
        b"HELO c.test\r\n",
        b"MAIL FROM:<a@x.test>\r\n",
        b"MAIL FROM:<a@x.test> SIZE=10 BODY=8BITMIME\r\n",
        "MAIL FROM:<ä@x.test> SMTPUTF8\r\n".encode(),
        "MAIL FROM:<a@x.test> SIZE=²\r\n".encode(),
        b"MAIL FROM:<a@x.test> X=1\r\n",
        b"RCPT TO:<b@y.test>\r\n",
        "RCPT TO:<ö@y.test>\r\n".encode(),
        b"DATA\r\n",
        b"BDAT 3\r\n",
        b"BDAT 0 LAST\r\n",
        b"BDAT 2 LAST\r\n",
        "BDAT ³\r\n".encode(),
        b"RSET\r\n",
        b"NOOP\r\n",
        b"VRFY x\r\n",
        b"HELP\r\n",
        b"STARTTLS\r\n",
        b"AUTH PLAIN\r\n",
        b"AUTH LOGIN\r\n",
        b"AUTH CRAM-MD5\r\n",
        b"AGFubgBwdw==\r\n",
        b"*\r\n",
        b"QUIT\r\n",
        b".\r\n",
        b"..\r\n",
        b"\r\n",
        b"\n",
        b"\r",
        b"X" * 2100,
        b"A" * 13000,
    ]
)
_TX = b"EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n"
# Openings that reach each state, so the bytes after them (mostly protocol words) start from anywhere.
_OPENINGS = st.sampled_from(
    [b"", _TX, _TX + b"DATA\r\nhalf", _TX + b"BDAT 3\r\nabc", _TX + b"BDAT 5\r\nab", b"AUTH LOGIN\r\n", b"X" * 2100]
)
_BYTES = st.one_of(
    st.binary(max_size=300),
    st.lists(st.one_of(_WORDS, _WORDS, _WORDS, st.binary(max_size=12)), max_size=30).map(b"".join),
)
GARBAGE = st.tuples(_OPENINGS, _BYTES).map(b"".join)
OPTIONS = st.fixed_dictionaries(
    {
        "max_message_size": st.sampled_from([0, 10, 100_000]),
        "tls_available": st.booleans(),
        "allow_insecure_auth": st.booleans(),
        "credentials": st.sampled_from([None, {"ann": "pw"}]),
    }
)
# Message bodies built from the bytes that matter to the DATA reader.
CONTENT = st.lists(st.sampled_from([b".", b"..", b"\r\n", b"\r", b"\n", b"a", b" ", b"\xff", b"\r\n.\r\n"])).map(
    b"".join
)
LINE = re.compile(rb"(\d{3})([ -])([^\r\n]*)\r\n")
ENHANCED = re.compile(r"([245])\.\d{1,3}\.\d{1,3}( |$)")


class Driver:
    """Records events, answering the core's requests at once as the asyncio adapter does."""

    def __init__(self, conn: SmtpConnection) -> None:
        self.conn = conn
        self.events: list[Event] = []
        self.messages: list[bytes] = []
        self.record(conn.greeting())

    def feed(self, data: bytes) -> None:
        if data:  # b"" would be EOF
            self.record(self.conn.receive_data(data))

    def record(self, events: list[Event]) -> None:
        queue = list(events)
        while queue:
            event = queue.pop(0)
            self.events.append(event)
            if isinstance(event, MessageReceived):
                self.messages.append(event.content)
                queue.extend(self.conn.message_stored(b"250 2.0.0 Ok: queued as %d\r\n" % len(self.messages)))
            elif isinstance(event, StartTlsRequested):
                queue.extend(self.conn.tls_started())

    @property
    def replies(self) -> list[bytes]:
        return [e.data for e in self.events if isinstance(e, Reply)]


def check_reply(data: bytes) -> None:
    """One or more lines "DDD[ -]text\\r\\n" with one code, "-" on all but the last; enhanced codes
    (RFC 2034, RFC 3463) on every 2xx/4xx/5xx except the greeting and the HELO/EHLO answer."""
    lines = list(LINE.finditer(data))
    assert lines and b"".join(m[0] for m in lines) == data, data
    codes = {m[1] for m in lines}
    assert len(codes) == 1, data
    assert [m[2] for m in lines] == [b"-"] * (len(lines) - 1) + [b" "], data
    code = codes.pop()
    assert b"200" <= code < b"600", data
    if code.startswith(b"3"):  # 334 and 354: no enhanced codes for class 3
        return
    text = lines[0][3].decode("utf-8")
    if (code == b"220" and text.startswith(HOST + " ")) or (code == b"250" and text == HOST):
        return
    match = ENHANCED.match(text)
    assert match is not None and match[1] == code.decode()[0], data


def splits(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def stuff(content: bytes) -> bytes:
    """What a client sends for `content` after DATA (RFC 5321 §4.5.2): a dot doubled at each line start."""
    return (b"." if content.startswith(b".") else b"") + content.replace(b"\r\n.", b"\r\n..") + b".\r\n"


def resync(d: Driver) -> None:
    """End whatever the garbage left half-done the way a client would: finish the line, the message,
    the chunk or the SASL exchange."""
    d.feed(b"\r\n")
    for _ in range(50):
        state = d.conn.state
        if state is State.DATA:
            d.feed(b"\r\n.\r\n")
        elif state is State.BDAT:
            d.feed(b"x")
        elif state is State.AUTH:
            d.feed(b"*\r\n")
        else:
            return


@settings(max_examples=400, deadline=None)
@given(GARBAGE, OPTIONS, st.lists(st.integers(min_value=0)), st.booleans())
def test_any_bytes_any_split_give_the_same_well_formed_replies(
    data: bytes, options: dict[str, object], cuts: list[int], bytewise: bool
) -> None:
    # One CRAM-MD5 challenge for both: by default each exchange makes a random one.
    whole = Driver(SmtpConnection(HOST, challenge="<1@fuzz>", **options))  # type: ignore[arg-type]
    whole.feed(data)
    pieces = Driver(SmtpConnection(HOST, challenge="<1@fuzz>", **options))  # type: ignore[arg-type]
    for piece in [data[i : i + 1] for i in range(len(data))] if bytewise else splits(data, cuts):
        pieces.feed(piece)
    for reply in whole.replies + pieces.replies:
        check_reply(reply)
    if not options["tls_available"]:  # after STARTTLS, what was pipelined in clear is dropped: timing counts
        assert whole.events == pieces.events
    for d in (whole, pieces):
        if d.conn.state is State.CLOSED:
            assert isinstance(d.events[-1], CloseRequested)


@settings(max_examples=300, deadline=None)
@given(GARBAGE, OPTIONS, CONTENT, st.booleans(), st.booleans(), st.lists(st.integers(min_value=0)))
def test_session_carries_an_exact_message_after_garbage(
    garbage: bytes,
    options: dict[str, object],
    content: bytes,
    fresh_ehlo: bool,
    bdat: bool,
    cuts: list[int],
) -> None:
    options = {**options, "max_message_size": 0}
    d = Driver(SmtpConnection(HOST, **options))  # type: ignore[arg-type]
    d.feed(b"EHLO c.test\r\n" + garbage)
    resync(d)
    assume(d.conn.state is State.COMMAND)  # not after QUIT
    start = len(d.messages)
    hello = b"EHLO again.test\r\n" if fresh_ehlo or d.conn.helo is None else b"RSET\r\n"
    envelope = hello + b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n"
    if bdat:
        chunks = splits(content, cuts) or [b""]
        body = b"".join(b"BDAT %d\r\n%s" % (len(c), c) for c in chunks[:-1])
        body += b"BDAT %d LAST\r\n%s" % (len(chunks[-1]), chunks[-1])
        expected = content
    else:
        expected = content if not content or content.endswith(b"\r\n") else content + b"\r\n"
        body = b"DATA\r\n" + stuff(expected)
    for piece in splits(envelope + body, cuts):
        d.feed(piece)
    assert d.messages[start:] == [expected]
    assert d.conn.state is State.COMMAND and d.conn.transaction is None


@settings(max_examples=300, deadline=None)
@given(CONTENT, st.integers(min_value=-3, max_value=3), st.booleans())
def test_size_limit_does_not_depend_on_splits(content: bytes, margin: int, bdat: bool) -> None:
    expected = content if not content or content.endswith(b"\r\n") else content + b"\r\n"
    limit = max(1, len(content if bdat else expected) + margin)  # at the limit, give or take a few octets
    body = b"BDAT %d LAST\r\n%s" % (len(content), content) if bdat else b"DATA\r\n" + stuff(expected)
    data = b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n" + body + b"NOOP\r\n"
    whole, pieces = (
        Driver(SmtpConnection(HOST, max_message_size=limit)),
        Driver(SmtpConnection(HOST, max_message_size=limit)),
    )
    whole.feed(data)
    for i in range(len(data)):
        pieces.feed(data[i : i + 1])
    assert whole.events == pieces.events
    assert whole.replies[-1] == b"250 2.0.0 Ok\r\n"  # the session goes on either way


@settings(max_examples=100, deadline=None)
@given(CONTENT)
def test_stuffing_round_trips_through_data(content: bytes) -> None:
    d = Driver(SmtpConnection(HOST))
    expected = content if not content or content.endswith(b"\r\n") else content + b"\r\n"
    d.feed(b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n" + stuff(expected))
    assert d.messages == [expected]
