"""Shared fixtures: a real sandbox on free loopback ports, in a thread, per test."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import shutil
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from types import CodeType
from typing import TypeVar

import pytest

from mailsandbox import heap
from mailsandbox.app import Sandbox, SandboxThread
from mailsandbox.config import Config, Listen

IN_CI = os.environ.get("CI", "").lower() == "true"
# What a test calls when it holds the server to a time budget or a growth ratio: such a test is marked
# `timing`. `make test` runs them all; the runs on other interpreters (make test-python) leave them out,
# since they check the server's behaviour under load, not the interpreter's.
_TIMING_HELPERS = frozenset({"probe_during", "LoopWatch", "assert_linear", "_best", "_seconds"})


def _names(code: CodeType) -> set[str]:
    found = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, CodeType):
            found |= _names(const)
    return found


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        function = getattr(item, "function", None)
        if function is not None and _names(function.__code__) & _TIMING_HELPERS:
            item.add_marker(pytest.mark.timing)


@pytest.fixture(autouse=True)
def _heap_of_the_test_alone(request: pytest.FixtureRequest) -> Iterator[None]:
    """A timing test measures the sandbox, not the test process: by the serial run's end pytest holds
    hundreds of thousands of objects, and a full collection that walks them stalls every thread (the
    sandbox's loop included) for 100-300 ms. Frozen, they are left out of collections until the test
    ends, and collections run as seldom as in `serve` (heap.THRESHOLDS); what the sandbox allocates is
    still collected."""
    if request.node.get_closest_marker("timing") is None:
        yield
        return
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*heap.THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


# MAILSANDBOX_TEST_DB=postgresql runs the sandboxes of the tests on PostgreSQL (a fresh database each, in
# a throw-away cluster): the protocol, web and plugin suites against the second backend (.ci/run does).
ON_POSTGRES = os.environ.get("MAILSANDBOX_TEST_DB") == "postgresql"


# make test runs the servers' tests on asyncio's own loop too (the default is uvloop where installed).
EVENT_LOOP = os.environ.get("MAILSANDBOX_TEST_EVENT_LOOP", "auto")


def free_config(tmp_path: Path, **overrides: object) -> Config:
    """Every listener on 127.0.0.1 port 0; the database and certificate under tmp_path."""
    zero = Listen("127.0.0.1", 0)
    if ON_POSTGRES and "db" not in overrides:
        from tests.store_contract.pg import fresh_database

        db = fresh_database()
    else:
        db = str(tmp_path / "data" / "mailsandbox.db")
    base = Config(
        smtp=zero, http=zero, pop3=zero, imap=zero, dns=zero, data_dir=tmp_path / "data", db=db, event_loop=EVENT_LOOP
    )
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


R = TypeVar("R")


def heap_peak(work: Callable[[], R]) -> tuple[R, int]:
    """`work()`'s result and how far the Python heap of this whole process (every thread, so an in-process
    sandbox's too) rose above where it stood when `work` began, at its highest (tracemalloc)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = work()
        return result, tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


class LoopWatch:
    """The longest stall of a running sandbox's event loop: a heartbeat every `interval` seconds on that
    loop records how late each beat ran. Use as a context manager around the hostile work."""

    def __init__(self, sandbox: Sandbox, interval: float = 0.005) -> None:
        assert sandbox.loop is not None, "the sandbox is not running"
        self.loop = sandbox.loop
        self.interval = interval
        self.max_stall = 0.0
        self.beats = 0
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._running = False

    def _beat(self) -> None:
        now = self.loop.time()
        if self._due:
            self.max_stall = max(self.max_stall, now - self._due)
        self.beats += 1
        if self._running:
            self._due = now + self.interval
            self._handle = self.loop.call_later(self.interval, self._beat)

    def __enter__(self) -> LoopWatch:
        self._running = True
        self.loop.call_soon_threadsafe(self._beat)
        return self

    def __exit__(self, *exc: object) -> None:
        done = threading.Event()

        def stop() -> None:
            self._running = False
            if self._handle is not None:
                self._handle.cancel()
            self._beat()  # a stall still under way when the work ends counts too
            done.set()

        self.loop.call_soon_threadsafe(stop)
        done.wait(60)


# The probing client runs in a process of its own: in the test's process it would share the interpreter
# lock with the sandbox and the hostile client, and measure their contention instead of the server.
_PROBER = r"""
import json, smtplib, sys, time, http.client
smtp_host, smtp_port, http_host, http_port = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
web = http.client.HTTPConnection(http_host, http_port, timeout=10) if http_port else None
print("ready", flush=True)
for _ in sys.stdin:
    out = {}
    started = time.perf_counter()
    with smtplib.SMTP(smtp_host, smtp_port, timeout=10) as client:
        client.sendmail("probe@example.test", ["probe@example.test"], b"Subject: probe\r\n\r\nprobe\r\n")
    out["smtp"] = time.perf_counter() - started
    if web is not None:
        started = time.perf_counter()
        web.request("GET", "/livez")
        response = web.getresponse()
        response.read()
        assert response.status == 200, response.status
        out["livez"] = time.perf_counter() - started
    print(json.dumps(out), flush=True)
"""


class Prober:
    """A small SMTP send (connect to 250 after DATA) and a GET /livez, timed from another process."""

    def __init__(self, sandbox: Sandbox) -> None:
        smtp = sandbox.address("smtp")
        http = sandbox.addresses.get("http")
        args = [smtp.host, str(smtp.port), http.host if http else "", str(http.port if http else 0)]
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _PROBER, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._stdin, self._stdout = self._proc.stdin, self._proc.stdout
        assert self._stdout.readline().strip() == "ready"

    def probe(self) -> dict[str, float]:
        self._stdin.write("probe\n")
        self._stdin.flush()
        line = self._stdout.readline()
        assert line, "the probe process failed (see its stderr)"
        result: dict[str, float] = json.loads(line)
        return result

    def close(self) -> None:
        self._stdin.close()
        self._proc.wait(10)

    def __enter__(self) -> Prober:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# A probe is a whole SMTP transaction from another process (connect to the 250 after its commit) and an
# HTTP round trip: on two cores it also waits for the store's writer and for the interpreter lock that the
# sandbox's own threads (summaries, authentication checks) take in turns, so it gets more than the loop.
PROBE_BUDGET = 0.25


def probe_during(
    sandbox: Sandbox, work: Callable[[], object], *, budget: float = 0.1, probe_budget: float = PROBE_BUDGET
) -> dict[str, float]:
    """Run `work` (the hostile input) in a thread and probe the sandbox while it runs; the slowest probe
    and the loop's longest stall. Asserts that the loop never stalled over `budget` seconds and that no
    probe took over max(budget, probe_budget)."""
    finished = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)
        finally:
            finished.set()

    worst: dict[str, float] = {}
    with Prober(sandbox) as prober, LoopWatch(sandbox) as watch:
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        probes = 0
        while not finished.is_set() or probes == 0:
            for key, seconds in prober.probe().items():
                worst[key] = max(worst.get(key, 0.0), seconds)
            probes += 1
        thread.join(60)
    if errors:
        raise errors[0]
    worst["stall"] = watch.max_stall
    limits = {key: budget if key == "stall" else max(budget, probe_budget) for key in worst}
    slow = {k: round(v, 3) for k, v in worst.items() if v > limits[k]}
    assert not slow, f"over budget (loop {budget * 1000:.0f} ms, probes {limits.get('smtp', budget) * 1000:.0f} ms) while the hostile input ran: {slow}"
    return worst
