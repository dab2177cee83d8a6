"""The Chaos panel in headless Chromium: hidden without chaos; with it, set a rule and a trigger that real
SMTP then meets, see a bad rule refused with its reason (as text), and turn it all off."""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from mailsandbox.app import Sandbox
from tests.web.test_browser_relay import close_page, open_page

pytestmark = pytest.mark.browser


def _url(sb: Sandbox) -> str:
    http = sb.address("http")
    return f"http://{http.host}:{http.port}"


def test_panel_is_hidden_without_chaos(browser: Any, sandbox_factory: Callable[..., Sandbox]) -> None:
    from playwright.sync_api import expect

    page = open_page(browser, _url(sandbox_factory()))
    expect(page.locator("#chaos-section")).to_be_hidden()
    close_page(page)


def test_set_rules_and_triggers_from_the_panel(browser: Any, sandbox_factory: Callable[..., Sandbox]) -> None:
    from playwright.sync_api import expect

    sb = sandbox_factory(chaos_rules=("message:451 every=3",))
    page = open_page(browser, _url(sb))
    expect(page.locator("#chaos-count")).to_have_text("1")
    page.click("#chaos-button")
    rules = page.locator("#chaos-rules")
    expect(rules).to_have_value("message:451 every=3")
    rules.fill('rcpt:550 to=*@bounce.test\n{"Stage": "mail", "ErrorCode": 553, "Text": "<b>no</b>"}')
    page.fill('input[name="Recipient-p"]', "0")
    page.fill('input[name="Authentication-code"]', "454")
    page.click("#chaos-save")
    expect(page.locator("#chaos-status")).to_have_text("Saved.")
    state = httpx.get(_url(sb) + "/api/sandbox/chaos", timeout=10).json()
    assert [r["Stage"] for r in state["Rules"]] == ["rcpt", "mail"]
    assert state["Triggers"]["Authentication"]["ErrorCode"] == 454
    smtp = sb.address("smtp")
    with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as client:
        client.ehlo("me")
        assert client.mail("a@x.test") == (553, b"5.0.0 <b>no</b>")

    rules.fill("lunch:451")  # refused with the API's reason, shown as text; nothing changes
    page.click("#chaos-save")
    expect(page.locator("#chaos-status")).to_contain_text("Stage must be one of")
    assert page.locator("#chaos-dialog b").count() == 0
    assert len(httpx.get(_url(sb) + "/api/sandbox/chaos", timeout=10).json()["Rules"]) == 2

    page.click("#chaos-off")
    expect(page.locator("#chaos-status")).to_have_text("Chaos is off.")
    expect(rules).to_have_value("")
    expect(page.locator("#chaos-count")).to_have_text("")
    close_page(page)
