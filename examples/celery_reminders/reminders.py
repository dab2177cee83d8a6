"""Mail sent from a background worker: a Celery task that mails a reminder with smtplib."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

from celery import Celery

app = Celery("reminders")
app.conf.update(
    # Production would name a real broker and SMTP relay; the tests replace these.
    broker_url="memory://",
    result_backend="cache+memory://",
    smtp_host="smtp.example",
    smtp_port=587,
    smtp_user=None,
    smtp_password=None,
)


@app.task  # type: ignore[untyped-decorator]  # Celery ships no type hints
def send_reminder(address: str, event: str) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "Calendar <calendar@app.example>", address, f"Reminder: {event}"
    msg.set_content(f"{event} starts in 15 minutes.\n")
    with smtplib.SMTP(app.conf.smtp_host, app.conf.smtp_port, timeout=10) as smtp:
        if app.conf.smtp_user:
            smtp.login(app.conf.smtp_user, app.conf.smtp_password or "")
        smtp.send_message(msg)
