"""The Mailpit-shaped API v1 over a real running sandbox, with httpx."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

import httpx
import pytest

from mailsandbox.app import Sandbox


@pytest.fixture
def client(running_sandbox: Sandbox) -> httpx.Client:
    return httpx.Client(base_url=f"http://{running_sandbox.address('http')}", timeout=10)


def send(sb: Sandbox, subject: str, to: str = "bob@example.test", attach: bool = False, html: bool = False) -> None:
    msg = EmailMessage()
    msg["From"] = "ann@example.test"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(f"text of {subject}\n")
    if html:
        msg.add_alternative(f"<p>html of {subject}</p>", subtype="html")
    if attach:
        msg.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="report.pdf")
    addr = sb.address("smtp")
    with smtplib.SMTP(addr.host, addr.port) as smtp:
        smtp.send_message(msg)


def test_listing_is_newest_first_with_paging(running_sandbox: Sandbox, client: httpx.Client) -> None:
    for i in range(5):
        send(running_sandbox, f"m{i}")
    body = client.get("/api/v1/messages", params={"limit": 2}).json()
    assert set(body) >= {"total", "unread", "count", "start", "tags", "messages", "messages_count"}
    assert body["total"] == 5 and body["count"] == 2 and body["start"] == 0 and body["unread"] == 5
    assert [m["Subject"] for m in body["messages"]] == ["m4", "m3"]
    page2 = client.get("/api/v1/messages", params={"start": 2, "limit": 2}).json()
    assert [m["Subject"] for m in page2["messages"]] == ["m2", "m1"]
    summary = body["messages"][0]
    assert set(summary) >= {"ID", "MessageID", "Read", "From", "To", "Cc", "Bcc", "ReplyTo", "Subject",
                            "Created", "Username", "Tags", "Size", "Attachments", "Snippet"}  # fmt: skip
    assert summary["Snippet"] == "text of m4"
    assert summary["Created"].endswith("Z")


def test_bad_paging_is_a_plain_text_400(client: httpx.Client) -> None:
    response = client.get("/api/v1/messages", params={"limit": "lots"})
    assert response.status_code == 400 and response.headers["content-type"] == "text/plain"
    assert "limit" in response.text
    assert client.get("/api/v1/messages", params={"limit": 100000}).status_code == 400


def test_message_latest_parts_raw_headers(running_sandbox: Sandbox, client: httpx.Client) -> None:
    send(running_sandbox, "first")
    send(running_sandbox, "with parts", attach=True, html=True)
    message = client.get("/api/v1/message/latest").json()
    assert message["Subject"] == "with parts"
    assert message["Text"] == "text of with parts\n"
    assert message["HTML"] == "<p>html of with parts</p>\n"
    [attachment] = message["Attachments"]
    assert attachment["FileName"] == "report.pdf" and attachment["ContentType"] == "application/pdf"
    part = client.get(f"/api/v1/message/{message['ID']}/part/{attachment['PartID']}")
    assert part.content == b"%PDF-1.4 fake" and part.headers["content-type"] == "application/pdf"
    assert "report.pdf" in part.headers["content-disposition"]
    raw = client.get(f"/api/v1/message/{message['ID']}/raw")
    assert raw.content.startswith(b"Received: ") and b"Subject: with parts" in raw.content
    download = client.get(f"/api/v1/message/{message['ID']}/raw", params={"dl": 1})
    assert download.headers["content-disposition"] == f'attachment; filename="{message["ID"]}.eml"'
    headers = client.get(f"/api/v1/message/{message['ID']}/headers").json()
    assert headers["Subject"] == ["with parts"] and len(headers["Received"]) == 1
    # Opening a message marks it read, as Mailpit does.
    assert client.get("/api/v1/messages").json()["unread"] == 1
    tree = message["Structure"]
    assert tree["ContentType"] == "multipart/mixed" and len(tree["Parts"]) == 2


def test_missing_message_and_part_are_mailpits_404(running_sandbox: Sandbox, client: httpx.Client) -> None:
    for path in ("/api/v1/message/nope", "/api/v1/message/nope/raw", "/api/v1/message/latest"):
        response = client.get(path)
        assert (response.status_code, response.text) == (404, "404 page not found")
        assert response.headers["content-type"] == "text/plain"
    send(running_sandbox, "x")
    assert client.get("/api/v1/message/latest/part/9").status_code == 404


def test_read_state_and_deletion(running_sandbox: Sandbox, client: httpx.Client) -> None:
    for i in range(3):
        send(running_sandbox, f"m{i}")
    ids = [m["ID"] for m in client.get("/api/v1/messages").json()["messages"]]
    assert client.put("/api/v1/messages", json={"IDs": ids[:2], "Read": True}).status_code == 200
    assert client.get("/api/v1/messages").json()["unread"] == 1
    client.put("/api/v1/messages", json={"Read": True})  # no IDs: all
    assert client.get("/api/v1/messages").json()["unread"] == 0
    client.put("/api/v1/messages", json={"IDs": [ids[0]], "Read": False})
    assert client.get("/api/v1/messages").json()["unread"] == 1
    assert client.put("/api/v1/messages", json={"IDs": "x"}).status_code == 400
    assert client.request("DELETE", "/api/v1/messages", json={"IDs": [ids[0]]}).status_code == 200
    assert [m["ID"] for m in client.get("/api/v1/messages").json()["messages"]] == ids[1:]
    client.delete("/api/v1/messages")
    assert client.get("/api/v1/messages").json()["total"] == 0


def test_search_and_delete_search(running_sandbox: Sandbox, client: httpx.Client) -> None:
    send(running_sandbox, "Invoice 42", to="billing@example.test", attach=True)
    send(running_sandbox, "Welcome aboard", to="ann@example.test")
    send(running_sandbox, "Weekly digest", to="ann@example.test")
    found = client.get("/api/v1/search", params={"query": "welcome"}).json()
    assert [m["Subject"] for m in found["messages"]] == ["Welcome aboard"]
    assert found["messages_count"] == 1
    found = client.get("/api/v1/search", params={"query": "to:ann@example.test"}).json()
    assert {m["Subject"] for m in found["messages"]} == {"Welcome aboard", "Weekly digest"}
    found = client.get("/api/v1/search", params={"query": "has:attachment"}).json()
    assert [m["Subject"] for m in found["messages"]] == ["Invoice 42"]
    assert client.get("/api/v1/search").status_code == 400
    client.delete("/api/v1/search", params={"query": "subject:weekly"})
    assert {m["Subject"] for m in client.get("/api/v1/messages").json()["messages"]} == {"Invoice 42",
                                                                                           "Welcome aboard"}


def test_info_and_mailboxes_and_reset(running_sandbox: Sandbox, client: httpx.Client) -> None:
    send(running_sandbox, "a", to="x@example.test")
    info = client.get("/api/v1/info").json()
    assert info["Messages"] == 1 and info["Unread"] == 1
    assert info["RuntimeStats"]["SMTPAccepted"] == 1
    assert info["Listeners"]["smtp"] == str(running_sandbox.address("smtp"))
    assert client.get("/api/sandbox/mailboxes").json() == [{"Mailbox": "x@example.test", "Total": 1, "Unread": 1}]
    assert client.post("/api/sandbox/reset").status_code == 200
    assert client.get("/api/v1/messages").json()["total"] == 0
