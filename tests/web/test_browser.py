"""The UI in headless Chromium (Debian's /usr/bin/chromium driven by Playwright for Python)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

Send = Callable[..., None]  # the `send` fixture of conftest.py


pytestmark = pytest.mark.browser

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201a5e2a1d90000000049454e44ae426082"
)
HOSTILE = (
    '<p id="hello">hello from the mail</p>'
    "<script>window.pwned = 1; parent.pwned = 1; fetch('/api/v1/messages', {method: 'DELETE'})</script>"
    "<img src=\"x\" onerror=\"parent.pwned = 2; fetch('/api/v1/messages', {method: 'DELETE'})\">"
    '<img src="https://tracker.test/open.gif">'
    '<form method="post" action="/api/v1/messages"><input name="IDs" value="all">'
    '<button id="go" type="submit">go</button></form>'
)



def rows(page: Any) -> Any:
    return page.locator("#messages > li")


def test_new_mail_appears_live_without_reload(page: Any, send: Send) -> None:
    from playwright.sync_api import expect

    expect(page.locator("#list-empty")).to_be_visible()
    page.evaluate("window.sameDocument = true")
    send(subject="Arrives live", sender="Live Sender <live@example.test>")
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first.locator(".subject")).to_have_text("Arrives live")
    expect(rows(page).first.locator(".from")).to_have_text("Live Sender")
    expect(rows(page).first).to_have_class(re.compile(r"\bunread\b"))
    send(subject="Second one")
    expect(rows(page)).to_have_count(2)
    expect(rows(page).first.locator(".subject")).to_have_text("Second one")  # newest first
    expect(page.locator("#range")).to_have_text("1\u20132 of 2")  # an en dash
    expect(page.locator("#mailboxes .mailbox-name")).to_have_text(["ann@example.test"])
    assert page.evaluate("window.sameDocument") is True


def test_search_and_mailbox_filter(page: Any, send: Send) -> None:
    from playwright.sync_api import expect

    send(subject="Invoice 7", to=("ann@example.test",))
    send(subject="Newsletter", to=("bob@example.test",))
    send(subject="Invoice 8", to=("bob@example.test",))
    expect(rows(page)).to_have_count(3)
    page.keyboard.press("/")
    page.keyboard.type("subject:invoice")
    expect(rows(page)).to_have_count(2)
    expect(page.locator("#messages .subject")).to_have_text(["Invoice 8", "Invoice 7"])
    page.locator(".mailbox", has_text="bob@example.test").click()
    expect(page.locator("#messages .subject")).to_have_text(["Invoice 8"])
    page.fill("#search", "")
    expect(page.locator("#messages .subject")).to_have_text(["Invoice 8", "Newsletter"])
    page.locator("#all-mail").click()
    expect(rows(page)).to_have_count(3)
    page.locator(".mailbox", has_text="bob@example.test").click()
    expect(page.locator("#delete-all")).to_have_text("Delete matching")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#delete-all").click()
    expect(page.locator("#list-empty")).to_be_visible()
    page.locator("#all-mail").click()
    expect(page.locator("#messages .subject")).to_have_text(["Invoice 7"])


def test_message_tabs(page: Any, send: Send) -> None:
    from playwright.sync_api import expect

    send(
        subject="All the parts",
        body="The plain text body.",
        html='<h1 id="title">The HTML body</h1><img src="cid:pic@test" id="pic">',
        related=(("pic@test", "image/png", PNG),),
        attachments=(("chart.png", "image/png", PNG), ("notes.txt", "text/plain", b"some notes")),
        to=("ann@example.test",),
        bcc=("secret@example.test",),
    )
    rows(page).first.click()
    expect(page.locator(".view-subject")).to_have_text("All the parts")
    expect(rows(page).first).not_to_have_class(re.compile(r"\bunread\b"))  # opening marks it read

    frame_el = page.locator("iframe.preview")
    sandbox = frame_el.get_attribute("sandbox")
    assert "allow-scripts" not in sandbox and "allow-same-origin" not in sandbox
    frame = page.frame_locator("iframe.preview")
    expect(frame.locator("#title")).to_have_text("The HTML body")
    expect(frame.locator("#pic")).to_have_js_property("naturalWidth", 1)  # cid: image loaded from its part

    page.locator(".tab", has_text="Text").click()
    expect(page.locator(".text-body")).to_have_text(re.compile("The plain text body."))
    page.locator(".tab", has_text="Headers").click()
    expect(page.locator(".headers th", has_text="Subject")).to_be_visible()
    page.locator(".tab", has_text="Raw").click()
    expect(page.locator(".raw-body")).to_contain_text("Subject: All the parts")
    download = page.locator("a[download$='.eml']")
    assert re.fullmatch(r"/api/v1/message/[^/]+/raw\?dl=1", download.get_attribute("href") or "")
    page.locator(".tab", has_text="Attachments").click()
    names = page.locator(".attachment-name")
    expect(names).to_have_count(3)  # two attachments and the inline image
    expect(names.nth(0)).to_have_text("chart.png")
    expect(names.nth(1)).to_have_text("notes.txt")
    # the thumbnail (or, from a server without thumbnails, the part itself) has loaded
    page.locator(".attachment img").first.wait_for()
    page.wait_for_function("document.querySelector('.attachment img').naturalWidth > 0")
    page.locator(".tab", has_text="MIME").click()
    expect(page.locator(".tree code").first).to_have_text("multipart/mixed")
    expect(page.locator(".tree code", has_text="image/png")).to_have_count(2)
    page.locator(".tab", has_text="Envelope").click()
    secret = page.locator(".rcpts li", has_text="secret@example.test")
    expect(secret.locator(".tag")).to_have_text("Bcc (envelope only)")
    expect(page.locator(".rcpts li", has_text="ann@example.test").locator(".tag")).to_have_text("To")


def test_keyboard_moves_and_delete(page: Any, send: Send, client: httpx.Client) -> None:
    from playwright.sync_api import expect

    for n in (1, 2, 3):
        send(subject=f"Message {n}")
    expect(rows(page)).to_have_count(3)
    page.locator("body").click(position={"x": 5, "y": 400})
    page.keyboard.press("j")
    expect(page.locator(".view-subject")).to_have_text("Message 3")
    page.keyboard.press("j")
    expect(page.locator(".view-subject")).to_have_text("Message 2")
    page.keyboard.press("k")
    expect(page.locator(".view-subject")).to_have_text("Message 3")
    page.keyboard.press("u")  # back to unread
    expect(rows(page).first).to_have_class(re.compile(r"\bunread\b"))
    page.keyboard.press("Delete")
    expect(rows(page)).to_have_count(2)
    expect(page.locator(".view-subject")).to_have_text("Message 2")  # the next one opens
    assert client.get("/api/v1/messages").json()["messages_count"] == 2

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#delete-all").click()
    expect(page.locator("#list-empty")).to_be_visible()
    expect(page.locator("#view-empty")).to_be_visible()
    assert client.get("/api/v1/messages").json()["messages_count"] == 0


def test_hostile_html_cannot_run_or_reach_the_api(page: Any, send: Send, client: httpx.Client) -> None:
    from playwright.sync_api import expect

    requests: list[tuple[str, str]] = []
    page.on("request", lambda r: requests.append((r.method, r.url)))
    send(subject="<b>hostile</b>", sender='"<img src=x onerror=alert(1)>" <evil@bad.test>', html=HOSTILE)
    send(subject="bystander")
    expect(rows(page)).to_have_count(2)
    # names and subjects are text, never markup
    expect(page.locator("#messages .subject").last).to_have_text("<b>hostile</b>")
    expect(page.locator("#messages .from").last).to_have_text("<img src=x onerror=alert(1)>")
    assert page.locator("#messages img").count() == 0

    with page.expect_console_message(lambda m: "Blocked script execution" in m.text):
        rows(page).last.click()
    frame = page.frame_locator("iframe.preview")
    expect(frame.locator("#hello")).to_have_text("hello from the mail")
    expect(page.locator(".remote-bar")).to_contain_text("1 remote resource blocked")
    with page.expect_console_message(lambda m: "Blocked form submission" in m.text):
        frame.locator("#go").click()

    assert page.evaluate("window.pwned") is None
    assert client.get("/api/v1/messages").json()["messages_count"] == 2
    assert not [r for r in requests if r[0] in ("POST", "DELETE") or "tracker.test" in r[1]], requests
    # a direct visit to the preview is inert too: its own CSP sandboxes it
    mid = client.get("/api/v1/search", params={"query": "hostile"}).json()["messages"][0]["ID"]
    direct = page.context.new_page()
    with direct.expect_console_message(lambda m: "Blocked script execution" in m.text):
        direct.goto(page.url.split("#")[0] + f"view/{mid}.html")
    assert direct.evaluate("typeof window.pwned") == "undefined"
    direct.close()
    assert client.get("/api/v1/messages").json()["messages_count"] == 2


def test_phone_layout_shows_one_pane_at_a_time(browser: Any, base_url: str, send: Send) -> None:
    from playwright.sync_api import expect

    send(subject="On a phone")
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(base_url + "/")
    rows(page).first.click()
    expect(page.locator(".view-subject")).to_be_visible()
    expect(page.locator("#list-pane")).to_be_hidden()
    page.get_by_label("Back to the list").click()
    expect(page.locator("#list-pane")).to_be_visible()
    page.locator("#menu-button").click()
    expect(page.locator("#sidebar .mailbox-name", has_text="ann@example.test")).to_be_in_viewport()
    context.close()


def test_mark_all_read_marks_only_what_is_shown(page: Any, send: Send, client: httpx.Client) -> None:
    from playwright.sync_api import expect

    send(subject="Invoice 1", to=("ann@example.test",))
    send(subject="Invoice 2", to=("bob@example.test",))
    send(subject="Newsletter", to=("bob@example.test",))
    send(subject="Reminder", to=("carol@example.test",))
    expect(rows(page)).to_have_count(4)

    def unread() -> list[str]:
        listing = client.get("/api/v1/messages").json()["messages"]
        return sorted(m["Subject"] for m in listing if not m["Read"])

    page.keyboard.press("/")
    page.keyboard.type("subject:invoice")
    expect(rows(page)).to_have_count(2)
    page.click("#mark-all-read")
    expect(page.locator("#messages > li.unread")).to_have_count(0)
    assert unread() == ["Newsletter", "Reminder"]  # the search's matches, nothing else

    page.fill("#search", "")
    expect(rows(page)).to_have_count(4)
    expect(page.locator("#messages > li.unread")).to_have_count(2)
    page.locator(".mailbox", has_text="bob@example.test").click()
    expect(page.locator("#messages .subject")).to_have_text(["Newsletter", "Invoice 2"])
    page.click("#mark-all-read")
    expect(page.locator("#messages > li.unread")).to_have_count(0)
    assert unread() == ["Reminder"]  # bob's mailbox only
