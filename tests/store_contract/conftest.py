"""The store contract: one suite, run against every backend. A backend is one fixture named
`<name>_store` that yields a fresh, empty store on the given clock; list its name in BACKENDS."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailsandbox.clock import ManualClock
from mailsandbox.store import Store
from mailsandbox.store.sqlite import SqliteStore
from tests.store_contract.pg import Cluster, postgresql  # noqa: F401  (the fixture, for a PostgreSQL backend)

BACKENDS = ["sqlite", "postgres"]


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


@pytest.fixture
def postgres_store(postgresql: Cluster, clock: ManualClock) -> Iterator[Store]:  # noqa: F811
    """A PostgresStore on a database of its own in the session's cluster (skipped without PostgreSQL)."""
    pytest.importorskip("psycopg")
    from mailsandbox.store.postgres.store import PostgresStore

    name = f"contract_{uuid.uuid4().hex[:16]}"
    store = PostgresStore(postgresql.create_database(name), clock=clock)
    try:
        yield store
    finally:
        store.close()
        postgresql.psql(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest) -> Store:
    backend: Store = request.getfixturevalue(f"{request.param}_store")
    return backend
