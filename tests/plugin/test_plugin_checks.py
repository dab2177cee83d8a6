"""msg.html_check(), msg.link_check() and msg.spam_check() in a throwaway project (pytester)."""

from __future__ import annotations

import pytest
from _plugin_sources import INNER_OPTIONS, SEND

CHECKS = (
    SEND
    + """
import pytest
from mailsandbox.pytest_plugin._http import SandboxApiError


def test_html_check(outbox, mail_sandbox):
    send(mail_sandbox, subject="News", html='<div style="display:flex">x</div><img src="a.webp">')
    check = outbox.wait_for(subject="News").html_check()
    assert "css-display-flex" in check and "image-webp" in check
    assert "css-display-flex" in check.unsupported_in("outlook")
    assert 0 < check.supported < 100
    assert check.warning("css-display-flex")["Score"]["Found"] == 1


def test_link_check_refuses_loopback_by_default(outbox, mail_sandbox):
    send(mail_sandbox, subject="Links", text="Go to http://127.0.0.1:9/here\\n")
    check = outbox.wait_for(subject="Links").link_check()
    assert check.broken == ["http://127.0.0.1:9/here"]
    assert check.status("http://127.0.0.1:9/here") == 451


def test_spam_check_needs_spamassassin(outbox, mail_sandbox):
    send(mail_sandbox, subject="Spam?")
    with pytest.raises(SandboxApiError, match="no SpamAssassin service defined"):
        outbox.wait_for(subject="Spam?").spam_check()
"""
)


def test_checks_from_test_code(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_checks=CHECKS)
    result = pytester.runpytest_inprocess(*INNER_OPTIONS)
    result.assert_outcomes(passed=3)
