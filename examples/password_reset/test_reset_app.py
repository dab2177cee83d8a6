"""The example app tested end to end: a real SMTP conversation into the sandbox, then the link followed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest
import pytest_asyncio
from reset_app import Settings, create_app

from mailsandbox.pytest_plugin import Outbox, SandboxHandle


@pytest_asyncio.fixture
async def client(mail_sandbox: SandboxHandle) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        smtp_host=mail_sandbox.smtp_host,
        smtp_port=mail_sandbox.smtp_port,
        # Only needed when several test processes share one sandbox (--mailsandbox-url with xdist).
        smtp_user=mail_sandbox.smtp_username,
        smtp_password=mail_sandbox.smtp_password,
    )
    app = create_app(settings, users=["ann@example.test"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app.test") as client:
        yield client


@pytest.mark.asyncio
async def test_reset_link_arrives_and_works(client: httpx.AsyncClient, outbox: Outbox) -> None:
    response = await client.post("/password-reset", data={"email": "Ann@Example.test"})
    assert response.status_code == 202

    msg = await outbox.await_for(to="ann@example.test", subject="Reset your password")
    assert msg.sender == "no-reply@app.example"
    assert msg.headers["X-Mailer-Purpose"] == "password-reset"
    assert "within an hour" in msg.text and "Choose a new password" in msg.html
    (link,) = msg.links  # the same link in both parts, listed once
    assert link.startswith("https://app.example/reset/")

    page = await client.get(urlsplit(link).path)
    assert page.status_code == 200
    assert page.text == "Choose a new password for ann@example.test."


@pytest.mark.asyncio
async def test_unknown_address_gets_no_mail(client: httpx.AsyncClient, outbox: Outbox) -> None:
    response = await client.post("/password-reset", data={"email": "mallory@example.test"})
    assert response.status_code == 202  # the same answer: the form reveals no accounts
    outbox.assert_nothing_sent()


@pytest.mark.asyncio
async def test_each_request_mails_a_fresh_token(client: httpx.AsyncClient, outbox: Outbox) -> None:
    for _ in range(2):
        await client.post("/password-reset", data={"email": "ann@example.test"})
    first, second = outbox.assert_sent(2, to="ann@example.test")
    assert first.find(r"/reset/([\w-]+)") != second.find(r"/reset/([\w-]+)")
