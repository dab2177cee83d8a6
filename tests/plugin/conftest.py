"""Fixtures for the plugin's own tests."""

from __future__ import annotations

import pytest

import mailsandbox.app  # noqa: F401  - imported before any in-process pytester run, see below
from mailsandbox.tls import ensure_certificate


@pytest.fixture(scope="session", autouse=True)
def _imports_before_in_process_runs(tmp_path_factory: pytest.TempPathFactory) -> None:
    # pytester unloads what an in-process run imported, and cryptography's Rust bindings do
    # not survive a second import: load everything a sandbox's start imports, once, here.
    ensure_certificate(tmp_path_factory.mktemp("tls"), "warm.test")


@pytest.fixture(autouse=True)
def _inner_runs_on_postgres(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under MAILSANDBOX_TEST_DB=postgresql, the inner pytest runs' sandboxes use a fresh PostgreSQL
    database each (--mailsandbox-db), as a user's suite would."""
    from tests.conftest import ON_POSTGRES

    if ON_POSTGRES:
        from tests.store_contract.pg import fresh_database

        monkeypatch.setenv("MAILSANDBOX_PYTEST_DB", fresh_database())  # pytester clears PYTEST_ADDOPTS
