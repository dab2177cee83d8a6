"""SMTP capture over real sockets with smtplib: the dialogue, limits, TLS, AUTH and commit before 250."""

from __future__ import annotations

import smtplib
import socket
import ssl
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

from mailsandbox.app import Sandbox


def smtp(sb: Sandbox) -> smtplib.SMTP:
    addr = sb.address("smtp")
    return smtplib.SMTP(addr.host, addr.port, timeout=10)


def api(sb: Sandbox, path: str) -> Any:
    addr = sb.address("http")
    response = httpx.get(f"http://{addr.host}:{addr.port}{path}", timeout=10)
    response.raise_for_status()
    return response.json()


def client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def message(subject: str = "Hello", to: str = "bob@example.test", body: str = "Hi Bob\n") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Ann <ann@example.test>"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(body)
    return msg


def test_plain_send_is_stored_with_envelope_and_received_line(running_sandbox: Sandbox) -> None:
    with smtp(running_sandbox) as client:
        client.ehlo("client.example")
        client.send_message(message())
    listing = api(running_sandbox, "/api/v1/messages")
    assert listing["total"] == 1 and listing["unread"] == 1
    summary = listing["messages"][0]
    assert summary["Subject"] == "Hello"
    assert summary["From"] == {"Name": "Ann", "Address": "ann@example.test"}
    assert summary["To"] == [{"Name": "", "Address": "bob@example.test"}]
    full = api(running_sandbox, f"/api/v1/message/{summary['ID']}")
    assert full["Envelope"]["MailFrom"] == "ann@example.test"
    assert full["Envelope"]["RcptTo"] == ["bob@example.test"]
    assert full["Envelope"]["Helo"] == "client.example"
    assert full["Envelope"]["TLS"] is False
    raw = httpx.get(f"http://{running_sandbox.address('http')}/api/v1/message/{summary['ID']}/raw").content
    assert raw.startswith(b"Received: from client.example (127.0.0.1 [127.0.0.1])")
    assert b"by mailsandbox.local (Mailsandbox) with ESMTP id" in raw
    assert raw.endswith(b"Hi Bob\r\n")


def test_received_says_smtp_after_helo_and_dates_utc_as_plus_0000(running_sandbox: Sandbox) -> None:
    # RFC 3848: "with SMTP" after HELO, "ESMTP" after EHLO; RFC 5322 §3.3: UTC is "+0000" ("-0000" = unknown).
    for greeting in ("helo", "ehlo"):
        with smtp(running_sandbox) as client:
            getattr(client, greeting)("client.example")
            client.send_message(message(subject=greeting))
    for summary in api(running_sandbox, "/api/v1/messages")["messages"]:
        headers = api(running_sandbox, f"/api/v1/message/{summary['ID']}/headers")
        [received] = headers["Received"]
        protocol = "SMTP" if summary["Subject"] == "helo" else "ESMTP"
        assert f"(Mailsandbox) with {protocol} id " in received
        assert received.endswith(" +0000"), received


def test_ehlo_advertises_extensions(running_sandbox: Sandbox) -> None:
    with smtp(running_sandbox) as client:
        code, _ = client.ehlo("me")
        assert code == 250
        for ext in ("pipelining", "8bitmime", "smtputf8", "size", "starttls"):
            assert client.has_extn(ext), ext
        assert int(client.esmtp_features["size"]) == running_sandbox.config.max_message_size
        # AUTH is offered only over TLS by default.
        assert not client.has_extn("auth")


def test_bcc_recipient_is_in_envelope_and_gets_its_mailbox(running_sandbox: Sandbox) -> None:
    msg = message(to="to@example.test")
    msg["Cc"] = "cc@example.test"
    with smtp(running_sandbox) as client:
        client.send_message(msg, to_addrs=["to@example.test", "cc@example.test", "Hidden@Example.TEST"])
    [summary] = api(running_sandbox, "/api/v1/messages")["messages"]
    full = api(running_sandbox, f"/api/v1/message/{summary['ID']}")
    assert "Hidden@Example.TEST" in full["Envelope"]["RcptTo"]
    assert b"hidden" not in httpx.get(f"http://{running_sandbox.address('http')}/api/v1/message/"
                                      f"{summary['ID']}/raw").content.lower().split(b"\r\n\r\n")[0][200:]
    boxes = {b["Mailbox"]: b for b in api(running_sandbox, "/api/sandbox/mailboxes")}
    # Mailbox names compare case-insensitively.
    assert set(boxes) == {"to@example.test", "cc@example.test", "hidden@example.test"}
    hidden = api(running_sandbox, "/api/v1/messages?mailbox=HIDDEN@example.test")
    assert [m["ID"] for m in hidden["messages"]] == [summary["ID"]]


def test_size_limit_rejects_with_552_and_stores_nothing(sandbox_factory: Any) -> None:
    sb = sandbox_factory(max_message_size=2000)
    with smtp(sb) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as declared:
            client.sendmail("a@example.test", ["b@example.test"], b"x" * 5000, mail_options=["SIZE=5000"])
        assert declared.value.smtp_code == 552
        client.rset()
    # Without a SIZE declaration (smtplib always sends one) the limit is enforced on the data itself,
    # and the session keeps serving.
    big = b"Subject: big\r\n\r\n" + (b"y" * 70 + b"\r\n") * 70 + b".\r\n"
    replies = raw_session(sb, [
        b"EHLO raw\r\n", b"MAIL FROM:<a@example.test>\r\n", b"RCPT TO:<b@example.test>\r\n", b"DATA\r\n", big,
        b"MAIL FROM:<a@example.test>\r\n", b"RCPT TO:<b@example.test>\r\n", b"DATA\r\n",
        b"Subject: small\r\n\r\nok\r\n.\r\n", b"QUIT\r\n",
    ])  # fmt: skip
    assert [r[:3] for r in replies[4:]] == [b"354", b"552", b"250", b"250", b"354", b"250", b"221"]
    assert [m["Subject"] for m in api(sb, "/api/v1/messages")["messages"]] == ["small"]


def test_utf8_headers_addresses_and_8bit_body(running_sandbox: Sandbox) -> None:
    msg = EmailMessage()
    msg["From"] = "Jörg <jörg@exämple.test>"
    msg["To"] = "Zoë <zoë@exämple.test>"
    msg["Subject"] = "Grüße aus Köln ✉"
    msg.set_content("Schöne Grüße\n", cte="8bit")
    with smtp(running_sandbox) as client:
        client.send_message(msg, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    [summary] = api(running_sandbox, "/api/v1/messages")["messages"]
    assert summary["Subject"] == "Grüße aus Köln ✉"
    assert summary["To"][0]["Address"] == "zoë@exämple.test"
    full = api(running_sandbox, f"/api/v1/message/{summary['ID']}")
    assert full["Envelope"]["SMTPUTF8"] is True and full["Envelope"]["Body8Bit"] is True
    assert full["Text"] == "Schöne Grüße\n"


def test_rfc2047_subject_is_decoded(running_sandbox: Sandbox) -> None:
    raw = b"From: a@example.test\r\nTo: b@example.test\r\nSubject: =?utf-8?b?SGFsbMO2IFdlbHQ=?=\r\n\r\nx\r\n"
    with smtp(running_sandbox) as client:
        client.sendmail("a@example.test", ["b@example.test"], raw)
    assert api(running_sandbox, "/api/v1/messages")["messages"][0]["Subject"] == "Hallö Welt"


def raw_session(sb: Sandbox, lines: list[bytes]) -> list[bytes]:
    """Speak SMTP byte by byte: send each line, read one reply (multi-line replies joined)."""
    addr = sb.address("smtp")
    replies = []
    with socket.create_connection((addr.host, addr.port), timeout=10) as sock:
        reader = sock.makefile("rb")

        def reply() -> bytes:
            out = b""
            while True:
                line = reader.readline()
                out += line
                if len(line) < 4 or line[3:4] != b"-":
                    return out

        replies.append(reply())  # greeting
        for line in lines:
            sock.sendall(line)
            if line.endswith(b"\r\n") and not line.startswith(b"X-NOREPLY"):
                replies.append(reply())
    return replies


def test_leading_dot_and_bare_lf_kept_exactly(running_sandbox: Sandbox) -> None:
    body = b"Subject: dots\r\n\r\n..starts with a dot\r\nbare\nLF line\r\n.\r\n"
    replies = raw_session(running_sandbox, [
        b"EHLO raw\r\n", b"MAIL FROM:<a@example.test>\r\n", b"RCPT TO:<b@example.test>\r\n", b"DATA\r\n",
        body, b"QUIT\r\n",
    ])  # fmt: skip
    assert replies[4].startswith(b"354")
    assert replies[5].startswith(b"250 2.0.0 Ok: queued as ")
    mid = replies[5].split()[-1].decode()
    raw = httpx.get(f"http://{running_sandbox.address('http')}/api/v1/message/{mid}/raw").content
    assert raw.endswith(b"Subject: dots\r\n\r\n.starts with a dot\r\nbare\nLF line\r\n")


def test_bad_sequences_and_syntax_get_codes_and_session_continues(running_sandbox: Sandbox) -> None:
    replies = raw_session(running_sandbox, [
        b"EHLO raw\r\n",
        b"RCPT TO:<b@example.test>\r\n",        # before MAIL
        b"DATA\r\n",                            # before RCPT
        b"MAIL FROM:bad address\r\n",           # syntax
        b"FROBNICATE\r\n",                      # unknown
        b"MAIL FROM:<a@example.test>\r\n",
        b"MAIL FROM:<a@example.test>\r\n",      # nested MAIL
        b"RCPT TO:<nobody>\r\n",                # no domain
        b"RSET\r\n",
        b"NOOP\r\n",
        b"MAIL FROM:<a@example.test>\r\n",
        b"RCPT TO:<b@example.test>\r\n",
        b"DATA\r\n",
        b"Subject: after errors\r\n\r\nstill fine\r\n.\r\n",
        b"QUIT\r\n",
    ])  # fmt: skip
    codes = [r[:3] for r in replies]
    assert codes == [b"220", b"250", b"503", b"503", b"501", b"500", b"250", b"503", b"501", b"250", b"250",
                     b"250", b"250", b"354", b"250", b"221"]  # fmt: skip
    assert api(running_sandbox, "/api/v1/messages")["messages"][0]["Subject"] == "after errors"


def test_starttls_and_auth_any_credentials_recorded(running_sandbox: Sandbox) -> None:
    with smtp(running_sandbox) as client:
        client.starttls(context=client_context())
        client.ehlo("tls.client")
        assert client.has_extn("auth")
        client.login("app-user", "whatever")
        client.send_message(message(subject="over tls"))
    [summary] = api(running_sandbox, "/api/v1/messages")["messages"]
    assert summary["Username"] == "app-user"
    full = api(running_sandbox, f"/api/v1/message/{summary['ID']}")
    assert full["Envelope"]["TLS"] is True and full["Envelope"]["Auth"] == "app-user"
    raw = httpx.get(f"http://{running_sandbox.address('http')}/api/v1/message/{summary['ID']}/raw").content
    assert b"with ESMTPSA id" in raw


def test_implicit_tls_port(sandbox_factory: Any) -> None:
    sb = sandbox_factory(smtp_tls_port="127.0.0.1:0")
    addr = sb.address("smtp_tls")
    with smtplib.SMTP_SSL(addr.host, addr.port, context=client_context(), timeout=10) as client:
        client.ehlo("implicit")
        assert not client.has_extn("starttls")
        client.login("u", "p")
        client.send_message(message(subject="implicit tls"))
    [summary] = api(sb, "/api/v1/messages")["messages"]
    assert api(sb, f"/api/v1/message/{summary['ID']}")["Envelope"]["TLS"] is True


def test_configured_credentials_demand_real_login(sandbox_factory: Any) -> None:
    sb = sandbox_factory(smtp_auth="alice:s3cret", smtp_auth_allow_insecure=True)
    with smtp(sb) as client:
        client.ehlo("x")
        assert client.has_extn("auth")
        with pytest.raises(smtplib.SMTPAuthenticationError) as failed:
            client.login("alice", "wrong")
        assert failed.value.smtp_code == 535
        client.login("alice", "s3cret")
        client.send_message(message())
    assert api(sb, "/api/v1/messages")["messages"][0]["Username"] == "alice"


def test_auth_login_mechanism(sandbox_factory: Any) -> None:
    sb = sandbox_factory(smtp_auth_allow_insecure=True)
    with smtp(sb) as client:
        client.ehlo("x")
        client.user, client.password = "login-user", "pw"
        code, _ = client.auth("LOGIN", client.auth_login, initial_response_ok=False)
        assert code == 235
        client.send_message(message())
    assert api(sb, "/api/v1/messages")["messages"][0]["Username"] == "login-user"


def test_require_tls_refuses_mail_before_starttls(sandbox_factory: Any) -> None:
    sb = sandbox_factory(require_tls=True)
    with smtp(sb) as client:
        client.ehlo("x")
        code, _ = client.mail("a@example.test")
        assert code == 530
        client.starttls(context=client_context())
        client.ehlo("x")
        client.send_message(message())
    assert api(sb, "/api/v1/messages")["total"] == 1


def test_many_recipients_and_pipelined_transactions(running_sandbox: Sandbox) -> None:
    recipients = [f"user{i}@example.test" for i in range(25)]
    with smtp(running_sandbox) as client:
        for i in range(5):
            client.sendmail("a@example.test", recipients, f"Subject: n{i}\r\n\r\nbody\r\n".encode())
    assert api(running_sandbox, "/api/v1/messages")["total"] == 5
    assert len(api(running_sandbox, "/api/sandbox/mailboxes")) == 25


def test_expn_and_vrfy_reveal_nothing(running_sandbox: Sandbox) -> None:
    replies = raw_session(running_sandbox, [b"EHLO raw\r\n", b"EXPN staff\r\n", b"VRFY bob\r\n", b"QUIT\r\n"])
    assert [r[:9] for r in replies[2:]] == [b"502 5.5.1", b"252 2.5.0", b"221 2.0.0"]
