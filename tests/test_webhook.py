"""--webhook-url: a real HTTP receiver on a free port gets Mailpit's summary for each message, in order,
retried after failures, paced by --webhook-limit on the sandbox clock, and a full queue drops the oldest."""

from __future__ import annotations

import json
import smtplib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailsandbox.app import Sandbox, SandboxThread
from mailsandbox.clock import ManualClock
from tests.conftest import free_config


class FrozenClock:
    """A base that never moves: the sandbox clock moves only when the test advances it."""

    def now(self) -> float:
        return 1_800_000_000.0


@dataclass
class Receiver:
    """Records every POST; answers `failures` of them with 503 first (fail=True: all of them)."""

    failures: int = 0
    fail: bool = False
    posts: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, body: bytes, headers: dict[str, str]) -> int:
        with self.lock:
            self.posts.append(json.loads(body))
            self.headers.append(headers)
            if self.fail or self.failures > 0:
                self.failures -= 1
                return 503
            return 200

    def subjects(self) -> list[str]:
        with self.lock:
            return [p["Subject"] for p in self.posts]


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = state.answer(body, {k.lower(): v for k, v in self.headers.items()})
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., tuple[Sandbox, ManualClock]]]:
    threads: list[SandboxThread] = []

    def run(**overrides: object) -> tuple[Sandbox, ManualClock]:
        clock = ManualClock(base=FrozenClock())
        thread = SandboxThread(free_config(tmp_path, relay=False, auth_checks=False, **overrides), clock)
        threads.append(thread)
        return thread.start(), clock

    yield run
    for thread in threads:
        thread.stop()


def wait_until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def send(sandbox: Sandbox, *subjects: str) -> None:
    smtp = sandbox.address("smtp")
    with smtplib.SMTP(smtp.host, smtp.port) as client:
        for subject in subjects:
            message = EmailMessage()
            message["From"], message["To"], message["Subject"] = "a@example.test", "b@example.test", subject
            message.set_content("hello")
            client.send_message(message)


def test_failed_posts_are_retried_with_backoff_and_order_is_kept(
    start: Callable[..., tuple[Sandbox, ManualClock]], receiver: tuple[Receiver, str]
) -> None:
    state, url = receiver
    state.failures = 2
    sandbox, clock = start(webhook_url=url, webhook_limit=0)
    hook = sandbox.webhook
    send(sandbox, "one", "two", "three")
    for backoff in (1.0, 2.0):  # the first two retries wait 1 s, then 2 s of the sandbox clock
        wait_until(lambda: hook.sleeping_until is not None)
        assert hook.sleeping_until == pytest.approx(clock.now() + backoff)
        assert state.subjects() == ["one"] * int(backoff)  # nothing overtakes the failing message
        clock.advance(backoff)
        wait_until(lambda: hook.sleeping_until is None)
    wait_until(lambda: len(state.posts) == 5)
    assert state.subjects() == ["one", "one", "one", "two", "three"]
    wait_until(lambda: hook.stats.delivered == 3)
    assert (hook.stats.failed_attempts, hook.stats.retries, hook.stats.dropped) == (2, 2, 0)
    assert hook.stats.by_status == {"503": 2, "200": 3}

    # Mailpit's payload: the message summary, as GET /api/v1/messages lists it.
    http = sandbox.address("http")
    listed = httpx.get(f"http://{http.host}:{http.port}/api/v1/messages").json()["messages"]
    by_id = {m["ID"]: m for m in listed}
    posted = state.posts[-1]
    assert posted["ID"] in by_id
    assert {k: posted[k] for k in ("MessageID", "Subject", "From", "To", "Size", "Snippet")} == {
        k: by_id[posted["ID"]][k] for k in ("MessageID", "Subject", "From", "To", "Size", "Snippet")
    }
    assert state.headers[0]["content-type"] == "application/json"
    assert state.headers[0]["user-agent"].startswith("Mailsandbox")


def test_the_rate_limit_paces_requests_on_the_sandbox_clock(
    start: Callable[..., tuple[Sandbox, ManualClock]], receiver: tuple[Receiver, str]
) -> None:
    state, url = receiver
    sandbox, clock = start(webhook_url=url, webhook_limit=2)  # two a second: one every 0.5 s
    hook = sandbox.webhook
    send(sandbox, "one", "two", "three")
    wait_until(lambda: hook.queued == 2 and hook.sleeping_until is not None)
    # The clock stands still, so the limit holds the rest back however long real time runs.
    assert state.subjects() == ["one"]
    assert hook.sleeping_until == pytest.approx(clock.now() + 0.5)
    clock.advance(0.5)
    wait_until(lambda: hook.queued == 1 and hook.sleeping_until is not None)
    assert state.subjects() == ["one", "two"]
    clock.advance(0.5)
    wait_until(lambda: hook.stats.delivered == 3)
    assert state.subjects() == ["one", "two", "three"]


def test_a_full_queue_drops_the_oldest_and_counts_it(
    start: Callable[..., tuple[Sandbox, ManualClock]], receiver: tuple[Receiver, str]
) -> None:
    state, url = receiver
    state.fail = True
    sandbox, clock = start(webhook_url=url, webhook_limit=0)
    hook = sandbox.webhook
    hook.max_queue = 2
    send(sandbox, "one")
    wait_until(lambda: hook.sleeping_until is not None)  # "one" failed and waits for its retry
    send(sandbox, "two", "three", "four")
    wait_until(lambda: hook.stats.dropped == 2)
    assert hook.queued == 2
    state.fail = False
    clock.advance(1.0)
    wait_until(lambda: hook.stats.delivered == 2)
    assert state.subjects() == ["one", "three", "four"]  # "one" failed once, then was dropped with "two"


def test_capture_carries_on_while_the_receiver_is_down(
    start: Callable[..., tuple[Sandbox, ManualClock]],
) -> None:
    # Nothing listens on the webhook's port: every POST fails at connect, and capture carries on.
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    sandbox, _ = start(webhook_url=f"http://127.0.0.1:{port}/", webhook_limit=0)
    send(sandbox, *(f"m{i}" for i in range(20)))
    assert sandbox.store.count()[0] == 20
    wait_until(lambda: sandbox.webhook.stats.by_status.get("error", 0) >= 1)
    assert sandbox.webhook.stats.delivered == 0
