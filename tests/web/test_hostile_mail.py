"""Hostile mail over real SMTP into a running sandbox: while it arrives and while the preview, the text
view and the message API render it, a small SMTP send and /livez still answer within 100 ms."""

from __future__ import annotations

import smtplib

import httpx
import pytest

from mailsandbox.app import Sandbox
from tests.conftest import probe_during


def _html_mail(tag: str, markup: str) -> bytes:
    return (
        f"From: bomb@example.test\r\nTo: victim@example.test\r\nSubject: {tag}\r\n"
        f"Message-ID: <{tag}@example.test>\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    ).encode() + markup.encode()


HOSTILE = {
    "a-tags": _html_mail("a-tags", "<a" * 700),  # 1.4 KB: froze the server 40 s on /view
    "head-tags": _html_mail("head-tags", "<head" * 20000),  # 100 KB: froze it 21 s on arrival
    "unclosed-quotes": _html_mail("unclosed-quotes", "<a href='" * 10000),
    "deep-divs": _html_mail("deep-divs", "<div>" * 8000),  # 40 KB of tags: about 12 ms to summarize
    "comments": _html_mail("comments", "<!--" * 25000),
    "css": _html_mail("css", "<style>" + "url(" * 20000 + "</style><p style=\"" + "url('" * 10000 + '">'),
    "spaces-in-to": (
        b"From: a@example.test\r\nTo: x@example.test," + b" " * 50000 + b"!\r\nSubject: spaces-in-to\r\n"
        b"Message-ID: <spaces-in-to@example.test>\r\n\r\nbody\r\n"
    ),
    "encoded-subject": (
        b"From: a@example.test\r\nTo: x@example.test\r\nSubject: " + b"=?a?q?" * 15000 + b"\r\n"
        b"Message-ID: <encoded-subject@example.test>\r\n\r\nbody\r\n"
    ),
}


def _send(sandbox: Sandbox, raw: bytes) -> None:
    smtp = sandbox.address("smtp")
    with smtplib.SMTP(smtp.host, smtp.port, timeout=30) as client:
        client.sendmail("bomb@example.test", ["victim@example.test"], raw)


def _message_id(client: httpx.Client, tag: str) -> str:
    found = client.get("/api/v1/search", params={"query": f"message-id:<{tag}@example.test>"}).json()
    assert found["messages"], f"{tag} was not stored"
    return str(found["messages"][0]["ID"])


@pytest.mark.parametrize("tag", HOSTILE)
def test_hostile_mail_never_stalls_the_loop(running_sandbox: Sandbox, tag: str) -> None:
    http = running_sandbox.address("http")
    base = f"http://{http.host}:{http.port}"
    with httpx.Client(base_url=base, timeout=30) as client:
        probe_during(running_sandbox, lambda: _send(running_sandbox, HOSTILE[tag]))
        message_id = _message_id(client, tag)

        def render() -> None:
            html = client.get(f"/view/{message_id}.html")
            assert html.status_code in (200, 404)  # 404: no HTML part
            assert client.get(f"/view/{message_id}.txt").status_code == 200
            assert client.get(f"/api/sandbox/message/{message_id}/preview").status_code == 200
            assert client.get(f"/api/v1/message/{message_id}").status_code == 200

        probe_during(running_sandbox, render)
