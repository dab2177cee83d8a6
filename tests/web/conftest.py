"""Web test fixtures: a running sandbox with the UI wired in, an SMTP sender, an HTTP client."""

from __future__ import annotations

import os
import smtplib
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

from mailsandbox.app import Sandbox

CHROMIUM = "/usr/bin/chromium"
# Headless, and nothing that reaches for the network this machine does not have.
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium per browser test module. A thread can drive only one sync Playwright at a time, and
    while one is open its event loop runs in the main thread: it must not outlive the module, or later
    tests that start an event loop (pytest-asyncio, asyncio.run) fail."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing; .ci/run must apt-get install chromium")
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def base_url(running_sandbox: Sandbox) -> str:
    http = running_sandbox.address("http")
    return f"http://{http.host}:{http.port}"


@pytest.fixture
def page(browser: Any, base_url: str) -> Iterator[Any]:
    """A 1280x800 page of the UI, its event stream connected (modules that need another page define
    their own)."""
    from playwright.sync_api import expect

    expect.set_options(timeout=5000)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    pg = context.new_page()
    pg.set_default_timeout(5000)
    pg.goto(base_url + "/")
    expect(pg.locator("#live")).to_have_text("live")  # the event stream is connected
    yield pg
    context.close()


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=10) as c:
        yield c


Send = Callable[..., None]


@pytest.fixture
def send(running_sandbox: Sandbox) -> Send:
    """send(subject=, body=, html=, to=[...], bcc=[...], sender=, attachments=[(name, type, bytes)])."""
    smtp = running_sandbox.address("smtp")

    def _send(
        subject: str = "Hello",
        body: str | None = "Hello there.",
        html: str | None = None,
        to: tuple[str, ...] = ("ann@example.test",),
        bcc: tuple[str, ...] = (),
        sender: str = "Bob Sender <bob@example.test>",
        attachments: tuple[tuple[str, str, bytes], ...] = (),
        related: tuple[tuple[str, str, bytes], ...] = (),
    ) -> None:
        msg = EmailMessage()
        msg["From"] = sender
        msg["To"] = ", ".join(to)
        msg["Subject"] = subject
        msg.set_content(body or "")
        if html is not None:
            msg.add_alternative(html, subtype="html")
            html_part = msg.get_payload()[-1]  # type: ignore[index]
            assert isinstance(html_part, EmailMessage)
            for cid, ctype, data in related:
                maintype, subtype = ctype.split("/")
                html_part.add_related(data, maintype=maintype, subtype=subtype, cid=f"<{cid}>")
        for name, ctype, data in attachments:
            maintype, subtype = ctype.split("/")
            msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
        with smtplib.SMTP(smtp.host, smtp.port) as s:
            s.send_message(msg, to_addrs=[*to, *bcc])

    return _send
