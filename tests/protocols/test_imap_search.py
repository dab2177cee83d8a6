"""SEARCH keys (RFC 3501 §6.4.4) evaluated against messages, without a store."""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field

import pytest

from mailsandbox.mime.tree import Header, Message
from mailsandbox.protocols.imap.grammar import Reader
from mailsandbox.protocols.imap.search import Scope, matches, parse_search

RAW = (
    b"From: Alice Example <alice@example.test>\r\n"
    b"To: bob@example.test\r\n"
    b"Cc: carol@example.test\r\n"
    b"Subject: =?utf-8?q?Quarterly_caf=C3=A9?= numbers\r\n"
    b"Date: Wed, 3 Jan 2024 23:30:00 -0500\r\n"
    b"X-Ticket: 4711\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n" + b"SMOpbGxvIHdvcmxkLCB0aGUgZmlndXJlcyBhcmUgaW4u\r\n"  # "Héllo world, the figures are in."
)


@dataclass
class Candidate:
    seq: int = 3
    uid: int = 30
    flags: frozenset[str] = field(default_factory=lambda: frozenset({"\\Seen", "$Work"}))
    recent: bool = False
    internaldate: float = calendar.timegm((2024, 1, 4, 5, 0, 0))
    size: int = len(RAW)
    raw: bytes = RAW

    def header(self) -> Header:
        return Message(self.raw).header

    def message(self) -> Message:
        return Message(self.raw)


SCOPE = Scope(largest_seq=5, largest_uid=50)


def search(query: str, candidate: Candidate | None = None) -> bool:
    _charset, key = parse_search(Reader(b" " + query.encode("utf-8")))
    return matches(key, candidate or Candidate(), SCOPE)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("ALL", True),
        ("SEEN", True),
        ("UNSEEN", False),
        ("ANSWERED", False),
        ("UNANSWERED UNDELETED UNFLAGGED UNDRAFT", True),
        ("KEYWORD $Work", True),
        ("UNKEYWORD $Work", False),
        ("RECENT", False),
        ("OLD", True),
        ("NEW", False),
        ("FROM alice", True),
        ("FROM ALICE@EXAMPLE", True),
        ("TO bob", True),
        ("CC carol", True),
        ("BCC bob", False),
        ('SUBJECT "café"', True),  # matches the decoded RFC 2047 subject
        ("SUBJECT quarterly", True),
        ("SUBJECT missing", False),
        ("HEADER X-Ticket 4711", True),
        ('HEADER X-Ticket ""', True),
        ('HEADER X-Other ""', False),
        ("BODY figures", True),
        ('BODY "héllo"', True),  # matches the base64-decoded text
        ("BODY alice", False),
        ("TEXT alice", True),
        ("BEFORE 4-Jan-2024", False),
        ("ON 4-Jan-2024", True),  # INTERNALDATE is 2024-01-04 05:00 UTC
        ("SINCE 5-Jan-2024", False),
        ("SENTON 3-Jan-2024", True),  # the Date header's own day, its zone ignored
        ("SENTBEFORE 3-Jan-2024", False),
        ("SENTSINCE 3-Jan-2024", True),
        (f"LARGER {len(RAW) - 1}", True),
        (f"SMALLER {len(RAW)}", False),
        ("3", True),
        ("1:2,4:*", False),
        ("*", False),
        ("UID 30", True),
        ("UID 31:*", False),
        ("NOT SEEN", False),
        ("OR UNSEEN FROM alice", True),
        ("(SEEN FROM nobody)", False),
        ("OR (UNSEEN) (NOT (FROM nobody))", True),
    ],
)
def test_keys(query: str, expected: bool) -> None:
    assert search(query) is expected


def test_undated_message_falls_back_to_internal_date() -> None:
    undated = Candidate(raw=b"Subject: no date\r\n\r\nx\r\n")
    assert search("SENTON 4-Jan-2024", undated)
    assert search("SEEN", Candidate(flags=frozenset())) is False


def test_charset_is_reported() -> None:
    charset, _ = parse_search(Reader(b" CHARSET utf-8 ALL"))
    assert charset == "UTF-8"


def test_subject_mixing_raw_utf8_and_an_encoded_word_is_found() -> None:
    # RFC 6532 raw UTF-8 beside an RFC 2047 word: the needle spans both.
    mixed = Candidate(raw="Subject: Grüße =?utf-8?q?caf=C3=A9?= und mehr\r\n\r\nx\r\n".encode())
    assert search('CHARSET UTF-8 SUBJECT "Grüße café"', mixed)
    assert not search('CHARSET UTF-8 SUBJECT "Grüße tea"', mixed)
