"""Retention and duplicates in the store: --max-age pruning in small commits, --ignore-duplicate-ids."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailsandbox.clock import ManualClock
from mailsandbox.config import Config, parse_duration
from mailsandbox.models import Envelope
from mailsandbox.retention import Retention
from mailsandbox.store import DuplicateMessage
from mailsandbox.store.sqlite import SqliteStore
from tests.conftest import probe_during

ENV = Envelope("a@example.test", ("b@example.test",))


def raw(n: int, message_id: str | None = None) -> bytes:
    mid = message_id or f"<m{n}@example.test>"
    return (
        f"From: a@example.test\r\nTo: b@example.test\r\nMessage-ID: {mid}\r\nSubject: m{n}\r\n\r\nbody {n}\r\n".encode()
    )


def test_durations() -> None:
    assert [parse_duration(v) for v in ("7d", "12h", "30m", "90s", "1w", "3600", 0)] == [
        7 * 86400, 12 * 3600, 1800, 90, 7 * 86400, 3600, 0,
    ]  # fmt: skip
    for bad in ("7x", "d", "-1h", "inf", "nan"):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)
    assert Config.load(environ={"MAILSANDBOX_MAX_AGE": "12h"}).max_age == 12 * 3600
    assert Config.load(environ={"MAILSANDBOX_IGNORE_DUPLICATE_IDS": "true"}).ignore_duplicate_ids


def test_toml_settings(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('max-age = "30m"\nignore-duplicate-ids = true\n')
    cfg = Config.load(environ={}, config_file=path)
    assert cfg.max_age == 1800 and cfg.ignore_duplicate_ids


def test_prune_goes_in_transactions_of_a_batch(tmp_path: Path) -> None:
    clock = ManualClock()
    store = SqliteStore(str(tmp_path / "r.db"), clock=clock)
    try:
        list(store.add_messages_sync((raw(i), ENV) for i in range(35)))
        clock.advance(7200)
        young = store.add_message_sync(raw(99), ENV)
        sizes: list[int] = []
        original = store.prune_before

        async def counted(cutoff: float, limit: int = 500) -> int:
            sizes.append(await original(cutoff, limit))
            return sizes[-1]

        store.prune_before = counted  # type: ignore[method-assign]
        retention = Retention(store, clock, max_age=3600, batch=10)
        assert asyncio.run(retention.prune()) == 35
        assert sizes == [10, 10, 10, 5]  # one write request (one commit) each
        assert store.count() == (1, 1) and store.get(young.id) is not None
        assert store.entries("b@example.test", "INBOX")[0].message_id == young.id
        assert asyncio.run(retention.prune()) == 0  # nothing older is left
    finally:
        store.close()


def test_advancing_the_clock_prunes(sandbox_factory: Any) -> None:
    sb = sandbox_factory(max_age="1h")
    list(sb.store.add_messages_sync((raw(i), ENV) for i in range(3)))
    sb.clock.advance(1800)
    young = sb.store.add_message_sync(raw(3), ENV)
    assert sb.store.count()[0] == 4
    sb.clock.advance(1801)  # the first three are now over an hour old; the retention task wakes at once
    deadline = time.monotonic() + 10
    while sb.store.count()[0] != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sb.store.count()[0] == 1 and sb.store.get(young.id) is not None


def test_the_clock_api_drives_retention(sandbox_factory: Any) -> None:
    sb = sandbox_factory(max_age="30m", relay=False)  # the clock endpoint without a relay moves the clock itself
    list(sb.store.add_messages_sync((raw(i), ENV) for i in range(2)))
    with httpx.Client(base_url=f"http://{sb.address('http')}", timeout=10) as client:
        assert client.post("/api/sandbox/clock", json={"advance": 1801}).status_code == 200
        deadline = time.monotonic() + 10
        while client.get("/api/v1/messages").json()["total"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert client.get("/api/v1/messages").json()["total"] == 0
        assert client.get("/api/v1/info").json()["RuntimeStats"]["MessagesDeleted"] == 2


def test_pruning_a_large_store_does_not_stall_capture(sandbox_factory: Any) -> None:
    sb = sandbox_factory(max_age="1h")
    store = sb.store
    list(store.add_messages_sync((raw(i), ENV) for i in range(6000)))

    def prune() -> None:  # the retention task wakes on the clock's move and prunes while the probes send
        sb.clock.advance(7201)
        deadline = time.monotonic() + 120
        while sb.retention.deleted < 6000 and time.monotonic() < deadline:
            time.sleep(0.01)

    # One transaction for all 6000 would hold every capture for most of a second; 200 rows take ~25 ms.
    probe_during(sb, prune, budget=0.5)
    total, _unread = store.count()
    assert 0 < total < 100  # the probes' messages, sent during the pruning, stay: they are young
    assert sb.info()["RuntimeStats"]["MessagesDeleted"] == 6000


def test_duplicate_ids_within_one_group_commit(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "d.db"), ignore_duplicate_ids=True)
    try:
        stored = list(
            store.add_messages_sync([(raw(1), ENV), (raw(2), ENV), (raw(1), ENV), (raw(3, "<m2@example.test>"), ENV)])
        )
        assert [m is None for m in stored] == [False, False, True, True]
        with pytest.raises(DuplicateMessage):
            store.add_message_sync(raw(1), ENV)
        no_id = b"From: a@example.test\r\nSubject: no id\r\n\r\nx\r\n"
        assert store.add_message_sync(no_id, ENV) and store.add_message_sync(no_id, ENV)  # never a duplicate
        assert store.count()[0] == 4
    finally:
        store.close()


def test_the_message_id_lookup_uses_the_index(tmp_path: Path) -> None:
    SqliteStore(str(tmp_path / "i.db")).close()
    conn = sqlite3.connect(tmp_path / "i.db")
    plan = conn.execute(
        "EXPLAIN QUERY PLAN SELECT message_id FROM messages WHERE parent IS NULL AND message_id != ''"
        " AND message_id IN (?)",
        ("<x@y>",),
    ).fetchall()
    conn.close()
    assert any("messages_message_id" in str(row) for row in plan), plan


def test_concurrent_duplicates_store_one(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "c.db"), ignore_duplicate_ids=True)
    outcomes: list[str] = []
    lock = threading.Lock()

    def add() -> None:
        try:
            store.add_message_sync(raw(7), ENV)
            result = "stored"
        except DuplicateMessage:
            result = "ignored"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=add) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.close()
    assert sorted(outcomes) == ["ignored"] * 7 + ["stored"]
