"""GET /api/v1/message/{ID} and /headers shaped as Mailpit's swagger.json defines them, over real SMTP."""

from __future__ import annotations

import hashlib
import smtplib
from typing import Any

import httpx

from mailsandbox.app import Sandbox

NEWSLETTER = (
    b"From: News <news@example.test>\r\nTo: ann@example.test\r\nSubject: Weekly\r\n"
    b"Message-ID: <weekly-1@example.test>\r\nMIME-Version: 1.0\r\n"
    b"List-Unsubscribe: <mailto:unsub@example.test?subject=stop>,\r\n <https://example.test/unsub?u=1>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    b"Content-Type: multipart/mixed; boundary=outer\r\n\r\n"
    b"--outer\r\nContent-Type: multipart/related; boundary=rel\r\n\r\n"
    b"--rel\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b"<html><head><style>p{}</style></head><body><p>Hello <b>Ann</b></p><img src=cid:logo@x></body></html>\r\n"
    b"--rel\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"iVBORw0K\r\n--rel--\r\n"
    b"--outer\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment;\r\n"
    b" filename*=utf-8''r%C3%A9sum%C3%A9.pdf\r\n\r\n%PDF-1.4\r\n"
    b'--outer\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename="fwd.eml"\r\n\r\n'
    b"Subject: inner\r\nFrom: c@example.test\r\nContent-Type: multipart/mixed; boundary=in\r\n\r\n"
    b"--in\r\nContent-Type: text/plain\r\n\r\ninner text\r\n--in\r\nContent-Type: application/pdf; name=inner.pdf\r\n"
    b"\r\n%PDF-inner\r\n--in--\r\n"
    b"--outer--\r\n"
)


def _send(sb: Sandbox, raw: bytes, rcpts: list[str]) -> None:
    addr = sb.address("smtp")
    with smtplib.SMTP(addr.host, addr.port, timeout=10) as smtp:
        smtp.sendmail("bounce@example.test", rcpts, raw)


def _latest(client: httpx.Client) -> dict[str, Any]:
    body: dict[str, Any] = client.get("/api/v1/message/latest").json()
    return body


def test_newsletter_message_shape(running_sandbox: Sandbox, client: httpx.Client) -> None:
    _send(running_sandbox, NEWSLETTER, ["ann@example.test", "hidden@example.test"])
    message = _latest(client)
    assert message["Text"].split() == ["Hello", "Ann"]  # HTML-only: the text its HTML shows, as Mailpit gives
    assert message["ReturnPath"] == "bounce@example.test"
    assert message["Bcc"] == [{"Name": "", "Address": "hidden@example.test"}]  # envelope-only, as Mailpit lists
    assert message["Username"] == "" and message["Tags"] == []
    assert message["ListUnsubscribe"] == {
        "Header": "<mailto:unsub@example.test?subject=stop>, <https://example.test/unsub?u=1>",  # unfolded
        "Links": ["mailto:unsub@example.test?subject=stop", "https://example.test/unsub?u=1"],
        "Errors": "",
        "HeaderPost": "List-Unsubscribe=One-Click",
    }
    [inline] = message["Inline"]
    assert (inline["PartID"], inline["ContentID"], inline["FileName"]) == ("1.2", "logo@x", "logo@x")
    assert [(a["PartID"], a["ContentType"], a["FileName"]) for a in message["Attachments"]] == [
        ("2", "application/pdf", "résumé.pdf"),
        ("3", "message/rfc822", "fwd.eml"),
    ]
    for item in (*message["Inline"], *message["Attachments"]):
        data = client.get(f"/api/v1/message/{message['ID']}/part/{item['PartID']}").content
        assert item["Size"] == len(data)
        assert item["Checksums"] == {
            "MD5": hashlib.md5(data).hexdigest(),
            "SHA1": hashlib.sha1(data).hexdigest(),
            "SHA256": hashlib.sha256(data).hexdigest(),
        }
    attached = client.get(f"/api/v1/message/{message['ID']}/part/3")
    assert attached.headers["content-type"].startswith("message/rfc822")
    assert attached.content.startswith(b"Subject: inner\r\n")
    inner_pdf = client.get(f"/api/v1/message/{message['ID']}/part/3.2")  # RFC 3501 numbering, as IMAP
    assert inner_pdf.content == b"%PDF-inner"
    assert client.get(f"/api/v1/message/{message['ID']}/part/3.1.2").status_code == 404
    listing = client.get("/api/v1/messages").json()["messages"][0]
    assert listing["Attachments"] == 2 and listing["Bcc"] == message["Bcc"]


def test_list_unsubscribe_errors_as_mailpit_reports_them(running_sandbox: Sandbox, client: httpx.Client) -> None:
    cases = {
        "https://example.test/u": ('"https://example.test/u" no valid unsubscribe links found', []),
        "<ftp://example.test/u>": ('"ftp://example.test/u" should start with either http(s):// or mailto:', []),
        "<https://a.test/1> <https://a.test/2>": (
            '"<https://a.test/1> <https://a.test/2>" <> should be split with a comma and optional spaces', []),
        "<https://a.test/1>, <https://a.test/2>": (
            '"https://a.test/2" should only contain one HTTP link', ["https://a.test/1"]),
    }  # fmt: skip
    for value, (errors, links) in cases.items():
        _send(running_sandbox, f"Subject: u\r\nList-Unsubscribe: {value}\r\n\r\nx\r\n".encode(), ["a@example.test"])
        got = _latest(client)["ListUnsubscribe"]
        assert (got["Errors"], got["Links"]) == (errors, links), value


def test_headers_use_go_canonical_keys_and_arrays(running_sandbox: Sandbox, client: httpx.Client) -> None:
    raw = (
        b"From: a@example.test\r\nTO: b@example.test\r\nMessage-ID: <m1@example.test>\r\nMIME-Version: 1.0\r\n"
        b"x-custom-HEADER: one\r\nX-Custom-Header: two,\r\n\tfolded\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n\r\nbody\r\n"
    )
    _send(running_sandbox, raw, ["b@example.test"])
    headers = client.get(f"/api/v1/message/{_latest(client)['ID']}/headers").json()
    assert list(headers) == sorted(headers)
    assert headers["Message-Id"] == ["<m1@example.test>"] and headers["Mime-Version"] == ["1.0"]
    assert headers["To"] == ["b@example.test"]
    assert headers["X-Custom-Header"] == ["one", "two, folded"]
    assert headers["Subject"] == ["=?utf-8?q?caf=C3=A9?="]  # as sent: net/mail does not decode
    assert all(isinstance(v, list) for v in headers.values())
