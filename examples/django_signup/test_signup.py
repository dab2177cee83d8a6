"""Django's test client posts the form; the welcome arrives in the sandbox over real SMTP."""

from __future__ import annotations

from django.core import mail
from django.test import Client

from mailsandbox.pytest_plugin import Outbox


def test_signup_mails_a_welcome(client: Client, outbox: Outbox) -> None:
    response = client.post("/signup", {"email": "Ann@Example.test"})
    assert response.status_code == 201

    msg = outbox.wait_for(to="ann@example.test", subject="Welcome")
    assert msg.sender == "hello@shop.example"
    assert msg.links == ["https://shop.example/confirm/ann@example.test"]
    assert mail.outbox == []  # nothing went to Django's in-memory backend


def test_a_bad_address_sends_nothing(client: Client, outbox: Outbox) -> None:
    assert client.post("/signup", {"email": "nobody"}).status_code == 400
    outbox.assert_nothing_sent()
