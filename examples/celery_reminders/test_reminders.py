"""A real Celery worker runs in a thread (celery.contrib.testing); the test queues the task and waits for
the mail to arrive, never for the task itself: the outbox's wait is the synchronisation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from celery.contrib.testing.worker import start_worker
from reminders import app, send_reminder

from mailsandbox.pytest_plugin import Outbox, SandboxHandle


@pytest.fixture(scope="module")
def worker(mail_sandbox: SandboxHandle) -> Iterator[None]:
    app.conf.update(
        smtp_host=mail_sandbox.smtp_host,
        smtp_port=mail_sandbox.smtp_port,
        # Only needed when several test processes share one sandbox (--mailsandbox-url with xdist).
        smtp_user=mail_sandbox.smtp_username,
        smtp_password=mail_sandbox.smtp_password,
        broker_transport_options={"polling_interval": 0.05},  # the in-memory broker polls once a second
    )
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        yield


def test_a_queued_reminder_is_mailed_in_the_background(worker: None, outbox: Outbox) -> None:
    send_reminder.delay("ann@example.test", "Stand-up")
    msg = outbox.wait_for(to="ann@example.test", subject="Reminder: Stand-up", timeout=15)
    assert "starts in 15 minutes" in msg.text


def test_many_reminders(worker: None, outbox: Outbox) -> None:
    for event in ("Lunch", "Review", "Retro"):
        send_reminder.delay("bob@example.test", event)
    assert sorted(m.subject for m in outbox.wait(3, to="bob@example.test", timeout=15)) == [
        "Reminder: Lunch", "Reminder: Retro", "Reminder: Review",
    ]  # fmt: skip
