"""IMAP command grammar (RFC 3501 §9): one command, one parse, one line per case."""

from __future__ import annotations

import datetime

import pytest

from mailsandbox.protocols.imap import commands as c
from mailsandbox.protocols.imap import search as s
from mailsandbox.protocols.imap.fetch import Attr, Section
from mailsandbox.protocols.imap.grammar import ParseError, Reader, SeqSet, decode_mailbox, encode_mailbox
from mailsandbox.protocols.imap.parser import BadCommand, parse_command


def test_atoms_strings_and_literals() -> None:
    assert Reader(b'"a \\"q\\" \\\\ b"').astring() == b'a "q" \\ b'
    assert Reader(b"{5}\r\nhello").astring() == b"hello"
    assert Reader(b"{5+}\r\nhello").astring() == b"hello"
    assert Reader(b"plain]atom").astring() == b"plain]atom"
    assert Reader(b"NIL").nstring() is None
    assert Reader(b"NILS").astring() == b"NILS"
    with pytest.raises(ParseError):
        Reader(b"{9}\r\nshort").literal()
    with pytest.raises(ParseError):
        Reader(b'"unterminated').quoted()


def test_sequence_sets() -> None:
    numbers = Reader(b"1:3,5,7:*").seq_set()
    assert numbers == SeqSet(((1, 3), (5, 5), (7, None)))
    assert numbers.resolve(9) == [(1, 3), (5, 5), (7, 9)]
    assert Reader(b"*:4").seq_set().resolve(2) == [(2, 4)]  # n:m is m:n
    assert numbers.contains(8, 9) and not numbers.contains(4, 9)
    for bad in (b"0", b"1:0", b"a", b"4294967296", b""):
        with pytest.raises(ParseError):
            Reader(bad).seq_set()


def test_dates_and_flags() -> None:
    assert Reader(b"1-Feb-2024").date() == datetime.date(2024, 2, 1)
    assert Reader(b'"01-feb-2024"').date() == datetime.date(2024, 2, 1)
    assert Reader(b'"17-Jul-1996 02:44:25 -0700"').date_time() == 837596665
    assert Reader(b'" 7-Jul-1996 02:44:25 +0000"').date_time() == 836707465
    with pytest.raises(ParseError):
        Reader(b"30-Feb-2024").date()
    assert Reader(b"(\\SEEN \\flagged $Junk)").flag_list() == ("\\Seen", "\\Flagged", "$Junk")


def test_modified_utf7_round_trip() -> None:
    # RFC 3501 §5.1.3 example: "~peter/mail/&U,BTFw-/&ZeVnLIqe-" is "~peter/mail/台北/日本語"
    assert decode_mailbox(b"~peter/mail/&U,BTFw-/&ZeVnLIqe-") == "~peter/mail/台北/日本語"
    assert encode_mailbox("~peter/mail/台北/日本語") == b"~peter/mail/&U,BTFw-/&ZeVnLIqe-"
    assert encode_mailbox("A&B") == b"A&-B" and decode_mailbox(b"A&-B") == "A&B"
    assert decode_mailbox(b"&bad") == "&bad"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"a CAPABILITY", c.Bare("a", "CAPABILITY")),
        (b"a noop", c.Bare("a", "NOOP")),
        (b'a LOGIN bob@x.test "pass word"', c.Login("a", "LOGIN", "bob@x.test", "pass word")),
        (b"a LOGIN {3}\r\nbob {2}\r\npw", c.Login("a", "LOGIN", "bob", "pw")),
        (
            b"a AUTHENTICATE PLAIN AGJvYgBwdw==",
            c.Authenticate("a", "AUTHENTICATE", "PLAIN", b"\x00bob\x00pw"),
        ),
        (b"a AUTHENTICATE plain", c.Authenticate("a", "AUTHENTICATE", "PLAIN", None)),
        (b"a SELECT inbox", c.MailboxCommand("a", "SELECT", "INBOX")),
        (b'a EXAMINE "Sent Items"', c.MailboxCommand("a", "EXAMINE", "Sent Items")),
        (b"a CREATE &ZeVnLIqe-", c.MailboxCommand("a", "CREATE", "日本語")),
        (b"a RENAME old new", c.Rename("a", "RENAME", "old", "new")),
        (b'a LIST "" *', c.ListCommand("a", "LIST", "", "*")),
        (b"a LSUB foo/ %", c.ListCommand("a", "LSUB", "foo/", "%")),
        (b"a STATUS INBOX (MESSAGES unseen)", c.Status("a", "STATUS", "INBOX", ("MESSAGES", "UNSEEN"))),
        (b"a UID EXPUNGE 1:3", c.UidExpunge("a", "UID EXPUNGE", SeqSet(((1, 3),)))),
        (b"a ID NIL", c.Id("a", "ID", None)),
        (b'a ID ("name" "x" "os" NIL)', c.Id("a", "ID", (("name", "x"), ("os", None)))),
        (b"a ENABLE CONDSTORE utf8=accept", c.Enable("a", "ENABLE", ("CONDSTORE", "UTF8=ACCEPT"))),
    ],
)
def test_commands(line: bytes, expected: c.Command) -> None:
    assert parse_command(line + b"\r\n") == expected


def test_append() -> None:
    cmd = parse_command(b'a APPEND Drafts (\\Seen \\Draft) "17-Jul-1996 02:44:25 -0700" {5+}\r\nhello\r\n')
    assert cmd == c.Append("a", "APPEND", "Drafts", ("\\Seen", "\\Draft"), 837596665, b"hello")
    assert parse_command(b"a APPEND INBOX {0}\r\n\r\n") == c.Append("a", "APPEND", "INBOX", (), None, b"")


def test_fetch_items() -> None:
    cmd = parse_command(b"a UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (FROM Subject)]<0.100> BODY[1.2.MIME])")
    assert isinstance(cmd, c.Fetch) and cmd.uid and cmd.name == "UID FETCH"
    assert cmd.items == (
        Attr("FLAGS"),
        Section(True, (), "HEADER.FIELDS", (b"FROM", b"Subject"), (0, 100)),
        Section(False, (1, 2), "MIME"),
    )
    assert parse_command(b"a FETCH 1 fast").items == (  # type: ignore[attr-defined]
        Attr("FLAGS"),
        Attr("INTERNALDATE"),
        Attr("RFC822.SIZE"),
    )
    assert parse_command(b"a FETCH 2 BODY[]").items == (Section(False),)  # type: ignore[attr-defined]
    assert parse_command(b"a FETCH 2 BODY[3.TEXT]").items == (Section(False, (3,), "TEXT"),)  # type: ignore[attr-defined]
    assert Section(True, (), "HEADER.FIELDS", (b"From", b"X Y")).label() == b'BODY[HEADER.FIELDS (From "X Y")]'


def test_store() -> None:
    cmd = parse_command(b"a UID STORE 2,4 -FLAGS.SILENT (\\Deleted)")
    assert cmd == c.Store("a", "UID STORE", SeqSet(((2, 2), (4, 4))), "remove", True, ("\\Deleted",), True)
    cmd = parse_command(b"a STORE 1 FLAGS \\Seen $Label")
    assert cmd == c.Store("a", "STORE", SeqSet(((1, 1),)), "set", False, ("\\Seen", "$Label"), False)


def test_copy_and_move() -> None:
    assert parse_command(b"a MOVE 1:2 Trash") == c.Copy("a", "MOVE", SeqSet(((1, 2),)), "Trash", False)
    assert parse_command(b"a UID COPY 7 inbox") == c.Copy("a", "UID COPY", SeqSet(((7, 7),)), "INBOX", True)


def test_search_keys() -> None:
    cmd = parse_command(b"a SEARCH CHARSET UTF-8 OR (FROM alice SINCE 1-Jan-2024) NOT SEEN 2:4 UID 9:*")
    assert isinstance(cmd, c.Search)
    key = cmd.key
    assert isinstance(key, s.And) and len(key.keys) == 3 and cmd.charset == "UTF-8"
    assert key.keys[1:] == (
        s.Numbers(SeqSet(((2, 4),)), uid=False),
        s.Numbers(SeqSet(((9, None),)), uid=True),
    )
    assert key.keys[0] == s.Or(
        s.And((s.Field("from", "alice"), s.InternalDate("since", datetime.date(2024, 1, 1)))),
        s.Not(s.HasFlag("\\Seen", True)),
    )
    assert parse_command(b"a SEARCH HEADER X-Id {3}\r\n1 2").key == s.Field("x-id", "1 2")  # type: ignore[attr-defined]
    assert parse_command(b"a SEARCH NEW").key == s.And((s.IsRecent(True), s.HasFlag("\\Seen", False)))  # type: ignore[attr-defined]
    assert parse_command(b"a UID SEARCH LARGER 10").key == s.Size(True, 10)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("line", "tag"),
    [
        (b"", None),
        (b"+ NOOP", None),
        (b"a", "a"),
        (b"a FROB", "a"),
        (b"a SELECT", "a"),
        (b"a FETCH 1 (FLAGS", "a"),
        (b"a FETCH 0 FLAGS", "a"),
        (b"a FETCH 1 BODY[HEADER.FIELDS ()]", "a"),
        (b"a SEARCH", "a"),
        (b"a SEARCH BOGUS", "a"),
        (b"a SEARCH " + b"(" * 5000, "a"),
        (b"a STORE 1 +FLAGS (\\Recent)", "a"),
        (b"a UID FROB 1", "a"),
        (b"a NOOP extra", "a"),
        (b"a LOGIN {10}\r\nshort", "a"),
    ],
)
def test_bad_commands(line: bytes, tag: str | None) -> None:
    with pytest.raises(BadCommand) as info:
        parse_command(line)
    assert info.value.tag == tag
