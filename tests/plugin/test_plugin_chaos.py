"""Chaos rules driven from a pytest test through the plugin (`mail_chaos`), and undone after it."""

from __future__ import annotations

import pytest
from _plugin_sources import INNER_OPTIONS, SEND


def test_mail_chaos_rules_apply_in_the_test_and_are_undone_after(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_chaos=SEND
        + """
import pytest


def test_a_retry_after_a_tempfail(mail_chaos, outbox, mail_sandbox):
    mail_chaos.set(["message:451 every=2", {"Stage": "rcpt", "ErrorCode": 550, "Recipient": "*@bounce.test"}])
    send(mail_sandbox, subject="first")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(mail_sandbox, subject="second")
    assert refused.value.smtp_code == 451
    send(mail_sandbox, subject="second, again")
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send(mail_sandbox, subject="gone", to=("x@bounce.test",))
    assert [m.subject for m in outbox.messages] == ["first", "second, again"]
    assert [r["Stage"] for r in mail_sandbox.chaos.state()["Rules"]] == ["message", "rcpt"]


def test_a_rate_limit(mail_chaos, outbox, mail_sandbox):
    mail_chaos.set(messages_per_minute=1)
    send(mail_sandbox, subject="one")
    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        send(mail_sandbox, subject="two")
    assert refused.value.smtp_code == 451
    mail_sandbox.clock.advance(60)  # the sandbox's injected clock: the minute is over
    send(mail_sandbox, subject="three")


def test_the_next_test_sees_no_chaos(outbox, mail_sandbox):
    state = mail_sandbox.chaos.state()
    assert state["Enabled"] and state["Rules"] == [] and state["RateLimit"] == {"Messages": 0, "Connections": 0}
    for n in range(3):
        send(mail_sandbox, subject=f"plain {n}", to=("x@bounce.test",))
    assert len(outbox.messages) == 3


def test_a_bad_rule_is_an_error_naming_it(mail_chaos):
    from mailsandbox.pytest_plugin._http import SandboxApiError

    with pytest.raises(SandboxApiError, match="Stage must be one of"):
        mail_chaos.set([{"Stage": "lunch", "ErrorCode": 451}])
"""
    )
    result = pytester.runpytest_inprocess(*INNER_OPTIONS, "-p", "no:randomly")
    result.assert_outcomes(passed=4)
