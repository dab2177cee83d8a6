"""The recipe: Django's test set-up swaps in its in-memory backend (mail.outbox), so put the SMTP backend
back and point it at the sandbox, for every test."""

from __future__ import annotations

import pytest
from django.conf import LazySettings

from mailsandbox.pytest_plugin import SandboxHandle


@pytest.fixture(autouse=True)
def _mail_to_the_sandbox(settings: LazySettings, mail_sandbox: SandboxHandle) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = mail_sandbox.smtp_host
    settings.EMAIL_PORT = mail_sandbox.smtp_port
    settings.EMAIL_USE_TLS = False
    # Only needed when several test processes share one sandbox (--mailsandbox-url with xdist).
    settings.EMAIL_HOST_USER = mail_sandbox.smtp_username
    settings.EMAIL_HOST_PASSWORD = mail_sandbox.smtp_password
