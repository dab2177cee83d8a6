"""Hostile input: any bytes, whole or byte by byte, get well-formed replies and no escaping exception."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailsandbox.protocols.imap import BadCommand, ImapConnection, parse_command
from mailsandbox.store.sqlite import SqliteStore
from tests.protocols.test_imap_connection import make_store, well_formed

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Pieces of real commands, so the fuzzer gets past the tag and into every argument parser.
TOKENS = [
    b"a", b"b1", b" ", b"\r\n", b"\n", b"UID", b"FETCH", b"SEARCH", b"STORE", b"COPY", b"MOVE", b"EXPUNGE",
    b"SELECT", b"EXAMINE", b"LIST", b"LSUB", b"STATUS", b"APPEND", b"CREATE", b"DELETE", b"RENAME",
    b"SUBSCRIBE", b"UNSUBSCRIBE", b"LOGIN", b"AUTHENTICATE", b"PLAIN", b"IDLE", b"DONE", b"NOOP", b"CHECK",
    b"CLOSE", b"UNSELECT", b"ID", b"ENABLE", b"NAMESPACE", b"CAPABILITY", b"LOGOUT", b"INBOX", b"Archive",
    b"1", b"*", b"1:*", b"2,4:5", b"0", b"4294967296", b"(", b")", b"[", b"]", b"<", b">", b".", b"{", b"}",
    b"{3}\r\nabc", b"{2+}\r\nxy", b"{99999999999}", b'"', b'"q\\"x"', b"\\", b"\\Seen", b"+FLAGS",
    b"-FLAGS.SILENT",
    b"FLAGS", b"BODY", b"BODY.PEEK", b"BODY[]", b"BODY[1.2.MIME]", b"BODY[HEADER.FIELDS (FROM)]", b"<0.10>",
    b"ENVELOPE", b"BODYSTRUCTURE", b"RFC822", b"ALL", b"FAST", b"FULL", b"OR", b"NOT", b"CHARSET", b"UTF-8",
    b"SINCE", b"1-Jan-2024", b'"17-Jul-1996 02:44:25 -0700"', b"HEADER", b"LARGER", b"%", b"NIL", b"\x00",
    b"\xff", b"&ZeVnLIqe-", b"=",
]  # fmt: skip
commandish = st.lists(st.sampled_from(TOKENS), max_size=40).map(b"".join)
anything = st.one_of(st.binary(max_size=400), commandish)
PREAMBLE = b"p1 LOGIN bob@example.test pw\r\np2 SELECT INBOX\r\n"


@pytest.fixture(scope="module")
def store() -> Iterator[SqliteStore]:
    store = make_store(5)
    yield store
    store.close()


def feed(store: SqliteStore, data: bytes, chunk: int) -> bytes:
    errors: list[BaseException] = []
    conn = ImapConnection(store, max_line=256, max_literal=1024, log=lambda what, exc: errors.append(exc))
    out = conn.greeting()
    for start in range(0, len(data), chunk):
        out += conn.receive_data(data[start : start + chunk])
    assert not errors, errors  # a failure caught as SERVERBUG would still be our bug
    return out


@given(anything)
@settings(max_examples=500, deadline=None)
def test_parser_answers_or_refuses(data: bytes) -> None:
    try:
        parse_command(data)
    except BadCommand as exc:
        assert exc.tag is None or (exc.tag and b" " not in exc.tag.encode())


@given(data=anything, logged_in=st.booleans())
@FUZZ
def test_connection_whole(store: SqliteStore, data: bytes, logged_in: bool) -> None:
    data = (PREAMBLE if logged_in else b"") + data
    assert well_formed(feed(store, data + b"\r\n", len(data) + 2))


@given(data=anything, logged_in=st.booleans(), chunk=st.integers(1, 7))
@FUZZ
def test_connection_in_pieces(store: SqliteStore, data: bytes, logged_in: bool, chunk: int) -> None:
    data = (PREAMBLE if logged_in else b"") + data
    assert well_formed(feed(store, data + b"\r\n", chunk))


@given(data=commandish, chunk=st.integers(1, 5))
@settings(max_examples=30, deadline=None)
def test_whole_equals_pieces(data: bytes, chunk: int) -> None:
    """Framing does not depend on how TCP cuts the stream (each run on its own fresh store)."""
    data = PREAMBLE + data + b"\r\n"
    outputs = []
    for size in (len(data), chunk):
        store = make_store(2)
        try:
            outputs.append(feed(store, data, size))
        finally:
            store.close()
    assert outputs[0] == outputs[1]
