"""The recipe: Flask-Mail sends nothing while TESTING is on (MAIL_SUPPRESS_SEND follows it), so turn
suppression off and point MAIL_SERVER/MAIL_PORT at the sandbox."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient
from invite_app import create_app

from mailsandbox.pytest_plugin import SandboxHandle


@pytest.fixture
def client(mail_sandbox: SandboxHandle) -> Iterator[FlaskClient]:
    app = create_app(
        TESTING=True,
        MAIL_SUPPRESS_SEND=False,
        MAIL_SERVER=mail_sandbox.smtp_host,
        MAIL_PORT=mail_sandbox.smtp_port,
        MAIL_USE_TLS=False,
        # Only needed when several test processes share one sandbox (--mailsandbox-url with xdist).
        MAIL_USERNAME=mail_sandbox.smtp_username,
        MAIL_PASSWORD=mail_sandbox.smtp_password,
    )
    with app.test_client() as client:
        yield client
