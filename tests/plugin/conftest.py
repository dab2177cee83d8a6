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
