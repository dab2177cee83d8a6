"""The plugin's email authentication: `msg.auth` and the `dkim_key` fixture, in a throwaway project."""

from __future__ import annotations

import pytest
from _plugin_sources import INNER_OPTIONS

from mailsandbox.pytest_plugin.auth import AuthResults

INNER = """
import smtplib

import pytest

RAW = (
    b"From: App <noreply@app.test>\\r\\nTo: ann@example.test\\r\\nSubject: Welcome\\r\\n"
    b"Date: Tue, 01 Dec 2026 10:00:00 +0000\\r\\nMessage-ID: <w1@app.test>\\r\\n\\r\\nHello Ann.\\r\\n"
)


def send(mail_sandbox, raw, mail_from="bounce@app.test"):
    to = "team@list.test" if b"team@list.test" in raw else "ann@example.test"
    with smtplib.SMTP(mail_sandbox.smtp_host, mail_sandbox.smtp_port, timeout=10) as smtp:
        smtp.sendmail(mail_from, [to], raw)


@pytest.mark.mailsandbox(records=[("app.test", "TXT", "v=spf1 ip4:127.0.0.1 -all"),
                                  ("_dmarc.app.test", "TXT", "v=DMARC1; p=reject")])
def test_signed_as_the_app_signs(outbox, mail_sandbox, dkim_key):
    key = dkim_key("app.test", "s1", bits=1024)
    assert any(r["name"] == "s1._domainkey.app.test" for r in mail_sandbox.dns.records())
    send(mail_sandbox, key.sign(RAW))
    msg = outbox.wait_for(subject="Welcome")
    assert msg.auth.dkim == "pass", msg.auth.dkim.reason
    assert msg.auth.dkim.domain == "app.test"
    assert msg.auth.spf == "pass" and "127.0.0.1" in msg.auth.spf.reason
    assert msg.auth.dmarc == "pass" and msg.auth.policy == "reject"
    assert msg.auth.arc == "none"
    assert "dkim=pass" in msg.auth.header


def test_key_is_gone_after_the_test(mail_sandbox):
    assert not any("_domainkey" in r["name"] for r in mail_sandbox.dns.records())


def test_a_changed_body_fails_with_the_reason(outbox, mail_sandbox, dkim_key):
    key = dkim_key("app.test", "s1", bits=1024)
    send(mail_sandbox, key.sign(RAW).replace(b"Hello Ann.", b"Hello Bob."))
    msg = outbox.wait_for(subject="Welcome")
    assert msg.auth.dkim == "fail"
    assert "body" in msg.auth.dkim.reason
    assert msg.auth.dmarc == "none"


@pytest.mark.mailsandbox(
    records=[("list.test", "MX", "10 gw.list.test."), ("gw.list.test", "A", "192.0.2.5"),
             ("mx.list.test", "A", "192.0.2.6")],
    hosts={"gw.list.test": {"relay_to": "mx.list.test", "rewrite_body": "--\\nfooter",
                            "arc_seal": {"domain": "list.test", "selector": "arc"}}},
)
def test_a_list_breaks_dkim_and_arc_carries_it(outbox, mail_sandbox, dkim_key):
    key = dkim_key("app.test", "s1", bits=1024)
    send(mail_sandbox, key.sign(RAW.replace(b"ann@example.test", b"team@list.test")))
    msg = outbox.wait_for(subject="Welcome")
    mail_sandbox.clock.advance(0)  # the relay's pass has run
    assert msg.auth.dkim == "pass"  # as the app sent it
    delivered = msg.auth_in("team@list.test")
    assert delivered.dkim == "fail" and "body" in delivered.dkim.reason
    assert delivered.arc == "pass", delivered.arc.reason


def test_a_failing_assertion_shows_the_reason(outbox, mail_sandbox):
    send(mail_sandbox, RAW)
    assert outbox.wait_for(subject="Welcome").auth.dkim == "pass"
"""


def test_msg_auth_and_dkim_key(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_auth=INNER)
    result = pytester.runpytest_inprocess(*INNER_OPTIONS, "-p", "no:randomly", "-vv")
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(["*AssertionError: assert 'none' (the message has no DKIM signature) == 'pass'*"])


def test_verdicts_compare_as_words_and_carry_reasons() -> None:
    auth = AuthResults({
        "SPF": {"Result": "softfail", "Domain": "a.test", "ClientIP": "192.0.2.1", "Reason": "a.test does not permit"},
        "DKIM": [
            {"Result": "fail", "Domain": "a.test", "Selector": "s1", "Reason": "body hash mismatch"},
            {"Result": "permerror", "Domain": "b.test", "Selector": "s2", "Reason": "no key for signature"},
        ],
        "DMARC": {"Result": "fail", "Policy": "quarantine", "Domain": "a.test", "Reason": "p=quarantine: ..."},
        "ARC": {"Result": "none", "Reason": ""},
        "AuthenticationResults": "mailsandbox.local; spf=softfail ...",
    })  # fmt: skip
    assert auth.spf == "softfail" and auth.spf.domain == "a.test" and auth.spf.details["ClientIP"] == "192.0.2.1"
    assert auth.dkim == "fail" and "body hash" in auth.dkim.reason and "no key" in auth.dkim.reason
    assert [str(s) for s in auth.signatures] == ["fail", "permerror"]
    assert auth.signatures[1].details["Selector"] == "s2"
    assert (auth.dmarc, auth.policy) == ("fail", "quarantine")
    assert repr(auth.arc) == "'none'"
