"""Tags in the UI (headless Chromium): chips in the list, the sidebar's tag filter, editing a message's tags,
and names that are markup shown as text."""

from __future__ import annotations

import smtplib
from typing import Any

import httpx
import pytest

from mailsandbox.app import Sandbox

pytestmark = pytest.mark.browser



def _send(sandbox: Sandbox, subject: str, x_tags: str = "", to: str = "ann@example.test") -> None:
    smtp = sandbox.address("smtp")
    tags = f"X-Tags: {x_tags}\r\n" if x_tags else ""
    with smtplib.SMTP(smtp.host, smtp.port) as s:
        s.sendmail("bob@example.test", [to], f"Subject: {subject}\r\nTo: {to}\r\n{tags}\r\nhi\r\n".encode())


def test_tag_chips_filter_and_editing(page: Any, running_sandbox: Sandbox, client: httpx.Client) -> None:
    from playwright.sync_api import expect

    _send(running_sandbox, "Invoice", "billing, Urgent")
    _send(running_sandbox, "Plain")
    _send(running_sandbox, "Order", to="ann+orders@example.test")
    rows = page.locator("#messages > li")
    expect(rows).to_have_count(3)
    expect(rows.filter(has_text="Invoice").locator(".tag")).to_have_text(["billing", "Urgent"])
    expect(rows.filter(has_text="Plain").locator(".tag")).to_have_count(0)
    expect(rows.filter(has_text="Order").locator(".tag")).to_have_text(["orders"])  # live, from the "new" frame
    expect(page.locator("#tags .tag-filter")).to_have_text(["billing", "orders", "Urgent"])

    page.locator("#tags .tag-filter", has_text="Urgent").click()  # the sidebar's filter
    expect(page.locator("#search")).to_have_value("tag:Urgent")
    expect(page.locator("#messages .subject")).to_have_text(["Invoice"])
    expect(page.locator("#tags .tag-filter.active")).to_have_text("Urgent")
    page.fill("#search", "")
    page.keyboard.press("Enter")
    expect(rows).to_have_count(3)
    rows.filter(has_text="Order").locator(".tag").click()  # a chip searches too, without opening the message
    expect(page.locator("#search")).to_have_value("tag:orders")
    expect(page.locator("#messages .subject")).to_have_text(["Order"])
    page.fill("#search", "")
    page.keyboard.press("Enter")
    expect(rows).to_have_count(3)

    rows.filter(has_text="Plain").click()
    editor = page.locator("#view .tag-editor")
    editor.locator(".tag-input").fill("Needs review!")
    editor.locator(".tag-input").press("Enter")
    expect(editor.locator(".tag-name")).to_have_text(["Needs review"])  # cleaned, as stored
    editor.locator(".tag-input").fill("<img src=x onerror=alert(1)>")
    editor.locator(".tag-input").press("Enter")
    expect(editor.locator(".tag-name")).to_have_text(["img src x onerror alert 1", "Needs review"])
    expect(rows.filter(has_text="Plain").locator(".tag")).to_have_text(["img src x onerror alert 1", "Needs review"])
    plain = next(m for m in client.get("/api/v1/messages").json()["messages"] if m["Subject"] == "Plain")
    assert plain["Tags"] == ["img src x onerror alert 1", "Needs review"]
    editor.get_by_role("button", name="Remove tag img src x onerror alert 1").click()
    expect(editor.locator(".tag-name")).to_have_text(["Needs review"])
    expect(page.locator("#tags .tag-filter")).to_have_text(["billing", "Needs review", "orders", "Urgent"])

    # A change from elsewhere (the API) reaches the open page as an update event.
    invoice = next(m for m in client.get("/api/v1/messages").json()["messages"] if m["Subject"] == "Invoice")
    client.put("/api/v1/tags", json={"IDs": [invoice["ID"]], "Tags": ["paid"]})
    expect(rows.filter(has_text="Invoice").locator(".tag")).to_have_text(["paid"])
    expect(page.locator("#tags .tag-filter")).to_have_text(["Needs review", "orders", "paid"])


def test_tag_names_are_text_never_markup(page: Any, running_sandbox: Sandbox, client: httpx.Client) -> None:
    from playwright.sync_api import expect

    _send(running_sandbox, "Hostile")
    mid = client.get("/api/v1/messages").json()["messages"][0]["ID"]
    # The alphabet keeps < > out of stored names; even so, what is shown is text nodes only.
    client.put("/api/v1/tags", json={"IDs": [mid], "Tags": ["<b>bold</b>"]})
    tag = page.locator("#messages .tag")
    expect(tag).to_have_text("b bold b")
    assert page.locator("#messages b").count() == 0
