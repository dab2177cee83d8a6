"""POST /api/v1/send with Mailpit's JSON, over a real running sandbox, with httpx."""

from __future__ import annotations

import base64
import smtplib
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import httpx

from mailsandbox.app import Sandbox
from mailsandbox.events import MessageStored

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def client_for(sb: Sandbox) -> httpx.Client:
    return httpx.Client(base_url=f"http://{sb.address('http')}", timeout=10)


def full_request() -> dict[str, Any]:
    return {
        "From": {"Email": "john@example.test", "Name": "John Doe"},
        "To": [{"Email": "jane@example.test", "Name": "Jane Doe"}],
        "Cc": [{"Email": "manager@example.test", "Name": "Manager"}],
        "Bcc": ["jack@example.test"],
        "ReplyTo": [{"Email": "secretary@example.test", "Name": "Secretary"}],
        "Subject": "Mailsandbox message via the HTTP API",
        "Text": "Mailsandbox is here.",
        "HTML": '<p>Mailsandbox is <b>here</b>!</p><img src="cid:logo">',
        "Attachments": [
            {"Content": base64.b64encode(b"col1,col2\n1,2\n").decode(), "Filename": "data.csv"},
            {"Content": "data:image/png;base64," + base64.b64encode(PNG).decode(), "Filename": "logo.png",
             "ContentType": "image/png", "ContentID": "logo"},
        ],
        "Headers": {"X-IP": "1.2.3.4"},
        "Tags": ["Tag 1", "Tag 2"],
    }  # fmt: skip


def test_send_builds_the_message_mailpit_describes(running_sandbox: Sandbox) -> None:
    seen: list[MessageStored] = []
    unsubscribe = running_sandbox.bus.subscribe(lambda e: seen.append(e) if isinstance(e, MessageStored) else None)
    with client_for(running_sandbox) as client:
        answer = client.post("/api/v1/send", json=full_request())
        assert answer.status_code == 200, answer.text
        assert set(answer.json()) == {"ID"}
        mid = answer.json()["ID"]
        detail = client.get(f"/api/v1/message/{mid}").json()
        raw = client.get(f"/api/v1/message/{mid}/raw").content
    unsubscribe()
    assert [e.message.id for e in seen] == [mid]  # the same event SMTP mail publishes
    assert detail["From"] == {"Name": "John Doe", "Address": "john@example.test"}
    assert [a["Address"] for a in detail["To"]] == ["jane@example.test"]
    assert [a["Address"] for a in detail["Cc"]] == ["manager@example.test"]
    assert [a["Address"] for a in detail["ReplyTo"]] == ["secretary@example.test"]
    assert detail["Subject"] == "Mailsandbox message via the HTTP API"
    assert detail["Text"].strip() == "Mailsandbox is here."
    assert "<b>here</b>" in detail["HTML"]
    assert [a["FileName"] for a in detail["Attachments"]] == ["data.csv"]
    assert [a["FileName"] for a in detail["Inline"]] == ["logo.png"]
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["X-IP"] == "1.2.3.4" and parsed["X-Tags"] == "Tag 1, Tag 2"
    assert parsed["Bcc"] is None  # Bcc is envelope only
    assert parsed["Message-ID"] and parsed["Date"]
    assert raw.startswith(b"Received: from api") and b"with HTTP" in raw.split(b"\r\n\r\n")[0]
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")  # CRLF throughout, as SMTP mail
    inline = next(p for p in parsed.walk() if p.get_filename() == "logo.png")
    assert inline["Content-ID"] == "<logo>" and inline.get_content() == PNG
    envelope = running_sandbox.store.get(mid)
    assert envelope is not None
    assert set(envelope.envelope.rcpt_tos) == {"jane@example.test", "manager@example.test", "jack@example.test"}
    assert envelope.envelope.mail_from == "john@example.test"
    assert {"jane@example.test", "manager@example.test", "jack@example.test"} <= set(envelope.mailboxes)
    assert running_sandbox.info()["RuntimeStats"]["SMTPAccepted"] == 1


def test_text_only_and_html_only(running_sandbox: Sandbox) -> None:
    with client_for(running_sandbox) as client:
        for body, want in (({"Text": "just text"}, "text/plain"), ({"HTML": "<p>just html</p>"}, "text/html")):
            request = {"From": {"Email": "a@example.test"}, "To": [{"Email": "b@example.test"}], **body}
            mid = client.post("/api/v1/send", json=request).json()["ID"]
            parsed = message_from_bytes(client.get(f"/api/v1/message/{mid}/raw").content, policy=policy.default)
            assert parsed.get_content_type() == want


def test_bad_requests_are_400_with_mailpit_error_shape(running_sandbox: Sandbox) -> None:
    good = {"From": {"Email": "a@example.test"}, "To": [{"Email": "b@example.test"}]}
    cases: list[tuple[Any, str]] = [
        (b"{not json", "malformed JSON"),
        ([1, 2], "JSON object"),
        ({"To": [{"Email": "b@example.test"}]}, "From.Email is required"),
        ({"From": {"Name": "no address"}}, "From.Email is required"),
        ({**good, "From": {"Email": "not an address"}}, "invalid From address"),
        ({**good, "To": [{"Email": "nobody"}]}, "invalid To address"),
        ({**good, "Bcc": ["x y"]}, "invalid Bcc address"),
        ({**good, "To": "b@example.test"}, "To must be a list"),
        ({**good, "Attachments": [{"Content": "!!!notbase64", "Filename": "f.bin"}]}, 'attachment "f.bin"'),
        ({**good, "Headers": {"Subject": "sneaky"}}, 'cannot overwrite header: "Subject"'),
        ({**good, "Headers": {"X-Evil": "a\r\nBcc: victim@example.test"}}, "error building message"),
        ({**good, "Subject": 5}, "Subject must be a string"),
        ({**good, "Headers": {"X Bad: name": "v"}}, "not a header name"),
        ({**good, "Tags": ["t"], "Headers": {"X-Tags": "other"}}, 'cannot overwrite header: "X-Tags"'),
    ]
    with client_for(running_sandbox) as client:
        for body, reason in cases:
            kwargs: dict[str, Any] = {"content": body} if isinstance(body, bytes) else {"json": body}
            answer = client.post("/api/v1/send", **kwargs)
            assert answer.status_code == 400, (body, answer.text)
            assert set(answer.json()) == {"Error"} and reason in answer.json()["Error"], (body, answer.json())
        assert client.get("/api/v1/messages").json()["total"] == 0
        assert client.post("/api/v1/send", json=good).status_code == 200  # and it keeps serving


def test_the_size_limit_is_the_smtp_one(sandbox_factory: Any) -> None:
    sb = sandbox_factory(max_message_size=20_000)
    big = {"From": {"Email": "a@example.test"}, "To": [{"Email": "b@example.test"}], "Text": "x" * 30_000}
    with client_for(sb) as client:
        answer = client.post("/api/v1/send", json=big)
        assert answer.status_code == 413 and "exceeds" in answer.json()["Error"]
        assert client.post("/api/v1/send", json={**big, "Text": "small"}).status_code == 200


def test_duplicates_are_ignored_by_smtp_and_the_api(sandbox_factory: Any) -> None:
    sb = sandbox_factory(ignore_duplicate_ids=True)
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.test", "b@example.test", "once"
    msg["Message-ID"] = "<same@example.test>"
    msg.set_content("body")
    smtp = sb.address("smtp")
    with smtplib.SMTP(smtp.host, smtp.port) as client:
        client.send_message(msg)
        for _ in range(2):  # the client hears 250, as from Mailpit; nothing is stored
            client.mail("a@example.test")
            client.rcpt("b@example.test")
            code, reply = client.data(msg.as_bytes())
            assert code == 250 and b"duplicate" in reply
    with client_for(sb) as http:
        api = {"From": {"Email": "a@example.test"}, "To": [{"Email": "b@example.test"}],
               "Headers": {"Message-ID": "<same@example.test>"}}  # fmt: skip
        assert http.post("/api/v1/send", json=api).json() == {"ID": ""}
        other = http.post("/api/v1/send", json={**api, "Headers": {"Message-ID": "<other@example.test>"}}).json()
        assert other["ID"]
        assert http.get("/api/v1/messages").json()["total"] == 2
        stats = http.get("/api/v1/info").json()["RuntimeStats"]
    assert stats["SMTPIgnored"] == 3 and stats["SMTPAccepted"] == 2  # two by SMTP, one by the API


def test_duplicates_are_kept_by_default(running_sandbox: Sandbox) -> None:
    api = {"From": {"Email": "a@example.test"}, "To": [{"Email": "b@example.test"}],
           "Headers": {"Message-ID": "<same@example.test>"}}  # fmt: skip
    with client_for(running_sandbox) as http:
        ids = {http.post("/api/v1/send", json=api).json()["ID"] for _ in range(2)}
        assert len(ids) == 2 and "" not in ids
