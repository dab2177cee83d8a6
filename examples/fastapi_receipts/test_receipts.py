"""Async tests (pytest-asyncio): httpx calls the app in-process, aiosmtplib sends into the sandbox, and
the outbox is awaited without blocking the event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from receipts_app import SmtpSettings, create_app

from mailsandbox.pytest_plugin import Outbox, SandboxHandle


@pytest_asyncio.fixture
async def client(mail_sandbox: SandboxHandle) -> AsyncIterator[httpx.AsyncClient]:
    settings = SmtpSettings(
        host=mail_sandbox.smtp_host,
        port=mail_sandbox.smtp_port,
        # Only needed when several test processes share one sandbox (--mailsandbox-url with xdist).
        username=mail_sandbox.smtp_username,
        password=mail_sandbox.smtp_password,
    )
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
        yield client


@pytest.mark.asyncio
async def test_the_receipt_lists_the_order(client: httpx.AsyncClient, outbox: Outbox) -> None:
    response = await client.post("/orders", json={"email": "ann@example.test", "items": ["tea", "cups"]})
    assert response.status_code == 201
    number = response.json()["number"]

    msg = await outbox.await_for(to="ann@example.test", subject=f"#{number}")
    assert msg.text.splitlines() == ["You ordered:", "- tea", "- cups"]


@pytest.mark.asyncio
async def test_two_orders_two_receipts(client: httpx.AsyncClient, outbox: Outbox) -> None:
    for items in (["tea"], ["cups"]):
        assert (await client.post("/orders", json={"email": "bob@example.test", "items": items})).status_code == 201
    first, second = await outbox.wait_async(2, to="bob@example.test")
    assert first.subject != second.subject


@pytest.mark.asyncio
async def test_an_empty_order_sends_nothing(client: httpx.AsyncClient, outbox: Outbox) -> None:
    assert (await client.post("/orders", json={"email": "ann@example.test", "items": []})).status_code == 422
    outbox.assert_nothing_sent()
