"""The Checks tab in headless Chromium: warnings per client family with the offending lines, shown as
text (never markup), links on demand, and the spam section without spamd and with a real one."""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mailsandbox.config import Listen
from tests.checks.spamd import running_spamd
from tests.conftest import require_binary

Send = Callable[..., None]
pytestmark = pytest.mark.browser
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

LINE = '<div style="display:flex"><img src="x.webp" onerror="parent.pwned = 1"></div>'


def test_checks_tab(page: Any, send: Send) -> None:
    from playwright.sync_api import expect

    send(
        subject="Checked", html=f"<html><body>\n<p>Hello</p>\n{LINE}\n<a href='http://127.0.0.1:9/'>x</a></body></html>"
    )
    page.locator("#messages > li").first.click()
    expect(page.locator(".view-subject")).to_have_text("Checked")
    page.locator(".tab", has_text="Checks").click()
    html = page.locator('[data-check="html"]')
    expect(html.locator(".check-total")).to_contain_text("supported")
    outlook = html.locator('details[data-family="outlook"]')
    expect(outlook.locator("summary")).to_contain_text("Outlook")
    outlook.locator("summary").click()
    flex = outlook.locator('li[data-slug="css-display-flex"]')
    expect(flex).to_contain_text("not supported in Outlook")
    expect(flex.locator(".check-places li")).to_have_text(f"line 3: {LINE}")  # the source, as text
    assert page.locator(".checks img").count() == 0  # nothing of the mail became markup
    assert page.evaluate("window.pwned") is None
    expect(page.locator('[data-check="spam"]')).to_contain_text("no SpamAssassin service defined")
    links = page.locator('[data-check="links"]')
    links.locator("button", has_text="Check links").click()
    expect(links).to_contain_text("1 links, 1 with errors")  # loopback: refused without --allow-internal-http-requests
    expect(links.locator("tr.bad")).to_contain_text("Blocked private/reserved address")


@pytest.fixture(scope="module")
def spamd() -> Iterator[int]:
    """A real spamd on a free loopback port (skipped locally when spamassassin is absent, failed in CI)."""
    with running_spamd(require_binary("spamd")) as port:
        yield port


def test_spam_score_and_rules_from_spamd(browser: Any, spamd: int, sandbox_factory: Callable[..., Any]) -> None:
    from playwright.sync_api import expect

    sandbox = sandbox_factory(spamassassin=Listen("127.0.0.1", spamd))
    smtp, http = sandbox.address("smtp"), sandbox.address("http")
    with smtplib.SMTP(smtp.host, smtp.port) as s:
        s.sendmail("ann@example.test", ["bob@example.test"], f"Subject: Spammy\r\n\r\n{GTUBE}\r\n")
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        page.set_default_timeout(10000)
        page.goto(f"http://{http.host}:{http.port}/")
        page.locator("#messages > li").first.click()
        expect(page.locator(".view-subject")).to_have_text("Spammy", timeout=10000)
        page.locator(".tab", has_text="Checks").click()
        spam = page.locator('[data-check="spam"]')
        # spamd on a loaded two-core machine can take seconds per message.
        expect(spam.locator(".check-total")).to_contain_text(" — spam", timeout=60000)
        score = float(spam.locator(".check-total strong").inner_text().removeprefix("Score "))
        assert score >= 1000  # GTUBE alone scores 1000
        gtube = spam.locator("table.check-rules tr", has_text="GTUBE")
        expect(gtube.locator("th")).to_have_text("1000.0")
        expect(gtube.locator("td").last).not_to_be_empty()  # the rule's description from spamd
        assert spam.locator("table.check-rules tr").count() >= 2  # other rules too (no Date, no Message-ID)
    finally:
        context.close()
