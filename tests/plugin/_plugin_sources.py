"""Source of the throwaway test files the pytester runs use (a user's test suite, in miniature)."""

from __future__ import annotations

# Options of every inner run: strict markers as a careful project has them; no cache files; and
# no hypothesis plugin, whose import costs each xdist worker over a second.
INNER_OPTIONS = (
    "--strict-markers",
    "-p",
    "no:cacheprovider",
    "-p",
    "no:hypothesispytest",
    "-o",
    "asyncio_default_fixture_loop_scope=function",
)

# Prepended to every inner test file: a plain-smtplib sender, as an application would have.
SEND = """
import smtplib
from email.message import EmailMessage


def send(mail_sandbox, subject="Hello", to=("ann@example.test",), cc=(), bcc=(), text="hello\\n",
         html=None, headers=None, attachment=None, sender="App <noreply@app.example>", login=False):
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = subject
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(text)
    if html:
        msg.add_alternative(html, subtype="html")
    if attachment:
        msg.add_attachment(attachment[1], maintype="application", subtype="octet-stream",
                           filename=attachment[0])
    with smtplib.SMTP(mail_sandbox.smtp_host, mail_sandbox.smtp_port, timeout=10) as smtp:
        if login:
            smtp.login(mail_sandbox.smtp_username, mail_sandbox.smtp_password)
        smtp.send_message(msg, to_addrs=[*to, *cc, *bcc])
"""

# Every fixture and filter; passes in-process and against a sandbox URL alike.
BASIC = (
    SEND
    + """
import re
import threading

import httpx
import pytest

from mailsandbox.pytest_plugin import CapturedMessage, Outbox, SandboxHandle


def test_handle(mail_sandbox):
    assert isinstance(mail_sandbox, SandboxHandle)
    assert mail_sandbox.smtp_host == "127.0.0.1" and mail_sandbox.smtp_port > 0
    assert httpx.get(mail_sandbox.http_url + "/livez", trust_env=False).status_code == 200
    for port in (mail_sandbox.pop3_port, mail_sandbox.imap_port, mail_sandbox.dns_port):
        assert port is None or port > 0
    if not mail_sandbox.external:
        assert mail_sandbox.started_in < 1.0


def test_message_fields(outbox, mail_sandbox):
    assert isinstance(outbox, Outbox)
    send(mail_sandbox, subject="Reset your password", cc=("carol@example.test",), bcc=("dave@example.test",),
         text="Reset: https://app.example/reset/t0k3n\\nCode: 123456\\n",
         html='<a href="https://app.example/help">help</a>', headers={"X-Kind": "reset"},
         attachment=("notes.bin", b"\\x00\\x01"))
    msg = outbox.wait_for(to="ann@example.test")
    assert isinstance(msg, CapturedMessage)
    assert msg.subject == "Reset your password"
    assert msg.sender == "noreply@app.example" and msg.envelope_from == "noreply@app.example"
    assert (msg.to, msg.cc, msg.bcc) == (["ann@example.test"], ["carol@example.test"], ["dave@example.test"])
    assert msg.envelope_to == ["ann@example.test", "carol@example.test", "dave@example.test"]
    assert msg.headers["x-kind"] == "reset"
    assert msg.links == ["https://app.example/reset/t0k3n", "https://app.example/help"]
    assert msg.find(r"Code: (\\d+)") == "123456"
    assert "help" in msg.html and "Code" in msg.text
    (att,) = msg.attachments
    assert (att.filename, att.content_type, bytes(att)) == ("notes.bin", "application/octet-stream", b"\\x00\\x01")
    assert msg.raw.startswith(b"From: ") or b"\\r\\nFrom: " in msg.raw
    assert msg.email["Subject"] == "Reset your password"
    assert all(hop.code == 250 for hop in msg.trace)  # delivered locally at once, if traced at all
    assert len(outbox) == 1 and list(outbox) == outbox.messages and outbox[0].id == msg.id


def test_isolation_leaves_mail_behind(outbox, mail_sandbox):
    send(mail_sandbox, subject="left behind")
    outbox.wait_for(subject="left behind")


def test_isolation_next_test_starts_empty(outbox):
    assert len(outbox) == 0
    outbox.assert_nothing_sent()


def test_filters(outbox, mail_sandbox):
    send(mail_sandbox, subject="Welcome Ann", to=("ann@example.test",), headers={"X-Kind": "a"},
         text="Confirm your address")
    send(mail_sandbox, subject="Welcome Bob", to=("bob@example.test",), cc=("ann@example.test",),
         headers={"X-Kind": "b"}, html="<p>HTML only <b>words</b></p>")
    send(mail_sandbox, subject="Invoice", to=("bob@example.test",), bcc=("eve@example.test",),
         sender="billing@app.example", headers={"X-Tags": "billing, Urgent"})
    assert len(outbox.wait(3)) == 3
    count = lambda **f: len(outbox.filter(**f))  # noqa: E731
    assert count(to="ann@example.test") == 2  # a Cc recipient was sent the mail too
    assert count(to=["bob@example.test", "ann@example.test"]) == 1
    assert count(to=re.compile(r"^bob@")) == 2
    assert count(cc="ann@example.test") == 1
    assert count(bcc="eve@example.test") == 1
    assert count(sender="billing@app.example") == 1
    assert count(subject="Welcome") == 2
    assert count(subject=re.compile(r"^Welcome (Ann|Bob)$")) == 2
    assert count(contains="Confirm your") == 1
    assert count(contains="<b>words</b>") == 1
    assert count(contains=re.compile(r"HTML\\s+only")) == 1
    assert count(header={"X-Kind": "b"}) == 1
    assert count(header={"x-kind": re.compile("a|b")}) == 2
    assert count(header={"X-Kind": None}) == 2
    assert count(subject="Welcome", to="bob@example.test") == 1
    assert count(tag="billing") == 1 and count(tag=["URGENT", "billing"]) == 1 and count(tag="nope") == 0
    assert outbox.wait_for(tag="urgent").tags == ["billing", "Urgent"]
    assert [m.subject for m in outbox.wait(2, subject="Welcome")] == ["Welcome Ann", "Welcome Bob"]
    assert outbox.wait_for(subject="Welcome").subject == "Welcome Ann"  # the first match
    assert len(outbox.assert_sent(subject="Welcome")) == 2
    assert outbox.assert_sent(1, header={"X-Kind": "b"})[0].subject == "Welcome Bob"
    outbox.assert_nothing_sent(subject="Password")
    with pytest.raises(TypeError, match="unknown mail filter"):
        outbox.filter(recipient="ann@example.test")


def test_wait_for_mail_sent_later(outbox, mail_sandbox):
    later = threading.Timer(0.05, send, [mail_sandbox], {"subject": "from a worker"})
    later.start()
    try:
        assert outbox.wait_for(subject="from a worker", timeout=5).subject == "from a worker"
    finally:
        later.join()


def test_clear(outbox, mail_sandbox):
    send(mail_sandbox, subject="one")
    outbox.wait_for(subject="one")
    outbox.clear()
    assert len(outbox) == 0
    send(mail_sandbox, subject="two")
    assert [m.subject for m in outbox.wait(1)] == ["two"]


def test_mailbox(outbox, mail_sandbox):
    send(mail_sandbox, subject="for ann", to=("ann@example.test",))
    send(mail_sandbox, subject="for bob", to=("bob@example.test",))
    bob = outbox.mailbox("bob@example.test")
    assert bob.wait_for().subject == "for bob"
    assert [m.subject for m in bob] == ["for bob"]
    outbox.wait(2)
    assert len(outbox) == 2
"""
)
