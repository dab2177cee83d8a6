"""ImapConnection byte transcripts over a real SqliteStore: every command, state and limit."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator

import pytest

from mailsandbox.models import Envelope
from mailsandbox.protocols.imap import ImapConnection, RecentTracker, State
from mailsandbox.store.sqlite import SqliteStore

NOW = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC; also the first UIDVALIDITY the store hands out
USER = "bob@example.test"


class FixedClock:
    def now(self) -> float:
        return NOW


def message(n: int, subject: str = "", body: str = "") -> bytes:
    return (
        f"From: Alice <alice@example.test>\r\nTo: {USER}\r\nSubject: {subject or f'message {n}'}\r\n"
        f"Date: Tue, 14 Nov 2023 10:00:0{n % 10} +0000\r\nMessage-ID: <{n}@example.test>\r\n\r\n"
        f"{body or f'body {n}'}\r\n"
    ).encode()


def make_store(count: int = 0) -> SqliteStore:
    store = SqliteStore(":memory:", clock=FixedClock())
    for n in range(1, count + 1):
        deliver(store, message(n))
    return store


def deliver(store: SqliteStore, raw: bytes, user: str = USER) -> None:
    store.add_message_sync(raw, Envelope("alice@example.test", (user,)))


class Client:
    """Sends bytes to one ImapConnection and returns the reply split into lines."""

    def __init__(self, conn: ImapConnection) -> None:
        self.conn = conn
        self.greeting = conn.greeting()

    def raw(self, data: bytes) -> bytes:
        return self.conn.receive_data(data)

    def __call__(self, line: str | bytes) -> list[str]:
        data = line.encode() if isinstance(line, str) else line
        reply = self.conn.receive_data(data + b"\r\n")
        return reply.decode("utf-8", "replace").split("\r\n")[:-1]

    def login(self, user: str = USER) -> None:
        assert self(f"L LOGIN {user} secret")[-1].startswith("L OK")

    def select(self, mailbox: str = "INBOX") -> list[str]:
        reply = self(f"S SELECT {mailbox}")
        assert reply[-1].startswith("S OK"), reply
        return reply


def one_line(reply: list[str]) -> str:
    return "\r\n".join(reply)


def well_formed(reply: bytes) -> bool:
    """Every line is untagged, a continuation, or tagged OK/NO/BAD (literals skipped over)."""
    pos = 0
    line_start = re.compile(rb"(\* |\+ |[^\x00-\x20\x7f-\xff(){%*\"\\+]+ (OK|NO|BAD) )")
    while pos < len(reply):
        if not line_start.match(reply, pos):
            return False
        end = reply.index(b"\r\n", pos)
        m = re.search(rb"\{(\d+)\}\Z", reply[pos:end])
        while m is not None:  # the line continues after the literal's bytes
            end = reply.index(b"\r\n", end + 2 + int(m.group(1)))
            m = re.search(rb"\{(\d+)\}\Z", reply[pos:end])
        pos = end + 2
    return True


_CAPS = "IMAP4rev1 LITERAL{} SASL-IR ID ENABLE IDLE NAMESPACE UIDPLUS MOVE UNSELECT CHILDREN AUTH=PLAIN APPENDLIMIT={}"
CAPS = _CAPS.format("+", 25 * 1024 * 1024)  # after login
CAPS_PREAUTH = _CAPS.format("-", 25 * 1024 * 1024)  # RFC 7888 LITERAL- before login


@pytest.fixture
def store() -> Iterator[SqliteStore]:
    store = make_store(3)
    yield store
    store.close()


@pytest.fixture
def client(store: SqliteStore) -> Client:
    return Client(ImapConnection(store))


def test_greeting_capability_and_states(client: Client) -> None:
    assert client.greeting == f"* OK [CAPABILITY {CAPS_PREAUTH}] Mailsandbox IMAP4rev1 ready\r\n".encode()
    assert client("a CAPABILITY") == [f"* CAPABILITY {CAPS_PREAUTH}", "a OK CAPABILITY completed"]
    assert client("b NOOP") == ["b OK NOOP completed"]
    assert client("c SELECT INBOX") == ["c BAD SELECT is not allowed in the not authenticated state"]
    assert client("d STARTTLS") == ["d BAD TLS is not available here"]
    assert client("e ID NIL") == ['* ID ("name" "Mailsandbox" "vendor" "Mailsandbox")', "e OK ID done"]
    client.login()
    assert client("f LOGIN x y") == ["f BAD LOGIN is not allowed in the authenticated state"]
    assert client("g FETCH 1 FLAGS") == ["g BAD FETCH is not allowed in the authenticated state"]
    assert client("h NAMESPACE") == ['* NAMESPACE (("" "/")) NIL NIL', "h OK NAMESPACE completed"]
    assert client("i ENABLE CONDSTORE") == ["* ENABLED", "i OK ENABLE completed"]
    assert client("j LOGOUT") == ["* BYE Mailsandbox logging out", "j OK LOGOUT completed"]
    assert client.conn.closed and client.raw(b"k NOOP\r\n") == b""


def test_bad_syntax_keeps_the_session(client: Client) -> None:
    assert client("x FROB") == ["x BAD unknown command FROB"]
    assert client("+ NOOP") == ["* BAD expected a tag"]
    assert client("y LOGIN") == ["y BAD expected a space"]
    assert client("") == []  # a stray empty line is ignored
    assert client("z NOOP") == ["z OK NOOP completed"]


def test_login_with_credentials(store: SqliteStore) -> None:
    def check(user: str, password: str) -> str | None:
        return user.lower() if (user.lower(), password) == (USER, "right") else None

    client = Client(ImapConnection(store, login=check))
    assert client(f"a LOGIN {USER} wrong") == ["a NO [AUTHENTICATIONFAILED] Invalid credentials"]
    assert client(f"b LOGIN {USER.upper()} right")[-1].startswith("b OK [CAPABILITY")
    assert client.conn.user == USER


def test_authenticate_plain(store: SqliteStore) -> None:
    client = Client(ImapConnection(store))
    assert client("a AUTHENTICATE PLAIN") == ["+ "]
    assert client(base64.b64encode(f"\0{USER}\0pw".encode())) == [f"a OK [CAPABILITY {CAPS}] AUTHENTICATE completed"]
    client = Client(ImapConnection(store))
    assert client("b AUTHENTICATE PLAIN") == ["+ "]
    assert client("*") == ["b BAD Authentication cancelled"]
    assert client("c AUTHENTICATE PLAIN") == ["+ "]
    assert client("!!notbase64") == ["c BAD Invalid base64"]
    assert client("d AUTHENTICATE PLAIN " + base64.b64encode(b"only-one-part").decode()) == [
        "d BAD Malformed PLAIN response"
    ]
    assert client("e AUTHENTICATE CRAM-MD5") == ["e NO Unsupported authentication mechanism"]
    ir = base64.b64encode(f"other@x.test\0{USER}\0pw".encode()).decode()
    assert client(f"f AUTHENTICATE PLAIN {ir}") == ["f NO [AUTHENTICATIONFAILED] Acting as another user is not allowed"]
    assert client("g AUTHENTICATE PLAIN " + base64.b64encode(f"{USER}\0{USER}\0pw".encode()).decode())[-1].startswith(
        "g OK"
    )


def test_select_and_examine(client: Client) -> None:
    client.login()
    assert client.select() == [
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)",
        "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted",
        "* 3 EXISTS",
        "* 3 RECENT",
        "* OK [UNSEEN 1] First unseen",
        "* OK [UIDVALIDITY 1700000000] UIDs valid",
        "* OK [UIDNEXT 4] Predicted next UID",
        "S OK [READ-WRITE] SELECT completed",
    ]
    reply = client("e EXAMINE inbox")
    assert "* 0 RECENT" in reply and "* OK [PERMANENTFLAGS ()] Flags permitted" in reply
    assert reply[-1] == "e OK [READ-ONLY] EXAMINE completed"
    assert client("f SELECT Nope") == ["f NO [NONEXISTENT] No such mailbox"]
    assert client.conn.state is State.AUTHENTICATED  # a failed SELECT leaves the selected state


def test_fetch_attributes(client: Client) -> None:
    client.login()
    client.select()
    assert client("a FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE)") == [
        f'* {n} FETCH (UID {n} FLAGS (\\Recent) INTERNALDATE "14-Nov-2023 22:13:20 +0000" RFC822.SIZE 155)'
        for n in (1, 2, 3)
    ] + ["a OK FETCH completed"]
    assert client("b FETCH 2 (BODY.PEEK[TEXT]<2.3> BODY.PEEK[HEADER.FIELDS.NOT (To From Date Message-ID)])") == [
        "* 2 FETCH (BODY[TEXT]<2> {3}",
        "dy  BODY[HEADER.FIELDS.NOT (To From Date Message-ID)] {22}",
        "Subject: message 2",
        "",
        ")",
        "b OK FETCH completed",
    ]
    assert (
        client("c FETCH 1 (BODY[1] BODY[1.MIME] BODY[HEADER.FIELDS (SUBJECT)])")
        == [
            "* 1 FETCH (BODY[1] {8}",
            "body 1",
            " BODY[1.MIME] {147}",  # a single-part message's part 1 has the message header
            *message(1).decode().split("\r\n")[:6],
            " BODY[HEADER.FIELDS (SUBJECT)] {22}",
            "Subject: message 1",
            "",
            " FLAGS (\\Seen \\Recent))",  # BODY[] without .PEEK set \Seen, so FLAGS comes too
            "c OK FETCH completed",
        ]
    )
    reply = client("d FETCH 3 (ENVELOPE BODY BODYSTRUCTURE RFC822.HEADER)")
    assert reply[0].startswith('* 3 FETCH (ENVELOPE ("Tue, 14 Nov 2023 10:00:03 +0000" "message 3" ')
    assert 'BODY ("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 8 1) BODYSTRUCTURE (' in reply[0]
    assert reply[0].endswith("RFC822.HEADER {147}") and reply[-1] == "d OK FETCH completed"
    assert client("e FETCH 3 FLAGS") == [
        "* 3 FETCH (FLAGS (\\Recent))",
        "e OK FETCH completed",
    ]  # HEADER: no \Seen
    assert client("f FETCH 4 FLAGS") == ["f BAD Invalid message sequence number"]
    assert client("g UID FETCH 2:9 FLAGS") == [
        "* 2 FETCH (UID 2 FLAGS (\\Recent))",
        "* 3 FETCH (UID 3 FLAGS (\\Recent))",
        "g OK UID FETCH completed",
    ]
    assert client("h FETCH 3 (RFC822 BODY[9] BODY[1.HEADER])")[-3:] == [
        "body 3",
        " BODY[9] NIL BODY[1.HEADER] NIL FLAGS (\\Seen \\Recent))",
        "h OK FETCH completed",
    ]
    assert client("i FETCH 1 FAST")[0].startswith("* 1 FETCH (FLAGS (\\Seen \\Recent) INTERNALDATE ")
    assert client("j FETCH 1 ALL")[0].endswith('"<1@example.test>"))')
    assert "BODY (" in client("k FETCH 1 FULL")[0]


def test_fetch_does_not_set_seen_read_only(client: Client) -> None:
    client.login()
    client("e EXAMINE INBOX")
    assert client("a FETCH 1 RFC822.TEXT") == [
        "* 1 FETCH (RFC822.TEXT {8}",
        "body 1",
        ")",
        "a OK FETCH completed",
    ]
    assert client("b FETCH 1 FLAGS") == ["* 1 FETCH (FLAGS (\\Recent))", "b OK FETCH completed"]


def test_store_and_search(client: Client) -> None:
    client.login()
    client.select()
    assert client("a STORE 1:2 +FLAGS.SILENT (\\Flagged)") == ["a OK STORE completed"]
    assert client("b UID STORE 3 FLAGS ($A \\Seen)") == [
        "* 3 FETCH (UID 3 FLAGS ($A \\Seen \\Recent))",
        "b OK UID STORE completed",
    ]
    assert client("c STORE 1 -FLAGS \\Flagged") == ["* 1 FETCH (FLAGS (\\Recent))", "c OK STORE completed"]
    assert client("d SEARCH FLAGGED") == ["* SEARCH 2", "d OK SEARCH completed"]
    assert client("e UID SEARCH NOT FLAGGED") == ["* SEARCH 1 3", "e OK UID SEARCH completed"]
    assert client('f SEARCH CHARSET UTF-8 SUBJECT "message 2"') == ["* SEARCH 2", "f OK SEARCH completed"]
    assert client("g SEARCH CHARSET KOI8-R ALL") == ["g NO [BADCHARSET (US-ASCII UTF-8)] Unsupported charset"]
    assert client("h SEARCH OR KEYWORD $A 1") == ["* SEARCH 1 3", "h OK SEARCH completed"]
    assert client("i SEARCH BODY {6}\r\nbody 3") == [
        "+ Ready for literal data",
        "* SEARCH 3",
        "i OK SEARCH completed",
    ]
    assert client("j STORE 9 +FLAGS \\Seen") == ["j BAD Invalid message sequence number"]
    assert client("k STORE 1 +FLAGS (\\Recent)") == ["k BAD \\Recent cannot be stored"]


def test_expunge_copy_move(client: Client, store: SqliteStore) -> None:
    client.login()
    assert client("a CREATE Archive") == ["a OK CREATE completed"]
    client.select()
    assert client("b COPY 1:2 Archive") == ["b OK [COPYUID 1700000001 1:2 1:2] COPY completed"]
    assert client("c COPY 1 Nowhere") == ["c NO [TRYCREATE] No such mailbox"]
    assert client("d UID MOVE 3 Archive") == [
        "* OK [COPYUID 1700000001 3 3] Moved",
        "* 3 EXPUNGE",
        "d OK UID MOVE completed",
    ]
    assert client("e STORE 1:2 +FLAGS.SILENT (\\Deleted)") == ["e OK STORE completed"]
    assert client("f UID EXPUNGE 2") == ["* 2 EXPUNGE", "f OK UID EXPUNGE completed"]
    assert client("g EXPUNGE") == ["* 1 EXPUNGE", "g OK EXPUNGE completed"]
    assert [e.uid for e in store.entries(USER, "Archive")] == [1, 2, 3]
    assert store.entries(USER, "INBOX") == []
    assert client("h FETCH 1:* FLAGS") == ["h OK FETCH completed"]  # "1:*" of an empty mailbox is nothing
    assert client("i SELECT Archive")[-1] == "i OK [READ-WRITE] SELECT completed"
    assert client("j STORE 1 +FLAGS.SILENT \\Deleted") == ["j OK STORE completed"]
    assert client("k CLOSE") == ["k OK CLOSE completed"]  # RFC 3501 §6.4.2: expunges without telling
    assert [e.uid for e in store.entries(USER, "Archive")] == [2, 3]
    assert client("l EXPUNGE") == ["l BAD EXPUNGE is not allowed in the authenticated state"]


def test_mailbox_management(client: Client, store: SqliteStore) -> None:
    client.login()
    assert client("a CREATE Work/2024/") == ["a OK CREATE completed"]
    assert client("b CREATE work") == ["b OK CREATE completed"]  # names other than INBOX are case-sensitive
    assert client("c CREATE inbox") == ["c NO [ALREADYEXISTS] Mailbox already exists"]
    assert client('d CREATE "a//b"') == ["d BAD Invalid mailbox name"]
    assert client('e LIST "" *') == [
        '* LIST (\\HasNoChildren) "/" "INBOX"',
        '* LIST (\\HasChildren) "/" "Work"',
        '* LIST (\\HasNoChildren) "/" "Work/2024"',
        '* LIST (\\HasNoChildren) "/" "work"',
        "e OK LIST completed",
    ]
    assert client('f LIST "" %') == [
        '* LIST (\\HasNoChildren) "/" "INBOX"',
        '* LIST (\\HasChildren) "/" "Work"',
        '* LIST (\\HasNoChildren) "/" "work"',
        "f OK LIST completed",
    ]
    assert client("g LIST Work/ %") == ['* LIST (\\HasNoChildren) "/" "Work/2024"', "g OK LIST completed"]
    assert client('h LIST "" "inBOX"') == ['* LIST (\\HasNoChildren) "/" "INBOX"', "h OK LIST completed"]
    assert client('i LIST "" ""') == ['* LIST (\\Noselect) "/" ""', "i OK LIST completed"]
    assert client("j RENAME Work Job") == ["j OK RENAME completed"]
    assert client('k LIST "" Job*') == [
        '* LIST (\\HasChildren) "/" "Job"',
        '* LIST (\\HasNoChildren) "/" "Job/2024"',
        "k OK LIST completed",
    ]
    assert client("l RENAME Nope X") == ["l NO [NONEXISTENT] No such mailbox"]
    assert client("m RENAME Job work") == ["m NO [ALREADYEXISTS] Mailbox already exists"]
    assert client("n DELETE Job") == ["n OK DELETE completed"]
    assert client('o LIST "" *') == [
        '* LIST (\\HasNoChildren) "/" "INBOX"',
        '* LIST (\\Noselect \\HasChildren) "/" "Job"',  # an inferior outlives its deleted superior
        '* LIST (\\HasNoChildren) "/" "Job/2024"',
        '* LIST (\\HasNoChildren) "/" "work"',
        "o OK LIST completed",
    ]
    assert client("p DELETE INBOX") == ["p NO [CANNOT] INBOX cannot be deleted"]
    assert client("q DELETE Job") == ["q NO [NONEXISTENT] No such mailbox"]
    assert client("r UNSUBSCRIBE work") == ["r OK UNSUBSCRIBE completed"]
    assert client('s LSUB "" *') == [
        '* LSUB () "/" "INBOX"',
        '* LSUB () "/" "Job/2024"',
        "s OK LSUB completed",
    ]
    assert client('t LSUB "" %') == [
        '* LSUB () "/" "INBOX"',
        '* LSUB (\\Noselect) "/" "Job"',
        "t OK LSUB completed",
    ]
    assert client("u SUBSCRIBE work") == ["u OK SUBSCRIBE completed"]
    assert client("v SUBSCRIBE nope") == ["v NO [NONEXISTENT] No such mailbox"]
    assert client("w CREATE &ZeVnLIqe-") == ["w OK CREATE completed"]
    assert "日本語" in {info.name for info in store.folders(USER)}
    assert client('x LIST "" &ZeVnLIqe-') == [
        '* LIST (\\HasNoChildren) "/" "&ZeVnLIqe-"',
        "x OK LIST completed",
    ]


def test_rename_inbox_moves_its_mail(client: Client, store: SqliteStore) -> None:
    client.login()
    assert client("a RENAME INBOX Old") == ["a OK RENAME completed"]  # RFC 3501 §6.3.5
    assert len(store.entries(USER, "Old")) == 3 and store.entries(USER, "INBOX") == []


def test_status_and_append(client: Client) -> None:
    client.login()
    assert client("a STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)") == [
        '* STATUS "INBOX" (MESSAGES 3 RECENT 3 UIDNEXT 4 UIDVALIDITY 1700000000 UNSEEN 3)',
        "a OK STATUS completed",
    ]
    assert client("b STATUS Nope (MESSAGES)") == ["b NO [NONEXISTENT] No such mailbox"]
    assert client('c APPEND INBOX (\\Seen) "14-Nov-2023 10:00:00 +0100" {5}') == ["+ Ready for literal data"]
    assert client("hello") == ["c OK [APPENDUID 1700000000 4] APPEND completed"]
    assert client("d APPEND INBOX {5+}\r\nhello") == ["d OK [APPENDUID 1700000000 5] APPEND completed"]
    assert client("e APPEND Nope {1+}\r\nx") == ["e NO [TRYCREATE] No such mailbox"]
    client.select()
    assert client("f FETCH 4 (FLAGS INTERNALDATE BODY[])") == [
        '* 4 FETCH (FLAGS (\\Seen \\Recent) INTERNALDATE "14-Nov-2023 09:00:00 +0000" BODY[] {5}',
        "hello)",
        "f OK FETCH completed",
    ]


def test_literals_and_limits(store: SqliteStore) -> None:
    client = Client(ImapConnection(store, max_line=100, max_literal=20))
    assert client("a LOGIN {16}") == ["+ Ready for literal data"]
    assert client(f"{USER} pw") == [f"a OK [CAPABILITY {_CAPS.format('+', 20)}] LOGIN completed"]
    assert client("b APPEND INBOX {21}") == ["b NO [TOOBIG] Message over the 20 byte limit"]  # RFC 7889
    assert client("b2 SEARCH TEXT {21}") == ["b2 BAD [TOOBIG] Literal too large"]
    assert client("c APPEND INBOX {21+}\r\n012345678901234567890 and more") == ["c BAD [TOOBIG] Literal too large"]
    assert client("d NOOP " + "x" * 200) == ["d BAD Line too long"]
    assert client.raw(b"e NOOP " + b"y" * 150) == b""  # memory stays bounded while the line goes on
    assert client.raw(b"y" * 150 + b"\r\n") == b"e BAD Line too long\r\n"
    assert client("f NOOP") == ["f OK NOOP completed"]


def test_literal_limit_before_login(store: SqliteStore) -> None:
    # RFC 7888 LITERAL-: before login at most 4096 bytes; nothing over it is ever buffered.
    client = Client(ImapConnection(store))
    assert client("a LOGIN {4097}") == ["a BAD [TOOBIG] Literal too large before login"]  # and no "+"
    assert client("b LOGIN {52428800}") == ["b BAD [TOOBIG] Literal too large before login"]
    assert client("d LOGIN {5000+}") == [
        "d BAD [TOOBIG] Literal too large",
        "* BYE Literal too large",
    ]  # its bytes are on the way: answered, then the connection closes
    assert client.conn.closed and client.raw(b"x" * 5000 + b"\r\ne NOOP\r\n") == b""
    assert len(client.conn._buffer) < 8192
    client = Client(ImapConnection(store))
    assert client("c LOGIN {4096}") == ["+ Ready for literal data"]
    assert client("x" * 4094) == []  # 4,094 bytes and the CRLF: the literal; the command goes on
    assert client(" pw")[-1].startswith("c OK [CAPABILITY IMAP4rev1 LITERAL+ ")
    assert client("e APPEND INBOX {5000}") == ["+ Ready for literal data"]  # after login: APPENDLIMIT


def test_pipelined_and_byte_by_byte(store: SqliteStore) -> None:
    script = b"a LOGIN {16+}\r\nbob@example.test x\r\nb SELECT INBOX\r\nc FETCH 1:2 (FLAGS BODY.PEEK[])\r\nd LOGOUT\r\n"
    whole = ImapConnection(store).receive_data(script)
    one_by_one = ImapConnection(store)
    pieces = b"".join(one_by_one.receive_data(script[i : i + 1]) for i in range(len(script)))
    assert pieces == whole  # each connection has its own RecentTracker here, so both get \Recent
    assert whole.endswith(b"d OK LOGOUT completed\r\n") and well_formed(whole)


def test_idle_and_notify(store: SqliteStore) -> None:
    client = Client(ImapConnection(store, notified=True))
    client.login()
    client.select()
    assert client("a IDLE") == ["+ idling"]
    assert client.conn.idling
    deliver(store, message(4))
    assert client.conn.notify() == b"* 4 EXISTS\r\n* 4 RECENT\r\n"
    store.store_flags(USER, "INBOX", [1], ["\\Seen"], "add")
    assert client.conn.notify() == b"* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent))\r\n"
    assert client("DONE") == ["a OK IDLE terminated"]
    assert client("b IDLE") == ["+ idling"]
    assert client("NOT DONE") == ["b BAD Expected DONE"]
    store.expunge(USER, "INBOX", [2])
    assert client.conn.notify() == b""  # not idling: the news waits for the next command
    assert client("c NOOP") == ["* 2 EXPUNGE", "c OK NOOP completed"]


def test_two_sessions_see_each_other(store: SqliteStore) -> None:
    recent = RecentTracker()  # shared, as the server shares it between its sessions
    first, second = Client(ImapConnection(store, recent=recent)), Client(ImapConnection(store, recent=recent))
    for client in (first, second):
        client.login()
    assert "* 3 RECENT" in first.select()
    assert "* 0 RECENT" in second.select()  # \Recent goes to one session only (RFC 3501 §2.3.2)
    assert first("a STORE 2 +FLAGS (\\Answered)") == [
        "* 2 FETCH (FLAGS (\\Answered \\Recent))",
        "a OK STORE completed",
    ]
    assert second("b NOOP") == ["* 2 FETCH (UID 2 FLAGS (\\Answered))", "b OK NOOP completed"]
    assert first("c STORE 3 +FLAGS.SILENT (\\Deleted)") == ["c OK STORE completed"]
    assert first("d EXPUNGE") == ["* 3 EXPUNGE", "d OK EXPUNGE completed"]
    # RFC 3501 §7.4.1: no EXPUNGE during FETCH by number; the UID command may carry it.
    assert second("e FETCH 1 FLAGS") == ["* 1 FETCH (FLAGS ())", "e OK FETCH completed"]
    assert second("f UID FETCH 1 FLAGS") == [
        "* 1 FETCH (UID 1 FLAGS ())",
        "* 3 EXPUNGE",
        "f OK UID FETCH completed",
    ]
    deliver(store, message(5))
    assert second("g NOOP") == ["* 3 EXISTS", "* 1 RECENT", "g OK NOOP completed"]
    assert first("h NOOP") == ["* 3 EXISTS", "* 2 RECENT", "h OK NOOP completed"]  # 2nd saw it first


def test_starttls_stops_reading_plaintext(store: SqliteStore) -> None:
    conn = ImapConnection(store, tls_available=True)
    assert b"STARTTLS" in conn.greeting()
    reply = conn.receive_data(b"a STARTTLS\r\nb LOGIN injected x\r\n")
    assert reply == b"a OK Begin TLS negotiation now\r\n" and conn.starttls_requested
    assert conn.receive_data(b"c NOOP\r\n") == b""  # nothing is read until the handshake is done
    conn.tls_started()
    assert conn.receive_data(b"d CAPABILITY\r\n").startswith(b"* CAPABILITY IMAP4rev1 LITERAL-")
    assert b"STARTTLS" not in conn.receive_data(b"e CAPABILITY\r\n")
    assert conn.receive_data(b"f STARTTLS\r\n") == b"f BAD TLS is not available here\r\n"
    assert conn.user is None


def test_store_failure_is_a_no(store: SqliteStore) -> None:
    errors: list[str] = []
    client = Client(ImapConnection(store, log=lambda what, exc: errors.append(what)))
    client.login()
    client.select()
    store.close()
    assert client("a STORE 1 +FLAGS \\Seen") == ["a NO [SERVERBUG] Server error, the command was not completed"]
    assert errors and client("b LOGOUT")[-1] == "b OK LOGOUT completed"


def test_an_append_leaves_no_copy_of_the_message_behind(store: SqliteStore) -> None:
    import gc
    import tracemalloc

    client = Client(ImapConnection(store))
    client.login()
    big = b"Subject: big\r\n\r\n" + b"x" * 5_000_000 + b"\r\n"
    command = b"a APPEND INBOX {%d+}\r\n" % len(big) + big + b"\r\n"
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        assert client.raw(command).startswith(b"a OK [APPENDUID ")
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 1_000_000, f"{kept} bytes still held after the APPEND"  # it was 10 MB until the next write
