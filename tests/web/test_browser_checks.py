"""The Checks tab in headless Chromium: warnings per client family with the offending lines, shown as
text (never markup), links on demand, and the spam section without spamd."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

Send = Callable[..., None]
pytestmark = pytest.mark.browser

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
