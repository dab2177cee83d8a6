"""Bounces (RFC 3464 DSNs) as the sender's mail client sees them: permanent failures, strict DNS, expiry."""

from __future__ import annotations

from email.message import EmailMessage, Message

from mailsandbox.models import Envelope
from tests.relay.conftest import World, WorldFactory, parts, received

DAY = 86400.0


def _report(dsn: Message) -> tuple[Message, list[Message], Message]:
    """(the whole DSN, the per-message + per-recipient field groups, the original headers part)."""
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    human, status, headers = parts(dsn)
    assert human.get_content_type() == "text/plain"
    assert status.get_content_type() == "message/delivery-status"
    assert headers.get_content_type() == "text/rfc822-headers"
    return dsn, parts(status), headers


def test_permanent_failure_bounces_at_once_with_a_dsn(world: World) -> None:
    world.set_host("mx.single.test", {"behaviour": "permfail"})
    original = world.send(["bob@single.test"], subject="Quarterly numbers")
    world.settle()

    assert world.queue() == []
    [dsn] = world.mailbox("alice@sender.test")
    assert isinstance(dsn, EmailMessage)
    _, groups, headers = _report(dsn)
    assert "MAILER-DAEMON@mailsandbox.local" in dsn["From"]
    assert dsn["Auto-Submitted"] == "auto-replied"
    per_message, per_recipient = groups
    assert per_message["Reporting-MTA"] == "dns; mailsandbox.local"
    assert per_message["Arrival-Date"]
    assert per_recipient["Final-Recipient"] == "rfc822; bob@single.test"
    assert per_recipient["Action"] == "failed"
    assert per_recipient["Status"] == "5.1.1"
    assert per_recipient["Remote-MTA"] == "dns; mx.single.test"
    assert per_recipient["Diagnostic-Code"].startswith("smtp; 550 5.1.1")
    assert "Subject: Quarterly numbers" in headers.get_payload()

    # The DSN travelled with the null reverse path (RFC 5321 §4.5.5), as its own message.
    stored = world.sandbox.store.get(world.mailbox_ids("alice@sender.test")[0])
    assert stored is not None and stored.envelope.mail_from == ""
    assert world.trace(original)[-1]["Code"] == 550


def test_rule_fails_one_recipient_and_the_other_is_delivered(world: World) -> None:
    world.set_host("mx.single.test", {"rules": [{"recipient": "bob@*", "behaviour": "permfail",
                                                 "reply": "550 5.2.1 Mailbox disabled"}]})
    world.send(["bob@single.test", "carol@single.test"])
    world.settle()
    assert len(world.mailbox("carol@single.test")) == 1
    [dsn] = world.mailbox("alice@sender.test")
    _, groups, _ = _report(dsn)
    assert [g["Final-Recipient"] for g in groups[1:]] == ["rfc822; bob@single.test"]
    assert groups[1]["Status"] == "5.2.1"


def test_permfail_for_listed_recipients_only(world: World) -> None:
    world.set_host("mx.single.test", {"behaviour": "permfail", "recipients": ["nobody@single.test"]})
    world.send(["nobody@single.test", "bob@single.test"])
    world.settle()
    assert len(world.mailbox("bob@single.test")) == 1
    [dsn] = world.mailbox("alice@sender.test")
    _, groups, _ = _report(dsn)
    assert [g["Final-Recipient"] for g in groups[1:]] == ["rfc822; nobody@single.test"]


def test_a_bounce_never_bounces(world: World) -> None:
    world.set_host("mx.single.test", "permfail")
    # A message with the null reverse path, as a DSN arriving from elsewhere, injected through the relay.
    raw = b"From: MAILER-DAEMON@elsewhere.test\r\nTo: bob@single.test\r\nSubject: bounce\r\n\r\nx\r\n"
    envelope = Envelope(mail_from="", rcpt_tos=("bob@single.test",))
    message_id = world.thread.call(world.sandbox.relay.submit(raw, envelope)).id
    world.settle()
    assert world.trace(message_id)[0]["Code"] == 550
    assert world.queue() == []
    listing = world.ok("GET", "/api/v1/messages")
    assert listing["total"] == 1  # only the original: no DSN was generated


def test_unknown_domain_in_strict_mode_bounces(world_factory: WorldFactory) -> None:
    world = world_factory(dns_strict=True)
    message_id = world.send(["someone@nowhere.invalid"])
    world.settle()
    [hop] = world.trace(message_id)
    assert hop["Code"] == 550 and "5.1.2" in hop["Reply"] and "NXDOMAIN" in hop["Dialogue"][0]
    [dsn] = world.mailbox("alice@sender.test")  # sender.test's MX is the sandbox itself
    _, groups, _ = _report(dsn)
    assert groups[1]["Status"] == "5.1.2"
    assert groups[1]["Remote-MTA"] is None  # decided by DNS: no remote host was involved


def test_null_mx_bounces_at_once(world: World) -> None:
    message_id = world.send(["someone@null.test"])
    world.settle()
    [hop] = world.trace(message_id)
    assert hop["Reply"].startswith("556 5.1.10")  # RFC 7505 §3
    [dsn] = world.mailbox("alice@sender.test")
    assert _report(dsn)[1][1]["Status"] == "5.1.10"


def test_delay_warning_once_then_give_up(world: World) -> None:
    world.set_host("mx.single.test", {"behaviour": "tempfail", "reply": "451 4.4.2 Connection dropped"})
    message_id = world.send(["bob@single.test"], subject="Slow going")
    world.settle()
    assert world.mailbox("alice@sender.test") == []

    world.advance(4 * 3600)  # past warn_after: the next attempt also warns
    [warning] = world.mailbox("alice@sender.test")
    _, groups, _ = _report(warning)
    assert groups[1]["Action"] == "delayed" and groups[1]["Status"] == "4.4.2"
    assert groups[1]["Will-Retry-Until"]
    assert "delayed" in warning["Subject"] and "Slow going" in warning["Subject"]
    [item] = world.queue()
    assert item["Warned"] is True

    world.advance(3600)
    world.next_retry()
    assert len(world.mailbox("alice@sender.test")) == 1  # warned once only

    world.advance(5 * DAY)
    assert world.queue() == []
    warning, bounce = world.mailbox("alice@sender.test")
    _, groups, _ = _report(bounce)
    assert groups[1]["Action"] == "failed"
    assert groups[1]["Status"] == "4.4.7"  # RFC 3463: delivery time expired
    assert groups[1]["Diagnostic-Code"] == "smtp; 451 4.4.2 Connection dropped"
    assert world.trace(message_id)[-1]["Code"] == 451


def test_bounce_to_a_remote_sender_travels_through_the_relay(world: World) -> None:
    world.set_host("mx.single.test", "permfail")
    world.send(["bob@single.test"], sender="alice@example.test")  # example.test is not ours
    world.settle()
    [dsn] = world.mailbox("alice@example.test")  # delivered through mx1.example.test
    assert dsn.get_content_type() == "multipart/report"
    assert "by mx1.example.test" in received(dsn)[0]
