"""A relay copy keeps only what its hops added, and every reader sees the same bytes as before."""

from __future__ import annotations

import imaplib
import poplib
import re
import sqlite3
from pathlib import Path

import pytest

from mailsandbox.config import Listen
from mailsandbox.models import Envelope
from mailsandbox.store.sqlite import SqliteStore, insert_message
from tests.relay.conftest import CHAIN, WorldFactory

FOOTER = "-- footer"
HOSTS = {**CHAIN, "gw1.chain.test": {"relay_to": "gw2.chain.test", "rewrite_body": FOOTER,
                                     "dkim_sign": {"domain": "chain.test", "selector": "out"}}}  # fmt: skip


def test_imap_pop3_and_the_api_read_prefix_original_suffix(world_factory: WorldFactory, tmp_path: Path) -> None:
    zero = Listen("127.0.0.1", 0)
    world = world_factory(hosts=HOSTS, pop3=zero, imap=zero)
    original_id = world.send(["bob@chain.test"])
    world.settle()
    [entry] = world.sandbox.store.entries("bob@chain.test", "INBOX")
    assert entry.message_id != original_id  # the hops stamped it: a copy of its own
    original = world.api("GET", f"/api/v1/message/{original_id}/raw").content
    copy = world.api("GET", f"/api/v1/message/{entry.message_id}/raw").content

    assert world.sandbox.config.db is not None
    with sqlite3.connect(world.sandbox.config.db) as conn:
        (rowid,) = conn.execute("SELECT rowid FROM messages WHERE id = ?", (entry.message_id,)).fetchone()
        assert conn.execute("SELECT count(*) FROM message_raw WHERE rowid = ?", (rowid,)).fetchone() == (0,)
        prefix, suffix = conn.execute("SELECT prefix, suffix FROM relayed WHERE rowid = ?", (rowid,)).fetchone()
    assert copy == prefix + original + suffix
    assert re.match(rb"(Received|DKIM-Signature|ARC-[\w-]+): ", prefix) and b"\r\n\r\n" not in prefix
    assert FOOTER.encode() in suffix

    size = len(copy)
    assert entry.size == size
    assert world.ok("GET", f"/api/v1/message/{entry.message_id}")["Size"] == size

    pop3 = world.sandbox.address("pop3")
    pop = poplib.POP3(pop3.host, pop3.port, timeout=10)
    try:
        pop.user("bob@chain.test")
        pop.pass_("x")
        assert pop.list()[1] == [f"1 {size}".encode()]
        _reply, lines, _octets = pop.retr(1)
        # poplib splits lines at CRLF and at a bare LF (the footer hop writes one) alike
        assert b"\r\n".join(lines) + b"\r\n" == re.sub(rb"\r?\n", b"\r\n", copy)
    finally:
        pop.quit()

    imap_addr = world.sandbox.address("imap")
    imap = imaplib.IMAP4(imap_addr.host, imap_addr.port, timeout=10)
    try:
        imap.login("bob@chain.test", "x")
        imap.select("INBOX")
        status, data = imap.fetch("1", "(RFC822.SIZE BODY.PEEK[])")
        assert status == "OK"
        head, body = data[0]  # type: ignore[misc]
        assert isinstance(head, bytes) and f"RFC822.SIZE {size} ".encode() in head
        assert body == copy
    finally:
        imap.logout()


@pytest.mark.asyncio
async def test_a_copy_stored_whole_before_migration_8_still_reads_as_itself(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "s.db"))
    try:
        stored = await store.add_message(b"Subject: hi\r\n\r\nbody\r\n", Envelope("a@x.test", ()), deliver_to=[])
        old_copy = b"Received: by old\r\nSubject: hi\r\n\r\nbody\r\n"
        original = store.raw(stored.id)

        def write(conn: sqlite3.Connection) -> tuple[str, list[object]]:
            (rowid,) = conn.execute("SELECT rowid FROM messages WHERE id = ?", (stored.id,)).fetchone()
            return insert_message(conn, old_copy, stored.summary, stored.envelope, 0.0, rowid)[1], []

        copy_id: str = await store._write(write)  # type: ignore[arg-type]
        assert store.raw(copy_id) == old_copy and store.raw(stored.id) == original
        new = await store.deliver(stored.id, "bob@x.test", prefix=b"Received: by new\r\n", suffix=b"--\r\n")
        assert store.raw(new.message_id) == b"Received: by new\r\n" + original + b"--\r\n"
        assert await store.delete([stored.id]) == 1
        with sqlite3.connect(store.path) as conn:
            assert conn.execute("SELECT count(*) FROM relayed").fetchone() == (0,)  # went with the copy
    finally:
        store.close()
