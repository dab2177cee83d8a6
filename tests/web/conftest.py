"""Web test fixtures: a running sandbox with the UI wired in, an SMTP sender, an HTTP client."""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute

import web.app
from sandbox.app import Sandbox
from sandbox.events import EventBus
from sandbox.store import Store
from web.security import SecurityHeaders
from web.ui import web_routes


@pytest.fixture(autouse=True)
def _ui_wired(monkeypatch: pytest.MonkeyPatch) -> None:
    """Until create_app mounts web_routes and SecurityHeaders itself, add them here (a no-op after)."""
    original = web.app.create_app

    def create_app(store: Store, bus: EventBus, **kwargs: Any) -> Starlette:
        app = original(store, bus, **kwargs)
        paths = {r.path for r in app.routes if isinstance(r, Route | WebSocketRoute)}
        if "/api/events" not in paths:
            app.router.routes.extend(web_routes(store, bus))
            app.add_middleware(SecurityHeaders)
        return app

    monkeypatch.setattr(web.app, "create_app", create_app)


@pytest.fixture
def base_url(running_sandbox: Sandbox) -> str:
    http = running_sandbox.address("http")
    return f"http://{http.host}:{http.port}"


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
