"""The store contract: one suite, run against every backend. A backend is one fixture named
`<name>_store` that yields a fresh, empty store on the given clock; list its name in BACKENDS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mailsandbox.clock import ManualClock
from mailsandbox.store import Store
from mailsandbox.store.sqlite import SqliteStore
from tests.store_contract.pg import postgresql  # noqa: F401  (the fixture, for a PostgreSQL backend)

BACKENDS = ["sqlite"]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sqlite_store(tmp_path: Path, clock: ManualClock) -> Iterator[Store]:
    store = SqliteStore(str(tmp_path / "contract.db"), clock=clock)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest) -> Store:
    backend: Store = request.getfixturevalue(f"{request.param}_store")
    return backend
