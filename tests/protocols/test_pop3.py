"""Byte transcripts and fuzzing of the sans-IO POP3 core; no sockets."""

from __future__ import annotations

import base64
import hashlib
import hmac

from hypothesis import given, settings
from hypothesis import strategies as st

from mailsandbox.models import MailEntry
from mailsandbox.protocols.pop3 import (
    ERR_AUTH,
    ERR_DELETED,
    ERR_IN_USE,
    ERR_NO_SUCH,
    ERR_STATE,
    ERR_TOO_LONG,
    ERR_UNKNOWN,
    CloseRequested,
    Event,
    MaildropRequested,
    MessageRequested,
    Pop3Connection,
    Reply,
    StartTlsRequested,
    State,
    UpdateRequested,
    unique_id,
    wire_lines,
)

MESSAGES = {
    "m1": b"Subject: one\r\nFrom: a@x.test\r\n\r\nbody one\r\n.dotted\r\n..two\r\nend\r\n",
    "m2": b"Subject: two\n\nbare LF body\nline 2\n",
    "m3": b"Subject: three\r\n\r\n",
}
DROP = [
    MailEntry(uid, mid, frozenset(), 0.0, len(MESSAGES[mid]))
    for uid, mid in ((1, "m1"), (2, "m2"), (5, "m3"))
]


class Driver:
    """Answers the core's requests the way the asyncio adapter does, from dicts."""

    def __init__(self, conn: Pop3Connection, locked: bool = False) -> None:
        self.conn = conn
        self.locked = locked
        self.out = bytearray()
        self.replies: list[Reply] = []
        self.updates: list[UpdateRequested] = []
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
            if isinstance(event, Reply):
                self.out += event.data
                self.replies.append(event)
            elif isinstance(event, MaildropRequested):
                queue.extend(self.conn.answer_maildrop(None if self.locked else DROP))
            elif isinstance(event, MessageRequested):
                queue.extend(self.conn.answer_message(MESSAGES.get(event.message_id)))
            elif isinstance(event, UpdateRequested):
                self.updates.append(event)
                queue.extend(self.conn.answer_update(True))
            elif isinstance(event, StartTlsRequested):
                queue.extend(self.conn.tls_started())
            elif isinstance(event, CloseRequested):
                self.closed = True


def logged_in() -> Driver:
    d = Driver(Pop3Connection())
    d.feed(b"USER Bob@Example.TEST\r\nPASS x\r\n")
    assert d.conn.state is State.TRANSACTION
    return d


def test_greeting_carries_apop_timestamp() -> None:
    d = Driver(Pop3Connection("h.test", banner_id="42"))
    assert bytes(d.out) == b"+OK h.test POP3 ready <42@h.test>\r\n"


def test_user_pass_then_stat_list_uidl() -> None:
    d = Driver(Pop3Connection())
    assert d.feed(b"USER Bob@Example.TEST\r\n") == b"+OK send PASS\r\n"
    assert d.feed(b"PASS any thing\r\n").startswith(b"+OK maildrop has 3 messages")
    assert d.conn.user == "bob@example.test"
    size = sum(i.size for i in DROP)
    assert d.feed(b"STAT\r\n") == f"+OK 3 {size}\r\n".encode()
    assert d.feed(b"list\r\n") == (
        f"+OK\r\n1 {DROP[0].size}\r\n2 {DROP[1].size}\r\n3 {DROP[2].size}\r\n.\r\n".encode()
    )
    assert d.feed(b"LIST 2\r\n") == f"+OK 2 {DROP[1].size}\r\n".encode()
    assert d.feed(b"UIDL\r\n") == b"+OK\r\n1 1.m1\r\n2 2.m2\r\n3 5.m3\r\n.\r\n"
    assert d.feed(b"UIDL 3\r\n") == b"+OK 3 5.m3\r\n"
    assert d.feed(b"LIST 4\r\n") == ERR_NO_SUCH + b"\r\n"
    assert d.feed(b"LIST 0\r\n") == ERR_NO_SUCH + b"\r\n"
    assert d.feed(b"NOOP\r\n") == b"+OK\r\n"


def test_retr_byte_stuffs_and_uses_crlf() -> None:
    d = logged_in()
    body = b"Subject: one\r\nFrom: a@x.test\r\n\r\nbody one\r\n..dotted\r\n...two\r\nend\r\n"
    assert d.feed(b"RETR 1\r\n") == b"+OK %d octets\r\n" % (len(body) - 2) + body + b".\r\n"
    bare = b"Subject: two\r\n\r\nbare LF body\r\nline 2\r\n"
    assert d.feed(b"RETR 2\r\n") == b"+OK %d octets\r\n" % len(bare) + bare + b".\r\n"


def test_top_sends_headers_and_n_lines() -> None:
    d = logged_in()
    assert d.feed(b"TOP 1 0\r\n").endswith(b"From: a@x.test\r\n\r\n.\r\n")
    assert d.feed(b"TOP 1 2\r\n").endswith(b"\r\n\r\nbody one\r\n..dotted\r\n.\r\n")
    assert d.feed(b"TOP 3 10\r\n").endswith(b"Subject: three\r\n\r\n.\r\n")
    assert d.feed(b"TOP 1\r\n") == b"-ERR syntax error\r\n"
    assert d.feed(b"TOP 1 -1\r\n") == b"-ERR syntax error\r\n"


def test_dele_marks_rset_unmarks_quit_updates() -> None:
    d = logged_in()
    assert d.feed(b"DELE 2\r\n") == b"+OK message 2 deleted\r\n"
    assert d.feed(b"DELE 2\r\n") == ERR_DELETED + b"\r\n"
    assert d.feed(b"RETR 2\r\n") == ERR_DELETED + b"\r\n"
    assert d.feed(b"LIST\r\n").count(b"\r\n") == 4  # +OK, two lines, terminator
    assert d.feed(b"RSET\r\n").startswith(b"+OK 3 ")
    assert d.feed(b"DELE 1\r\nDELE 3\r\n") == b"+OK message 1 deleted\r\n+OK message 3 deleted\r\n"
    assert d.updates == []
    assert d.feed(b"QUIT\r\n").startswith(b"+OK")
    assert d.updates == [UpdateRequested("bob@example.test", (1, 5))]
    assert d.closed and d.conn.state is State.CLOSED
    assert d.feed(b"NOOP\r\n") == b""


def test_eof_without_quit_never_updates() -> None:
    d = logged_in()
    d.feed(b"DELE 1\r\n")
    d.feed(b"")
    assert d.updates == [] and d.conn.state is State.CLOSED


def test_quit_in_authorization_does_not_update() -> None:
    d = Driver(Pop3Connection())
    assert d.feed(b"QUIT\r\n").startswith(b"+OK")
    assert d.closed and d.updates == []


def test_in_use_refusal_keeps_authorization() -> None:
    d = Driver(Pop3Connection(), locked=True)
    d.feed(b"USER bob@x.test\r\n")
    assert d.feed(b"PASS x\r\n") == ERR_IN_USE + b"\r\n"
    assert d.conn.state is State.AUTHORIZATION
    assert d.feed(b"STAT\r\n") == ERR_STATE + b"\r\n"


def test_credentials_are_checked() -> None:
    d = Driver(Pop3Connection(credentials={"Bob@X.test": "s3cret"}))
    d.feed(b"USER bob@x.test\r\n")
    assert d.feed(b"PASS wrong\r\n") == ERR_AUTH + b"\r\n"
    assert d.feed(b"PASS s3cret\r\n") == b"-ERR USER first\r\n"
    d.feed(b"USER BOB@x.test\r\n")
    assert d.feed(b"PASS s3cret\r\n").startswith(b"+OK maildrop")


def test_auth_plain_with_continuation_and_initial_response() -> None:
    token = base64.b64encode(b"\0bob@x.test\0pw")
    d = Driver(Pop3Connection(credentials={"bob@x.test": "pw"}))
    assert d.feed(b"AUTH PLAIN\r\n") == b"+ \r\n"
    assert d.feed(token + b"\r\n").startswith(b"+OK maildrop")
    d = Driver(Pop3Connection(credentials={"bob@x.test": "pw"}))
    assert d.feed(b"AUTH PLAIN " + token + b"\r\n").startswith(b"+OK maildrop")
    d = Driver(Pop3Connection())
    assert d.feed(b"AUTH PLAIN\r\n*\r\n") == b"+ \r\n-ERR AUTH cancelled\r\n"
    assert d.feed(b"AUTH PLAIN !!!\r\n") == b"-ERR invalid SASL response\r\n"
    assert d.feed(b"AUTH GSSAPI\r\n") == b"-ERR unsupported SASL mechanism\r\n"
    other = base64.b64encode(b"eve@x.test\0bob@x.test\0pw")
    assert d.feed(b"AUTH PLAIN " + other + b"\r\n") == ERR_AUTH + b"\r\n"


def test_auth_login_and_cram_md5() -> None:
    # The same SASL mechanisms as SMTP (sandbox/protocols/sasl.py).
    d = Driver(Pop3Connection(credentials={"bob@x.test": "pw"}))
    assert d.feed(b"AUTH LOGIN\r\n") == b"+ " + base64.b64encode(b"Username:") + b"\r\n"
    assert d.feed(base64.b64encode(b"bob@x.test") + b"\r\n") == b"+ " + base64.b64encode(b"Password:") + b"\r\n"
    assert d.feed(base64.b64encode(b"pw") + b"\r\n").startswith(b"+OK maildrop")
    d = Driver(Pop3Connection(credentials={"bob@x.test": "pw"}))
    challenge = base64.b64decode(d.feed(b"AUTH CRAM-MD5\r\n")[2:-2])
    wrong = hmac.new(b"nope", challenge, hashlib.md5).hexdigest()
    assert d.feed(base64.b64encode(f"bob@x.test {wrong}".encode()) + b"\r\n") == ERR_AUTH + b"\r\n"
    challenge = base64.b64decode(d.feed(b"AUTH CRAM-MD5\r\n")[2:-2])
    assert challenge.startswith(b"<") and challenge.endswith(b">")
    digest = hmac.new(b"pw", challenge, hashlib.md5).hexdigest()
    assert d.feed(base64.b64encode(f"bob@x.test {digest}".encode()) + b"\r\n").startswith(b"+OK maildrop")


def test_apop() -> None:
    d = Driver(Pop3Connection("h", {"bob@x.test": "tanstaaf"}, banner_id="1896.697170952"))
    digest = hashlib.md5(b"<1896.697170952@h>tanstaaf", usedforsecurity=False).hexdigest()
    assert d.feed(b"APOP bob@x.test 0123\r\n") == ERR_AUTH + b"\r\n"
    assert d.feed(f"APOP bob@x.test {digest}\r\n".encode()).startswith(b"+OK maildrop")


def test_capa_and_stls() -> None:
    d = Driver(Pop3Connection(tls_available=True))
    capa = d.feed(b"CAPA\r\n")
    assert capa.startswith(b"+OK") and capa.endswith(b"\r\n.\r\n")
    caps = (b"TOP", b"UIDL", b"USER", b"RESP-CODES", b"PIPELINING", b"SASL PLAIN LOGIN CRAM-MD5", b"STLS")
    for cap in caps:
        assert b"\r\n" + cap + b"\r\n" in capa
    # Commands pipelined behind STLS in plain text are dropped (RFC 2595 §4).
    assert d.feed(b"STLS\r\nUSER evil\r\n") == b"+OK begin TLS negotiation\r\n"
    assert d.conn.tls_active
    assert b"STLS" not in d.feed(b"CAPA\r\n")
    assert d.feed(b"STLS\r\n") == b"-ERR TLS already active\r\n"
    assert d.feed(b"PASS x\r\n") == b"-ERR USER first\r\n"
    plain = Driver(Pop3Connection())
    assert b"STLS" not in plain.feed(b"CAPA\r\n")
    assert plain.feed(b"STLS\r\n") == b"-ERR STLS not available\r\n"


def test_bad_commands_keep_serving() -> None:
    d = Driver(Pop3Connection())
    assert d.feed(b"FOO\r\n") == ERR_UNKNOWN + b"\r\n"
    assert d.feed(b"\r\n") == b"-ERR syntax error\r\n"
    assert d.feed(b"RETR 1\r\n") == ERR_STATE + b"\r\n"
    assert d.feed(b"USER\r\n") == b"-ERR syntax error\r\n"
    assert d.feed(b"X" * 300 + b"\r\nNOOP\r\n") == ERR_TOO_LONG + b"\r\n" + ERR_STATE + b"\r\n"
    assert d.feed(b"Y" * 1000) == ERR_TOO_LONG + b"\r\n"
    assert d.feed(b"Y" * 1000 + b"\r\nQUIT\r\n").startswith(b"+OK")
    t = logged_in()
    assert t.feed(b"RETR x\r\n") == b"-ERR syntax error\r\n"
    assert t.feed(b"RETR 99999999999999\r\n") == ERR_NO_SUCH + b"\r\n"
    assert t.feed(b"USER a\r\n") == ERR_STATE + b"\r\n"


def test_line_limit_is_255_octets_with_crlf() -> None:
    d = Driver(Pop3Connection())
    assert d.feed(b"USER " + b"a" * 248 + b"\r\n") == b"+OK send PASS\r\n"  # 255 octets
    assert d.feed(b"USER " + b"a" * 249 + b"\r\n") == ERR_TOO_LONG + b"\r\n"


def test_unique_id_is_printable_and_bounded() -> None:
    odd = MailEntry(7, "abc def\x7f" + "z" * 100, frozenset(), 0.0, 1)
    assert unique_id(odd) == ("7.abc_def_" + "z" * 100)[:70]


def test_wire_lines() -> None:
    assert wire_lines(b"") == []
    assert wire_lines(b"a\r\n.b\nc") == [b"a", b"..b", b"c"]
    assert wire_lines(b"a\rb\n") == [b"a\rb"]


# -- fuzzing ------------------------------------------------------------------------------

_WORDS = st.sampled_from(
    [
        b"USER a@b\r\n",
        b"PASS x\r\n",
        b"STAT\r\n",
        b"LIST\r\n",
        b"LIST 2\r\n",
        b"UIDL 1\r\n",
        b"RETR 1\r\n",
        b"TOP 1 1\r\n",
        b"DELE 1\r\n",
        b"RSET\r\n",
        b"NOOP\r\n",
        b"CAPA\r\n",
        b"STLS\r\n",
        b"AUTH PLAIN\r\n",
        b"AGJvYgB4\r\n",
        b"APOP a b\r\n",
        b"QUIT\r\n",
        b"\r\n",
        b"\n",
        b"X" * 300,
        b".",
    ]
)
_INPUT = st.one_of(st.binary(max_size=600), st.lists(st.one_of(_WORDS, st.binary(max_size=20))).map(b"".join))


def _check_well_formed(replies: list[Reply]) -> None:
    for reply in replies:
        assert reply.data.startswith((b"+OK", b"-ERR", b"+ ")), reply
        assert reply.data.endswith(b"\r\n")
        if reply.multiline:
            assert reply.data.endswith(b"\r\n.\r\n")
            assert b"\r\n.\r\n" not in reply.data[: -len(b".\r\n") - 2]
        else:
            assert reply.data.count(b"\r\n") == 1


@settings(max_examples=300, deadline=None)
@given(_INPUT, st.booleans())
def test_fuzz_whole_and_bytewise_agree(data: bytes, tls: bool) -> None:
    whole = Driver(Pop3Connection(tls_available=tls))
    whole.feed(data)
    bytewise = Driver(Pop3Connection(tls_available=tls))
    for i in range(len(data)):
        bytewise.feed(data[i : i + 1])
    _check_well_formed(whole.replies)
    _check_well_formed(bytewise.replies)
    if not tls:  # after STLS, bytes pipelined in plain text are dropped, so timing matters
        assert bytes(whole.out) == bytes(bytewise.out)


def test_requests_hold_pipelined_commands_until_answered() -> None:
    conn = Pop3Connection()
    conn.greeting()
    assert conn.receive_data(b"USER a@b\r\nPASS x\r\nSTAT\r\n")[-1] == MaildropRequested("a@b")
    assert conn.receive_data(b"NOOP\r\n") == []  # still waiting for the maildrop
    events = conn.answer_maildrop(DROP[:1])
    assert [e.data[:6] for e in events if isinstance(e, Reply)] == [b"+OK ma", b"+OK 1 ", b"+OK\r\n"]
    assert conn.receive_data(b"QUIT\r\nNOOP\r\n") == [UpdateRequested("a@b", ())]
    assert conn.receive_data(b"NOOP\r\n") == []  # nothing after QUIT is read
    assert conn.answer_update(False) == [
        Reply(b"-ERR [SYS/TEMP] some deleted messages not removed\r\n"),
        CloseRequested(),
    ]
