"""What the authentication sweep still owes (Store.unchecked_auth): found above a floor once all is checked."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from mailsandbox.models import Envelope
from mailsandbox.store import StoreClosed
from mailsandbox.store.sqlite import SqliteStore

ENV = Envelope("a@example.test", ("b@example.test",))


def raw(n: int) -> bytes:
    return f"From: a@example.test\r\nTo: b@example.test\r\nMessage-ID: <m{n}@example.test>\r\n\r\nbody {n}\r\n".encode()


def add(store: SqliteStore, *numbers: int) -> list[str]:
    return [m.id for m in store.add_messages_sync((raw(n), ENV) for n in numbers) if m is not None]


def check(store: SqliteStore, ids: list[str]) -> None:
    asyncio.run(store.save_auths([(i, {"spf": "pass"}, {"spf": "pass"}) for i in ids]))


def steps(store: SqliteStore) -> tuple[list[str], int]:
    """unchecked_auth's answer and the SQLite VM instructions it ran (in thousands)."""
    count = [0]

    def tick() -> int:
        count[0] += 1
        return 0

    store._db.set_progress_handler(tick, 1000)
    try:
        return store.unchecked_auth(64), count[0]
    finally:
        store._db.set_progress_handler(None, 0)


def test_unchecked_newest_first_then_only_what_came_after(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "a.db"))
    try:
        ids = add(store, *range(5))
        assert store.unchecked_auth(3) == ids[::-1][:3]
        check(store, ids[2:])
        assert store.unchecked_auth(64) == ids[1::-1]  # the older ones still owed are found below
        check(store, ids[:2])
        assert store.unchecked_auth(64) == []
        later = add(store, 5, 6)
        assert store.unchecked_auth(64) == later[::-1]
        check(store, later)
        assert store.unchecked_auth(64) == []
    finally:
        store.close()


def test_all_checked_costs_no_walk_of_the_table(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "a.db"))
    try:
        ids = add(store, *range(3000))
        check(store, ids)
        first, walked = steps(store)  # the first empty answer reads every row once
        assert first == []
        again, cost = steps(store)
        assert again == [] and cost * 50 < walked, (cost, walked)
        new = add(store, 3000)
        found, cost = steps(store)
        assert found == new and cost * 50 < walked, (cost, walked)
    finally:
        store.close()


def test_floor_row_deleted_or_table_emptied_looks_again(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "a.db"))
    try:
        ids = add(store, *range(4))
        check(store, ids)
        assert store.unchecked_auth(64) == []
        # The newest (the floor's row) deleted: a new message may take its rowid.
        asyncio.run(store.delete([ids[-1]]))
        again = add(store, 10)
        assert store.unchecked_auth(64) == again
        check(store, again)
        assert store.unchecked_auth(64) == []
        asyncio.run(store.delete(None))  # everything: rowids start over, below the floor
        fresh = add(store, 20, 21)
        assert store.unchecked_auth(64) == fresh[::-1]
    finally:
        store.close()


def test_a_sweep_that_meets_a_closed_store_ends_quietly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # The sandbox stops its sweep without waiting for a check in flight; that check then meets the closed
    # store: it must end there, not log a failed check (nor record a temperror for the message).
    from mailsandbox.auth.checker import AuthChecker
    from mailsandbox.events import EventBus
    from mailsandbox.zone import Zone

    store = SqliteStore(str(tmp_path / "a.db"))
    ids = add(store, 1)
    checker = AuthChecker(store, Zone(), EventBus(), "mx.example.test")
    store.close()
    with pytest.raises(StoreClosed), caplog.at_level(logging.ERROR):
        checker._compute_some(ids)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
