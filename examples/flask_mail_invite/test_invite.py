"""Flask's test client posts the form; the invitation arrives in the sandbox over real SMTP."""

from __future__ import annotations

from flask.testing import FlaskClient

from mailsandbox.pytest_plugin import Outbox


def test_invitation_arrives(client: FlaskClient, outbox: Outbox) -> None:
    assert client.post("/invite", data={"email": "bob@example.test"}).status_code == 201
    msg = outbox.wait_for(to="bob@example.test", subject="invited")
    assert msg.sender == "invites@team.example"
    assert msg.links == ["https://team.example/join?email=bob@example.test"]


def test_a_bad_address_sends_nothing(client: FlaskClient, outbox: Outbox) -> None:
    assert client.post("/invite", data={"email": "bob"}).status_code == 400
    outbox.assert_nothing_sent()
