"""A database made without an encoding (Debian's and many images' initdb default: SQL_ASCII) still holds
and returns text: the store speaks UTF-8 to it, where psycopg would otherwise hand back bytes."""

from __future__ import annotations

import asyncio

from mailsandbox.models import Envelope
from mailsandbox.store.postgres.store import PostgresStore
from tests.store_contract.pg import Cluster


def test_an_sql_ascii_database_reads_back_text(postgresql: Cluster) -> None:
    postgresql.psql("CREATE DATABASE ascii_db ENCODING 'SQL_ASCII' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'")
    dsn = postgresql.dsn.rsplit("/", 1)[0] + "/ascii_db"
    store = PostgresStore(dsn)
    try:
        raw = "From: Zoë <zoe@example.test>\r\nTo: bob@example.test\r\nSubject: Café crème\r\n\r\nnaïve\r\n".encode()
        stored = asyncio.run(store.add_message(raw, Envelope("zoe@example.test", ("bob@example.test",))))
        [listed] = store.list().messages
        assert listed.id == stored.id
        assert listed.summary.subject == "Café crème" and listed.mailboxes == ("bob@example.test",)
        assert [m.id for m in store.search("creme").messages] == [stored.id]
        assert store.raw(stored.id) == raw
    finally:
        store.close()


def test_nul_in_a_header_is_stored_and_read_as_a_replacement(postgresql: Cluster) -> None:
    store = PostgresStore(postgresql.create_database("nul_db"))
    try:
        raw = b"To: bob@example.test\r\nSubject: a\x00b\r\n\r\nbody\r\n"
        stored = asyncio.run(store.add_message(raw, Envelope("a@example.test", ("bob@example.test",))))
        assert store.get(stored.id) is not None
        assert store.raw(stored.id) == raw  # the bytes as sent
        assert store.search("mailbox\x00x").total == 0  # a parameter with NUL is a question, not an error
    finally:
        store.close()
