"""SMTP AUTH that means it, and failed logins throttled on SMTP, POP3 and IMAP (real smtplib, poplib, imaplib)."""

from __future__ import annotations

import base64
import imaplib
import logging
import poplib
import smtplib
import time
from collections.abc import Callable

import pytest

from mailsandbox.app import Sandbox
from mailsandbox.throttle import LoginThrottle

Start = Callable[..., Sandbox]
MESSAGE = b"From: a@x.test\r\nTo: b@y.test\r\nSubject: hi\r\n\r\nbody\r\n"
CREDS = "alice@x.test:s3cret"


def _smtp(sb: Sandbox) -> smtplib.SMTP:
    address = sb.address("smtp")
    return smtplib.SMTP(address.host, address.port, timeout=10)


def test_smtp_auth_requires_authentication_before_mail(sandbox_factory: Start) -> None:
    sb = sandbox_factory(smtp_auth=CREDS, smtp_auth_allow_insecure=True)
    with _smtp(sb) as client:
        client.ehlo("me")
        assert client.mail("a@x.test") == (530, b"5.7.0 Authentication required")  # RFC 4954 §6
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.sendmail("a@x.test", ["b@y.test"], MESSAGE)
        assert refused.value.smtp_code == 530
        client.login("alice@x.test", "s3cret")
        assert client.sendmail("a@x.test", ["b@y.test"], MESSAGE) == {}
    assert sb.store.count() == (1, 1)


def test_smtp_auth_accept_any_keeps_unauthenticated_mail(sandbox_factory: Start) -> None:
    sb = sandbox_factory(smtp_auth=CREDS, smtp_auth_allow_insecure=True, smtp_auth_accept_any=True)
    with _smtp(sb) as client:
        client.sendmail("a@x.test", ["b@y.test"], MESSAGE)  # no AUTH at all: still taken
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("alice@x.test", "wrong")  # but a login that is tried must be right
    assert sb.store.count()[0] == 1


def test_without_smtp_auth_anything_is_accepted(sandbox_factory: Start) -> None:
    sb = sandbox_factory()
    with _smtp(sb) as client:
        client.sendmail("a@x.test", ["b@y.test"], MESSAGE)
    assert sb.store.count()[0] == 1


def _timed(fn: Callable[[], object]) -> float:
    start = time.monotonic()
    fn()
    return time.monotonic() - start


DELAY = 0.3


def _throttled(sandbox_factory: Start) -> Sandbox:
    return sandbox_factory(
        smtp_auth=CREDS, smtp_auth_allow_insecure=True, auth_failure_limit=3, auth_failure_delay=DELAY
    )


def _expect_block_lifted(sb: Sandbox, connect: Callable[[], object]) -> None:
    sb.clock.advance(sb.throttle.forget_after)  # the injected clock: no ten-minute wait
    connect()


def test_smtp_failed_logins_slow_down_then_disconnect(sandbox_factory: Start, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="mailsandbox.auth")
    sb = _throttled(sandbox_factory)
    client = _smtp(sb)
    client.ehlo("me")

    client.user, client.password = "alice@x.test", "guess"

    def guess() -> None:  # one attempt each (login() would try every mechanism in turn)
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.auth("PLAIN", client.auth_plain)

    assert _timed(guess) < DELAY  # a typo is answered at once
    assert _timed(guess) >= DELAY  # the second waits
    assert client.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0alice@x.test\0guess").decode()) == (
        535,
        b"5.7.8 Authentication credentials invalid",
    )
    assert client.getreply() == (421, b"4.7.0 Too many failed logins, try again later")
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.noop()
    client.close()
    # from now on this address is refused at connect, even with the right password
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        _smtp(sb)
    assert refused.value.smtp_code == 421
    for _ in range(3):
        with pytest.raises(smtplib.SMTPConnectError):
            _smtp(sb)
    lines = [r for r in caplog.records if "failed logins from 127.0.0.1" in r.getMessage()]
    assert len(lines) == 1 and not lines[0].exc_info  # logged once, not per attempt

    def works() -> None:
        with _smtp(sb) as again:
            again.login("alice@x.test", "s3cret")

    _expect_block_lifted(sb, works)


def test_pop3_failed_logins_slow_down_then_disconnect(sandbox_factory: Start) -> None:
    sb = _throttled(sandbox_factory)
    address = sb.address("pop3")
    client = poplib.POP3(address.host, address.port, timeout=10)

    def guess() -> None:
        client.user("alice@x.test")
        with pytest.raises(poplib.error_proto) as failed:
            client.pass_("guess")
        assert b"[AUTH]" in failed.value.args[0]

    assert _timed(guess) < DELAY
    assert _timed(guess) >= DELAY
    client.user("alice@x.test")
    with pytest.raises(poplib.error_proto) as cut:
        client.pass_("guess")
    assert cut.value.args[0].startswith(b"-ERR [AUTH]")
    assert client._getline()[0].startswith(b"-ERR [SYS/TEMP] too many failed logins")  # type: ignore[attr-defined]
    with pytest.raises((poplib.error_proto, OSError)):
        client.noop()  # and the connection is gone
    with pytest.raises(poplib.error_proto) as refused:
        poplib.POP3(address.host, address.port, timeout=10)
    assert b"too many failed logins" in refused.value.args[0]

    def works() -> None:
        again = poplib.POP3(address.host, address.port, timeout=10)
        again.user("alice@x.test")
        again.pass_("s3cret")
        again.quit()

    _expect_block_lifted(sb, works)


def test_imap_failed_logins_slow_down_then_disconnect(sandbox_factory: Start) -> None:
    sb = _throttled(sandbox_factory)
    address = sb.address("imap")
    client = imaplib.IMAP4(address.host, address.port, timeout=10)

    def guess() -> None:
        with pytest.raises(imaplib.IMAP4.error):
            client.login("alice@x.test", "guess")

    assert _timed(guess) < DELAY
    assert _timed(guess) >= DELAY
    with pytest.raises((imaplib.IMAP4.abort, imaplib.IMAP4.error)):
        client.login("alice@x.test", "guess")
    with pytest.raises((imaplib.IMAP4.abort, OSError, EOFError)):
        client.noop()
    with pytest.raises((imaplib.IMAP4.abort, imaplib.IMAP4.error, OSError, EOFError)):
        imaplib.IMAP4(address.host, address.port, timeout=10)

    def works() -> None:
        again = imaplib.IMAP4(address.host, address.port, timeout=10)
        again.login("alice@x.test", "s3cret")
        again.logout()

    _expect_block_lifted(sb, works)


def _opened_early(sb: Sandbox, protocol: str) -> Callable[[], object]:
    """A connection made before any failure; returns its right-password login, to try after the cut-off."""
    address = sb.address(protocol)
    if protocol == "smtp":
        smtp = smtplib.SMTP(address.host, address.port, timeout=10)
        smtp.ehlo("me")
        return lambda: smtp.login("alice@x.test", "s3cret")
    if protocol == "pop3":
        pop = poplib.POP3(address.host, address.port, timeout=10)
        return lambda: (pop.user("alice@x.test"), pop.pass_("s3cret"))
    imap = imaplib.IMAP4(address.host, address.port, timeout=10)
    return lambda: imap.login("alice@x.test", "s3cret")


@pytest.mark.parametrize("protocol", ["smtp", "pop3", "imap"])
def test_a_connection_opened_before_the_cut_off_cannot_go_on_guessing(sandbox_factory: Start, protocol: str) -> None:
    # An attacker opens many connections first, then guesses on all at once: past the limit every
    # login must fail unchecked, the right password too, or each open connection is one more guess.
    sb = sandbox_factory(smtp_auth=CREDS, smtp_auth_allow_insecure=True, auth_failure_limit=3, auth_failure_delay=0)
    late_login = _opened_early(sb, protocol)
    address = sb.address("smtp")
    with smtplib.SMTP(address.host, address.port, timeout=10) as guesser:
        guesser.ehlo("me")
        for _ in range(3):
            with pytest.raises((smtplib.SMTPAuthenticationError, smtplib.SMTPServerDisconnected)):
                guesser.login("alice@x.test", "guess")
    assert sb.throttle.blocked("127.0.0.1")
    with pytest.raises((smtplib.SMTPException, poplib.error_proto, imaplib.IMAP4.error, OSError, EOFError)):
        late_login()


def test_one_count_per_address_across_protocols(sandbox_factory: Start) -> None:
    sb = _throttled(sandbox_factory)
    with _smtp(sb) as client:
        client.ehlo("me")
        client.user, client.password = "alice@x.test", "guess"
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.auth("PLAIN", client.auth_plain)
    address = sb.address("imap")
    with imaplib.IMAP4(address.host, address.port, timeout=10) as imap, pytest.raises(imaplib.IMAP4.error):
        imap.login("alice@x.test", "guess")
    assert sb.throttle.failures("127.0.0.1") == 2


def test_throttle_delays_grow_and_are_forgotten_on_the_clock() -> None:
    now = [1000.0]
    throttle = LoginThrottle(limit=6, delay=1.0, max_delay=4.0, forget_after=60.0, clock=lambda: now[0])
    verdicts = [throttle.failed("10.0.0.1", "SMTP") for _ in range(6)]
    assert [v.delay for v in verdicts] == [0, 1, 2, 4, 4, 4]
    assert [v.disconnect for v in verdicts] == [False] * 5 + [True]
    assert throttle.blocked("10.0.0.1") and not throttle.blocked("10.0.0.2")  # per client address
    now[0] += 59
    assert throttle.blocked("10.0.0.1")
    now[0] += 1
    assert not throttle.blocked("10.0.0.1") and throttle.failures("10.0.0.1") == 0
    off = LoginThrottle(limit=0, delay=0, clock=lambda: now[0])
    assert all(off.failed("x", "IMAP") == verdicts[0] for _ in range(100))


def test_throttle_memory_is_bounded() -> None:
    throttle = LoginThrottle(max_clients=100)
    for i in range(10_000):
        throttle.failed(f"10.0.{i // 256}.{i % 256}", "POP3")
    assert len(throttle._records) == 100


def _deliver(sb: Sandbox, *to: str) -> None:
    with _smtp(sb) as client:
        client.login("alice", "pw")
        for rcpt in to:
            client.sendmail("a@x.test", [rcpt], MESSAGE)


def test_logins_open_only_their_mailboxes_over_pop3_and_imap(sandbox_factory: Start) -> None:
    sb = sandbox_factory(smtp_auth="alice:pw,ops@x.test:pw2", smtp_auth_allow_insecure=True,
                         mailbox_access="alice=*@team.example", auth_failure_delay=0)  # fmt: skip
    _deliver(sb, "bob@team.example", "bob@team.example", "carol@other.example", "ops@x.test")
    pop3, imap = sb.address("pop3"), sb.address("imap")

    def pop3_count(user: str, password: str) -> int | None:
        client = poplib.POP3(pop3.host, pop3.port, timeout=10)
        try:
            client.user(user)
            client.pass_(password)
        except poplib.error_proto:
            return None
        count = client.stat()[0]
        client.quit()
        return count

    def imap_count(user: str, password: str) -> int | None:
        with imaplib.IMAP4(imap.host, imap.port, timeout=10) as client:
            try:  # imaplib sends the name as it is, and "*" is not an atom character (RFC 3501 §9): quote it
                client.login(f'"{user}"', password)
            except imaplib.IMAP4.error:
                return None
            return int(client.select("INBOX")[1][0] or 0)

    for count in (pop3_count, imap_count):
        assert count("bob@team.example*alice", "pw") == 2
        assert count("carol@other.example*alice", "pw") is None  # not one of alice's mailboxes
        assert count("bob@team.example*alice", "guess") is None  # a wrong password opens nothing
        assert count("ops@x.test", "pw2") == 1
        assert count("bob@team.example*ops@x.test", "pw2") is None
        assert count("bob@team.example", "anything") is None  # no account of that name
        sb.throttle.clear()  # four failures each: keep under the limit for the next protocol


def test_mailbox_access_needs_credentials(tmp_path: object) -> None:
    from mailsandbox.app import SandboxThread
    from tests.conftest import free_config

    with pytest.raises(ValueError, match="set smtp_auth"):
        SandboxThread(free_config(tmp_path, mailbox_access="alice=*@x.test")).start()  # type: ignore[arg-type]
