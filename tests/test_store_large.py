"""Large messages: their bytes go in as chunks, each in a transaction of its own, before the message."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest

from mailsandbox.models import Envelope
from mailsandbox.store.sqlite import LARGE_RAW, RAW_CHUNK, SqliteStore, start_stage, write_chunk

ENV = Envelope("app@example.test", ("ann@example.test",))


def large(size: int) -> bytes:
    head = b"From: app@example.test\r\nTo: ann@example.test\r\nSubject: big\r\n\r\n"
    body = os.urandom(size // 2).hex().encode()
    lines = b"\r\n".join(body[i : i + 76] for i in range(0, len(body), 76))
    return head + lines + b"\r\n"


def chunk_rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM raw_chunks").fetchone()[0])


@pytest.mark.asyncio
async def test_a_large_message_reads_back_whole_and_its_chunks_go_with_it(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SqliteStore(str(path))
    try:
        raw = large(3 * RAW_CHUNK + 12345)
        stored = await store.add_message(raw, ENV)
        assert store.raw(stored.id) == raw and store.raw("latest") == raw
        assert stored.summary.subject == "big"
        assert chunk_rows(path) == 4
        small = await store.add_message(b"Subject: small\r\n\r\nhi\r\n", ENV)
        assert store.raw(small.id) == b"Subject: small\r\n\r\nhi\r\n"
        entry = await store.deliver(stored.id, "bob@example.test", prefix=b"Received: by hop\r\n")
        assert store.raw(entry.message_id) == b"Received: by hop\r\n" + raw  # a relay copy: no second copy
        assert entry.size == len(raw) + 18
        assert chunk_rows(path) == 4
        assert await store.delete([stored.id]) == 1  # the copy goes with its original
        assert chunk_rows(path) == 0
        await store.add_message(raw, ENV)
        assert await store.delete(None) == 2
        assert chunk_rows(path) == 0
    finally:
        store.close()


@pytest.mark.asyncio
async def test_small_commits_pass_while_a_large_message_is_written(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SqliteStore(str(path))
    try:
        raw = large(20 * RAW_CHUNK)
        big = asyncio.create_task(store.add_message(raw, ENV))
        watcher = sqlite3.connect(path)
        for _ in range(2000):  # until its first chunk is committed
            if watcher.execute("SELECT count(*) FROM raw_chunks").fetchone()[0]:
                break
            await asyncio.sleep(0.005)
        watcher.close()
        assert not big.done()
        small = await store.add_message(b"Subject: small\r\n\r\nhi\r\n", ENV)
        # Committed while most of the large message's chunks were still to come, not after all 20.
        assert not big.done()
        stored = await big
        assert store.raw(stored.id) == raw
        # Listed by arrival: the large message's DATA ended first.
        assert [m.id for m in store.list().messages] == [small.id, stored.id]
    finally:
        store.close()


@pytest.mark.asyncio
async def test_chunks_left_by_a_crash_are_dropped_at_start(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SqliteStore(str(path))
    raw = large(LARGE_RAW + 1)
    kept = await store.add_message(raw, ENV)
    store.close()
    with sqlite3.connect(path, isolation_level=None) as conn:  # as a process killed mid-message leaves it
        stage = start_stage(conn)
        write_chunk(conn, stage, 0, b"x" * 100)
    assert chunk_rows(path) == 3
    store = SqliteStore(str(path))
    try:
        assert chunk_rows(path) == 2
        assert store.raw(kept.id) == raw
        assert store.list().total == 1
    finally:
        store.close()
