"""The Authentication tab in headless Chromium: results shown as text, hostile values never as markup."""

from __future__ import annotations

import smtplib
from typing import Any

import pytest

from mailsandbox.app import Sandbox
from mailsandbox.auth.keys import generate_key

pytestmark = pytest.mark.browser

MESSAGE = (
    b"From: Shop <orders@shop.test>\r\nTo: ann@example.test\r\nSubject: Signed order\r\n"
    b"Date: Tue, 01 Dec 2026 10:00:00 +0000\r\nMessage-ID: <b1@shop.test>\r\n\r\nThanks.\r\n"
)
# A signature naming a selector that is markup: it reaches the page only inside a reason.
HOSTILE = (
    b"From: x@evil.test\r\nSubject: Hostile selector\r\nDKIM-Signature: v=1; a=rsa-sha256; d=evil.test;"
    b' s=<img src=x onerror="parent.pwned=1">; h=from; bh=AAAA; b=AAAA\r\n\r\nhi\r\n'
)


def send(sandbox: Sandbox, raw: bytes, mail_from: str) -> None:
    smtp = sandbox.address("smtp")
    with smtplib.SMTP(smtp.host, smtp.port) as s:
        s.sendmail(mail_from, ["ann@example.test"], raw)


def test_authentication_tab(browser: Any, base_url: str, running_sandbox: Sandbox) -> None:
    from playwright.sync_api import expect

    page = browser.new_page()
    page.set_default_timeout(5000)
    page.goto(base_url + "/")
    zone = running_sandbox.zone
    key = generate_key("shop.test", "s1", bits=1024)
    key.publish(zone)
    zone.add_record("shop.test", "TXT", "v=spf1 -all")
    zone.add_record("_dmarc.shop.test", "TXT", "v=DMARC1; p=quarantine")
    send(running_sandbox, key.sign(MESSAGE), "bounce@shop.test")
    send(running_sandbox, HOSTILE, "x@evil.test")
    page.locator("#messages > li", has_text="Signed order").click()
    page.locator(".tab", has_text="Authentication").click()
    table = page.locator(".auth-results")
    expect(table.locator("tbody tr")).to_have_count(4)
    expect(table.locator("tbody tr").nth(0)).to_contain_text("SPF")
    expect(table.locator("tbody tr").nth(0).locator(".tag")).to_have_text("fail")
    expect(table.locator("tbody tr").nth(1).locator(".tag")).to_have_text("pass")
    expect(table.locator("tbody tr").nth(1)).to_contain_text("d=shop.test s=s1")
    expect(table.locator("tbody tr").nth(2)).to_contain_text("p=quarantine")
    expect(page.locator(".auth-header")).to_contain_text("Authentication-Results: mailsandbox.local; spf=fail")

    page.locator("#messages > li", has_text="Hostile selector").click()  # the tab stays chosen
    expect(page.locator(".auth-results tbody tr").nth(1).locator(".tag")).to_have_text("permerror")
    expect(page.locator(".auth-results")).to_contain_text('<img src=x onerror="parent.pwned=1">')
    assert page.locator(".auth img").count() == 0
    assert page.evaluate("window.pwned") is None
    page.close()


def test_the_copy_a_mailbox_received_after_a_list(browser: Any, base_url: str, running_sandbox: Sandbox) -> None:
    import httpx
    from playwright.sync_api import expect

    zone = running_sandbox.zone
    key = generate_key("shop.test", "s1", bits=1024)
    key.publish(zone)
    for name, kind, value in (("list.test", "MX", "10 gw.list.test."), ("gw.list.test", "A", "192.0.2.5"),
                              ("mx.list.test", "A", "192.0.2.6")):  # fmt: skip
        zone.add_record(name, kind, value)
    with httpx.Client(base_url=base_url) as client:
        client.put("/api/sandbox/hosts/gw.list.test", json={
            "relay_to": "mx.list.test", "rewrite_body": "-- footer",
            "arc_seal": {"domain": "list.test", "selector": "arc"}}).raise_for_status()  # fmt: skip
        smtp = running_sandbox.address("smtp")
        with smtplib.SMTP(smtp.host, smtp.port) as s:
            s.sendmail("bounce@shop.test", ["team@list.test"], key.sign(MESSAGE))
        client.post("/api/sandbox/clock", json={"advance": 0}).raise_for_status()  # the relay's pass is over
    page = browser.new_page()
    page.set_default_timeout(5000)
    page.goto(base_url + "/")
    page.locator("#messages > li", has_text="Signed order").click()
    page.locator(".tab", has_text="Authentication").click()
    dkim = page.locator(".auth-results tbody tr").nth(1).locator(".tag")
    expect(dkim).to_have_text("pass")  # as captured
    page.select_option(".auth-copy", "team@list.test")
    expect(dkim).to_have_text("fail")
    expect(page.locator(".auth-results tbody tr").nth(3).locator(".tag")).to_have_text("pass")  # ARC
    page.close()
