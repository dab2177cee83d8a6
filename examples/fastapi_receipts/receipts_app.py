"""A FastAPI app that mails order receipts with an async SMTP client (aiosmtplib), never blocking its loop."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel


@dataclass
class SmtpSettings:
    host: str = "smtp.shop.example"
    port: int = 587
    username: str | None = None
    password: str | None = None
    sender: str = "Example Shop <orders@shop.example>"


class Order(BaseModel):
    email: str
    items: list[str]


def receipt(settings: SmtpSettings, order: Order, number: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = settings.sender, order.email, f"Your order #{number}"
    msg.set_content("You ordered:\n" + "".join(f"- {item}\n" for item in order.items))
    return msg


def create_app(settings: SmtpSettings) -> FastAPI:
    app = FastAPI()
    numbers = iter(range(1001, 10**9))

    @app.post("/orders", status_code=201)
    async def place_order(order: Order) -> dict[str, int]:
        if "@" not in order.email or not order.items:
            raise HTTPException(status_code=422, detail="an order needs an email address and items")
        number = next(numbers)
        await aiosmtplib.send(
            receipt(settings, order, number), hostname=settings.host, port=settings.port,
            username=settings.username, password=settings.password, start_tls=False, timeout=10,
        )  # fmt: skip
        return {"number": number}

    return app
