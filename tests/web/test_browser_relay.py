"""The relay in the UI: the Delivery timeline and the Queue view, in headless Chromium (Playwright)."""

from __future__ import annotations

import re
import smtplib
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailsandbox.app import Sandbox

pytestmark = pytest.mark.browser

ZONE = Path(__file__).parents[1] / "data" / "example.zone"  # example.test: MX 10 mx1, MX 20 mx2
MX1, MX2 = "mx1.example.test", "mx2.example.test"
RCPT = "someone@example.test"


class Relayed:
    """A sandbox with the example zone and the relay on, an API client and an SMTP sender."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        http = sandbox.address("http")
        self.url = f"http://{http.host}:{http.port}"
        self.api = httpx.Client(base_url=self.url, timeout=10)

    def hosts(self, **behaviours: str) -> None:
        """hosts(mx1="down", mx2="accept"): set simulated MTA behaviours of example.test's MX hosts."""
        for short, behaviour in behaviours.items():
            response = self.api.put(f"/api/sandbox/hosts/{short}.example.test", json={"behaviour": behaviour})
            assert response.status_code == 200, response.text

    def send(self, subject: str, to: tuple[str, ...] = (RCPT,)) -> str:
        """Sends over SMTP; returns the message ID from the 250 reply."""
        msg = EmailMessage()
        msg["From"] = "Alice <alice@sender.test>"
        msg["To"] = ", ".join(to)
        msg["Subject"] = subject
        msg.set_content("Hi.\n")
        smtp = self.sandbox.address("smtp")
        with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as client:
            client.ehlo("client.sender.test")
            client.mail("alice@sender.test")
            for rcpt in to:
                assert client.rcpt(rcpt)[0] == 250
            code, reply = client.data(msg.as_bytes())
        assert code == 250, reply
        return reply.decode().rsplit(" ", 1)[-1]


@pytest.fixture
def relayed(sandbox_factory: Callable[..., Sandbox]) -> Iterator[Relayed]:
    world = Relayed(sandbox_factory(zones=(ZONE,)))
    yield world
    world.api.close()


def open_page(browser: Any, url: str, **context: Any) -> Any:
    from playwright.sync_api import expect

    expect.set_options(timeout=5000)
    ctx = browser.new_context(**(context or {"viewport": {"width": 1280, "height": 800}}))
    page = ctx.new_page()
    page.set_default_timeout(5000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url + "/")
    expect(page.locator("#live")).to_have_text("live")  # the event stream is connected
    page.evaluate("window.sameDocument = true")  # gone if anything reloads the page
    page.script_errors = errors
    return page


def close_page(page: Any) -> None:
    """The page never reloaded and no script of ours threw."""
    assert page.evaluate("window.sameDocument") is True
    assert page.script_errors == []
    page.context.close()


@pytest.fixture
def page(browser: Any, relayed: Relayed) -> Iterator[Any]:
    pg = open_page(browser, relayed.url)
    yield pg
    close_page(pg)


def recipient(page: Any, address: str) -> Any:
    return page.locator(f'.rcpt[data-recipient="{address}"]')


def steps(page: Any, address: str) -> Any:
    return recipient(page, address).locator(".step:not(.pending)")


def test_failover_shows_both_mx_hosts_in_order(page: Any, relayed: Relayed) -> None:
    from playwright.sync_api import expect

    relayed.hosts(mx1="down", mx2="accept")
    relayed.send("Failover", to=(RCPT, "local@elsewhere.test"))
    page.locator("#messages > li", has_text="Failover").click()
    page.locator(".tab", has_text="Delivery").click()

    hops = steps(page, RCPT)
    expect(hops.locator(".step-host")).to_have_text([MX1, MX2])  # by MX preference
    expect(hops.locator(".pref")).to_have_text(["MX 10", "MX 20"])
    expect(hops.locator(".step-status")).to_have_text(["no connection", "delivered"])
    expect(hops.nth(0)).to_have_class(re.compile(r"\bwarn\b"))
    expect(hops.nth(1)).to_have_class(re.compile(r"\bok\b"))
    expect(hops.nth(0).locator(".reply-text")).to_contain_text("Connection refused")
    expect(hops.nth(1).locator(".code")).to_have_text("250")
    expect(hops.locator(".step-time").first).to_contain_text("+0 s")
    expect(recipient(page, RCPT).locator(".rcpt-state")).to_have_text("delivered")
    expect(recipient(page, RCPT).locator(".try-mark")).to_have_count(0)  # one try, no retry marks

    hops.nth(1).locator("summary").click()  # the simulated SMTP dialogue unfolds
    dialogue = hops.nth(1).locator(".dialogue-body")
    expect(dialogue).to_contain_text(f"C: RCPT TO:<{RCPT}>")
    expect(dialogue).to_contain_text("S: 250 2.0.0 Ok: queued as")

    # the catch-all recipient: one synthesized local hop, shown plainly
    local = recipient(page, "local@elsewhere.test")
    expect(local.locator(".rcpt-state")).to_have_text("delivered locally")
    expect(local.locator(".local-hop .step-host")).to_have_text("mailsandbox.local")
    expect(local.locator(".timeline")).to_have_count(0)
    expect(page.locator(".delivery-summary")).to_have_text("2 recipients: 1 delivered · 1 delivered locally")


def test_tempfail_waits_in_the_queue_then_skipping_the_clock_delivers(page: Any, relayed: Relayed) -> None:
    from playwright.sync_api import expect

    relayed.hosts(mx1="tempfail", mx2="tempfail")
    relayed.send("<b>Quarterly</b> report")
    expect(page.locator("#queue-count")).to_have_text("1")
    page.locator("#queue-button").click()
    expect(page.locator("#list-pane")).to_be_hidden()
    row = page.locator("#queue > li")
    expect(row).to_have_count(1)
    expect(row.locator(".q-rcpt")).to_have_text(RCPT)
    expect(row.locator(".q-subject")).to_have_text("<b>Quarterly</b> report")  # text, never markup
    expect(row.locator(".q-attempts")).to_have_text("1 attempt")
    expect(row.locator(".q-error")).to_have_text("451 4.3.0 Temporary local problem, please try again later")
    expect(row.locator(".q-next")).to_have_text(re.compile(r"^in (29|30) min · "))

    row.click()  # opens the message on its Delivery tab
    expect(page.locator(".tab.active")).to_have_text("Delivery")
    expect(steps(page, RCPT).locator(".step-status")).to_have_text(["deferred", "deferred"])
    pending = recipient(page, RCPT).locator(".step.pending")
    expect(pending).to_contain_text("attempt 2")
    expect(recipient(page, RCPT).locator(".rcpt-state")).to_have_text("deferred")

    relayed.hosts(mx1="accept")
    page.get_by_role("button", name="Skip to next retry").click()
    expect(row).to_have_count(0)
    expect(page.locator("#queue-empty")).to_be_visible()
    expect(page.locator("#queue-count")).to_have_text("")
    expect(page.locator("#queue-clock .tag")).to_have_text(re.compile(r"^\+(29|30) min$"))  # time skipped
    hops = steps(page, RCPT)
    expect(hops.locator(".step-host")).to_have_text([MX1, MX2, MX1])
    expect(hops.locator(".step-status")).to_have_text(["deferred", "deferred", "delivered"])
    expect(hops.nth(2).locator(".step-time")).to_contain_text(re.compile(r"^\+30 min · "))
    marks = recipient(page, RCPT).locator(".try-mark")
    expect(marks).to_have_text(["First try · +0 s", "Retry 1 · +30 min"])
    expect(pending).to_have_count(0)
    expect(recipient(page, RCPT).locator(".rcpt-state")).to_have_text("delivered")
    expect(recipient(page, RCPT).locator(".tally")).to_have_text("2 tries over 30 min")


def test_retry_now_drop_and_keyboard_in_the_queue(page: Any, relayed: Relayed) -> None:
    from playwright.sync_api import expect

    relayed.hosts(mx1="down", mx2="tempfail")
    relayed.send("First deferred")
    relayed.send("Second deferred", to=("other@example.test",))
    page.locator("#queue-button").click()
    rows = page.locator("#queue > li")
    expect(rows).to_have_count(2)
    first = rows.filter(has_text="First deferred")
    first.get_by_role("button", name="Retry now").click()
    expect(first.locator(".q-attempts")).to_have_text("2 attempts")
    expect(page.locator("#toast")).to_contain_text(f"{RCPT}: deferred again")

    page.locator("#queue").focus()
    page.keyboard.press("j")  # the first queued message opens on its Delivery tab
    expect(page.locator(".view-subject")).to_have_text(re.compile("deferred$"))
    expect(page.locator(".tab.active")).to_have_text("Delivery")
    page.keyboard.press("Escape")
    expect(page.locator("#view-empty")).to_be_visible()

    second = rows.filter(has_text="Second deferred")
    second.click()
    expect(page.locator(".view-subject")).to_have_text("Second deferred")
    second.get_by_role("button", name="Drop").click()
    expect(rows).to_have_count(1)
    expect(page.locator("#queue-count")).to_have_text("1")
    other = recipient(page, "other@example.test")
    expect(other.locator(".rcpt-state")).to_have_text("dropped")
    expect(other.locator(".step").last.locator(".step-status")).to_have_text("dropped")

    # the timeline's own buttons act on the queue as well
    first.click()
    expect(page.locator(".view-subject")).to_have_text("First deferred")
    recipient(page, RCPT).get_by_role("button", name="Drop").click()
    expect(rows).to_have_count(0)
    expect(recipient(page, RCPT).locator(".rcpt-state")).to_have_text("dropped")
    # back to the mail: the list comes back and the queue entry is no longer the active one
    page.locator("#all-mail").click()
    expect(page.locator("#list-pane")).to_be_visible()
    expect(page.locator("#queue-button")).not_to_have_class(re.compile(r"\bactive\b"))


def test_queue_on_a_phone(browser: Any, relayed: Relayed) -> None:
    from playwright.sync_api import expect

    relayed.hosts(mx1="tempfail", mx2="tempfail")
    relayed.send("On the go")
    page = open_page(browser, relayed.url, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page.locator("#menu-button").click()
    expect(page.locator("#queue-count")).to_have_text("1")
    page.locator("#queue-button").click()
    expect(page.locator("#sidebar")).not_to_be_in_viewport()
    row = page.locator("#queue > li")
    expect(row.get_by_role("button", name="Retry now")).to_be_in_viewport()
    expect(page.get_by_role("button", name="Skip to next retry")).to_be_in_viewport()
    row.click()
    expect(page.locator("#queue-pane")).to_be_hidden()  # one pane at a time
    expect(steps(page, RCPT)).to_have_count(2)
    page.get_by_label("Back to the list").click()
    expect(page.locator("#queue-pane")).to_be_visible()
    close_page(page)


def test_relay_off_hides_the_queue_and_the_delivery_tab(browser: Any, sandbox_factory: Callable[..., Sandbox]) -> None:
    from playwright.sync_api import expect

    relayed = Relayed(sandbox_factory(relay=False))
    relayed.send("No relay", to=("ann@example.test",))
    page = open_page(browser, relayed.url)
    page.locator("#messages > li", has_text="No relay").click()
    expect(page.locator(".view-subject")).to_have_text("No relay")
    expect(page.locator(".tab", has_text="Envelope")).to_be_visible()
    expect(page.locator(".tab", has_text="Delivery")).to_be_hidden()
    expect(page.locator("#queue-section")).to_be_hidden()
    close_page(page)
    relayed.api.close()
