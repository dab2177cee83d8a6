"""Shared fixtures: a real sandbox on free loopback ports, in a thread, per test."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.app import Sandbox, SandboxThread
from sandbox.config import Config, Listen

IN_CI = os.environ.get("CI", "").lower() == "true"


def free_config(tmp_path: Path, **overrides: object) -> Config:
    """Every listener on 127.0.0.1 port 0; the database and certificate under tmp_path."""
    zero = Listen("127.0.0.1", 0)
    base = Config(
        smtp=zero, http=zero, pop3=zero, imap=zero, dns=zero,
        data_dir=tmp_path / "data", db=str(tmp_path / "data" / "mailsandbox.db"),
    )  # fmt: skip
    return base.replace(**overrides) if overrides else base


@pytest.fixture
def sandbox_factory(tmp_path: Path) -> Iterator[object]:
    """Start sandboxes with chosen settings; all are stopped at the end of the test."""
    started: list[SandboxThread] = []

    def start(**overrides: object) -> Sandbox:
        thread = SandboxThread(free_config(tmp_path, **overrides))
        started.append(thread)
        return thread.start()

    yield start
    for thread in reversed(started):
        thread.stop()


@pytest.fixture
def running_sandbox(sandbox_factory: object) -> Sandbox:
    """A full sandbox with default settings on free ports; a fresh database per test."""
    return sandbox_factory()  # type: ignore[operator, no-any-return]


def require_binary(name: str) -> str:
    """The path of a system tool a test needs: skipped locally if absent, a failure in CI."""
    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} is not installed; .ci/run must install it")
        pytest.skip(f"{name} is not installed")
    return path
