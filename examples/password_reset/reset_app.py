"""A small Starlette app that mails password-reset links with smtplib: the kind of code the plugin tests."""

from __future__ import annotations

import secrets
import smtplib
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from html import escape
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route


@dataclass
class Settings:
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    base_url: str = "https://app.example"
    sender: str = "Example App <no-reply@app.example>"
    users: set[str] = field(default_factory=set)


def reset_message(settings: Settings, address: str, token: str) -> EmailMessage:
    link = f"{settings.base_url}/reset/{token}"
    msg = EmailMessage()
    msg["From"] = settings.sender
    msg["To"] = address
    msg["Subject"] = "Reset your password"
    msg["X-Mailer-Purpose"] = "password-reset"
    msg.set_content(f"Someone asked to reset the password for {address}.\n\nFollow {link} within an hour.\n")
    msg.add_alternative(
        f'<p>Someone asked to reset the password for {escape(address)}.</p><p><a href="{escape(link)}">'
        "Choose a new password</a> within an hour.</p>",
        subtype="html",
    )
    return msg


def send(settings: Settings, msg: EmailMessage) -> None:
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=10) as smtp:
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password or "")
        smtp.send_message(msg)


def create_app(settings: Settings, users: Iterable[str] = ()) -> Starlette:
    settings.users.update(u.lower() for u in users)
    tokens: dict[str, str] = {}

    async def request_reset(request: Request) -> Response:
        # A urlencoded form, parsed by hand: Starlette's form parser needs python-multipart.
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        address = form.get("email", [""])[0].strip().lower()
        if "@" not in address:
            return PlainTextResponse("That is not an email address.", status_code=400)
        # Same answer whether or not the account exists, so the form reveals no addresses.
        if address in settings.users:
            token = secrets.token_urlsafe(16)
            tokens[token] = address
            await run_in_threadpool(send, settings, reset_message(settings, address, token))
        return PlainTextResponse("If that address has an account, a reset link is on its way.", status_code=202)

    async def reset_form(request: Request) -> Response:
        address = tokens.get(request.path_params["token"])
        if address is None:
            return PlainTextResponse("This link is not valid.", status_code=404)
        return PlainTextResponse(f"Choose a new password for {address}.")

    return Starlette(
        routes=[
            Route("/password-reset", request_reset, methods=["POST"]),
            Route("/reset/{token}", reset_form, methods=["GET"]),
        ]
    )
