"""The UI's newer pieces in headless Chromium: multi-select, notifications, the preview width switcher,
highlighted HTML source, and the fixes for what a first try of the UI ran into."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailsandbox.app import Sandbox

Send = Callable[..., None]  # the `send` fixture of conftest.py

pytestmark = pytest.mark.browser

ZONE = Path(__file__).parents[1] / "data" / "example.zone"
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201a5e2a1d90000000049454e44ae426082"
)

# Records each Notification the page creates, around the browser's own (which still runs).
NOTIFICATION_SPY = """
(() => {
  const Real = window.Notification;
  if (!Real) return;
  window.__notes = [];
  class Spy extends Real {
    constructor(title, options) {
      super(title, options);
      window.__notes.push({ title, body: (options || {}).body || "" });
    }
  }
  Object.defineProperty(Spy, "permission", { get: () => Real.permission });
  Spy.requestPermission = (...args) => Real.requestPermission(...args);
  window.Notification = Spy;
})();
"""


def open_page(browser: Any, base_url: str, width: int = 1280, height: int = 800, **options: Any) -> Any:
    from playwright.sync_api import expect

    expect.set_options(timeout=5000)
    context = browser.new_context(viewport={"width": width, "height": height}, **options)
    pg = context.new_page()
    pg.set_default_timeout(5000)
    return pg


def goto(pg: Any, url: str) -> None:
    from playwright.sync_api import expect

    pg.goto(url + "/", timeout=15000)  # the first page of a module also waits for Chromium to warm up
    expect(pg.locator("#live")).to_have_text("live")


@pytest.fixture
def page(browser: Any, base_url: str) -> Iterator[Any]:
    pg = open_page(browser, base_url)
    goto(pg, base_url)
    yield pg
    pg.context.close()


def rows(page: Any) -> Any:
    return page.locator("#messages > li")


def unread_subjects(client: httpx.Client) -> list[str]:
    return sorted(m["Subject"] for m in client.get("/api/v1/messages").json()["messages"] if not m["Read"])


def test_multi_select_bulk_read_unread_delete(page: Any, send: Send, client: httpx.Client) -> None:
    from playwright.sync_api import expect

    for n in range(1, 6):
        send(subject=f"Note {n}")
    expect(rows(page)).to_have_count(5)  # newest first: Note 5 .. Note 1
    expect(page.locator("#bulk-bar")).to_be_hidden()

    rows(page).nth(0).locator("input.pick").click()
    rows(page).nth(2).locator("input.pick").click()
    expect(page.locator("#bulk-count")).to_have_text("2 selected")
    expect(page.locator("#view-empty")).to_be_visible()  # ticking a box does not open the message
    page.click("#bulk-read")
    expect(page.locator("#messages > li.unread")).to_have_count(3)
    assert unread_subjects(client) == ["Note 1", "Note 2", "Note 4"]

    page.click("#bulk-unread")
    expect(page.locator("#messages > li.unread")).to_have_count(5)
    assert unread_subjects(client) == [f"Note {n}" for n in range(1, 6)]

    # shift-click picks the range from the last box ticked
    page.click("#bulk-clear")
    expect(page.locator("#bulk-bar")).to_be_hidden()
    rows(page).nth(1).locator("input.pick").click()
    rows(page).nth(3).locator("input.pick").click(modifiers=["Shift"])
    expect(page.locator("#bulk-count")).to_have_text("3 selected")
    expect(page.locator("#select-all")).to_have_js_property("indeterminate", True)
    page.click("#bulk-delete")
    expect(page.locator("#messages .subject")).to_have_text(["Note 5", "Note 1"])
    expect(page.locator("#bulk-bar")).to_be_hidden()
    listing = client.get("/api/v1/messages").json()
    assert sorted(m["Subject"] for m in listing["messages"]) == ["Note 1", "Note 5"]

    # select all on the page, with the keyboard's x on the open message too
    page.check("#select-all")
    expect(page.locator("#bulk-count")).to_have_text("2 selected")
    page.uncheck("#select-all")
    rows(page).first.click()
    page.locator("body").press("x")
    expect(page.locator("#bulk-count")).to_have_text("1 selected")
    page.click("#bulk-delete")
    expect(page.locator("#messages .subject")).to_have_text(["Note 1"])
    assert [m["Subject"] for m in client.get("/api/v1/messages").json()["messages"]] == ["Note 1"]


def test_notifications_are_opt_in_and_fire_on_smtp_arrival(browser: Any, base_url: str, send: Send) -> None:
    from playwright.sync_api import expect

    pg = open_page(browser, base_url, permissions=["notifications"])
    pg.add_init_script(NOTIFICATION_SPY)
    goto(pg, base_url)
    button = pg.locator("#notify-button")
    expect(button).to_be_visible()
    expect(button).to_have_attribute("aria-pressed", "false")

    send(subject="Before opting in")
    expect(rows(pg)).to_have_count(1)
    assert pg.evaluate("window.__notes") == []  # off by default

    button.click()
    expect(button).to_have_attribute("aria-pressed", "true")
    send(subject="<b>Wake up</b>", sender="Ann Sender <ann.sender@example.test>")
    pg.wait_for_function("window.__notes.length === 1")
    assert pg.evaluate("window.__notes") == [{"title": "<b>Wake up</b>", "body": "From Ann Sender"}]

    pg.reload()  # the choice is remembered
    expect(pg.locator("#live")).to_have_text("live")
    expect(button).to_have_attribute("aria-pressed", "true")
    button.click()
    expect(button).to_have_attribute("aria-pressed", "false")
    send(subject="After opting out")
    expect(rows(pg)).to_have_count(3)
    assert pg.evaluate("window.__notes") == []
    pg.context.close()


def test_preview_width_switcher_and_loading_state(browser: Any, base_url: str, send: Send) -> None:
    from playwright.sync_api import expect

    send(subject="Wide one", html='<p id="p">hello</p>')
    send(subject="Second", html='<p id="p">again</p>')
    pg = open_page(browser, base_url, width=1700, height=900)
    held: list[Any] = []
    pg.route(re.compile(r"/view/[^/]+\.html"), lambda route: held.append(route))
    goto(pg, base_url)
    rows(pg).last.click()
    loading = pg.locator(".preview-loading")
    expect(loading).to_be_visible()  # not a blank pane while the preview loads
    expect(loading).to_have_text("Loading preview…")
    while not held:  # the handler runs while the sync API waits
        pg.wait_for_timeout(20)
    held.pop().continue_()
    pg.unroute(re.compile(r"/view/[^/]+\.html"))
    expect(loading).to_have_count(0)
    expect(pg.frame_locator("iframe.preview").locator("#p")).to_have_text("hello")

    frame = pg.locator("iframe.preview")
    pane = pg.locator(".preview-stage").bounding_box()
    assert abs(frame.bounding_box()["width"] - pane["width"]) < 2  # desktop: the whole pane
    pg.locator(".seg", has_text="Phone").click()
    expect(pg.locator(".seg", has_text="Phone")).to_have_attribute("aria-pressed", "true")
    assert frame.bounding_box()["width"] == 375
    pg.locator(".seg", has_text="Tablet").click()
    assert frame.bounding_box()["width"] == 768
    expect(pg.frame_locator("iframe.preview").locator("#p")).to_have_text("hello")

    rows(pg).first.click()  # the chosen width stays for the next message
    expect(pg.frame_locator("iframe.preview").locator("#p")).to_have_text("again")
    expect(pg.locator(".seg", has_text="Tablet")).to_have_attribute("aria-pressed", "true")
    assert pg.locator("iframe.preview").bounding_box()["width"] == 768
    pg.locator(".seg", has_text="Desktop").click()
    assert abs(pg.locator("iframe.preview").bounding_box()["width"] - pane["width"]) < 2
    pg.context.close()


SOURCE = (
    '<!doctype html><p class="x" data-n=1>a &amp; <b>b</b> 1 < 2</p><!-- note -->'
    "<script>alert(1)</script><img src='y' onerror=\"alert(2)\"><br/>"
)


def test_html_source_is_highlighted_text(page: Any, send: Send) -> None:
    from playwright.sync_api import expect

    send(subject="Source", html=SOURCE)
    rows(page).first.click()
    page.locator(".tab", has_text="HTML source").click()
    pre = page.locator("pre.source-body")
    expect(pre).to_be_visible()
    assert pre.evaluate("el => el.textContent").rstrip("\n") == SOURCE  # every character, as text
    # only coloured spans inside: no element from the mail
    assert pre.evaluate("el => [...el.querySelectorAll('*')].every(x => x.tagName === 'SPAN')")
    assert page.evaluate("window.alerted") is None
    assert pre.locator(".hl-tag", has_text="<script").count() == 1
    expect(pre.locator(".hl-attr", has_text=re.compile("^class$"))).to_have_count(1)
    expect(pre.locator(".hl-value").first).to_have_text('"x"')
    expect(pre.locator(".hl-comment")).to_have_text("<!-- note -->")
    assert pre.locator(".hl-value", has_text="alert(2)").count() == 1


LINEAR_PROBE = """async () => {
  const { scan } = await import("/static/highlight.js");
  const shapes = [
    (n) => '<a b="' + 'x'.repeat(n),
    (n) => '<!--' + '<!-'.repeat(n),
    (n) => '<a '.repeat(n),
    (n) => '<a ' + 'b=c '.repeat(n),
    (n) => '<'.repeat(n),
  ];
  const best = (src) => {
    let t = Infinity;
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      scan(src, () => {});
      t = Math.min(t, performance.now() - t0);
    }
    return t;
  };
  best(shapes[2](200000)); // warm the JIT up first
  return shapes.map((make) => best(make(1600000)) / Math.max(best(make(200000)), 2));
}"""


@pytest.mark.timing
def test_html_source_highlighting_is_linear(page: Any) -> None:
    # Hostile shapes: unclosed quotes, comments and tags, and endless attributes. Growth 8x in size must
    # stay well under 64x in time (quadratic): best of three runs at each size, 2 ms the smallest base,
    # and up to three tries, since a neighbour may take the CPU.
    tries = []
    for _ in range(3):
        tries.append(page.evaluate(LINEAR_PROBE))
        if max(tries[-1]) < 24:
            return
    pytest.fail(f"growth ratios per shape, per try: {tries}")


def test_esc_closes_the_search_help(page: Any) -> None:
    from playwright.sync_api import expect

    page.click("#search-help")
    expect(page.locator("#help")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#help")).to_be_hidden()
    page.click("#search-help")
    page.locator("#help button").focus()
    page.keyboard.press("Escape")
    expect(page.locator("#help")).to_be_hidden()


def test_a_search_without_the_open_message_closes_it(page: Any, send: Send) -> None:
    from playwright.sync_api import expect

    send(subject="Invoice 1")
    send(subject="Invoice 2")
    expect(rows(page)).to_have_count(2)
    rows(page).first.click()
    expect(page.locator(".view-subject")).to_have_text("Invoice 2")
    page.fill("#search", "invoice")  # still listed: stays open
    expect(rows(page)).to_have_count(2)
    expect(page.locator(".view-subject")).to_have_text("Invoice 2")
    page.fill("#search", "nothingmatchesthis")
    expect(page.locator("#list-empty")).to_be_visible()
    expect(page.locator("#view-empty")).to_be_visible()
    expect(page.locator("#view")).to_be_hidden()
    page.fill("#search", "")
    expect(rows(page)).to_have_count(2)
    expect(page.locator("#view-empty")).to_be_visible()
    assert "id=" not in page.url


def test_mailboxes_sort_naturally_and_filter(page: Any, send: Send) -> None:
    from playwright.sync_api import expect

    names = ["user10", "user2", "user3", "user1", "admin", "user20", "ops", "user11"]
    send(subject="To everyone", to=tuple(f"{n}@example.test" for n in names))
    expected = ["admin", "ops", "user1", "user2", "user3", "user10", "user11", "user20"]
    expect(page.locator("#mailboxes .mailbox-name")).to_have_text([f"{n}@example.test" for n in expected])
    box = page.locator("#mailbox-filter")
    expect(box).to_be_visible()
    box.fill("USER1")
    shown = page.locator("#mailboxes li:not([hidden]) .mailbox-name")
    expect(shown).to_have_text(["user1@example.test", "user10@example.test", "user11@example.test"])
    box.fill("nobody")
    expect(shown).to_have_count(0)
    expect(page.locator("#no-mailbox-match")).to_be_visible()
    box.press("Escape")
    expect(shown).to_have_count(8)


@pytest.fixture
def relay_url(sandbox_factory: Callable[..., Sandbox]) -> str:
    http = sandbox_factory(zones=(ZONE,)).address("http")
    return f"http://{http.host}:{http.port}"


def test_queue_entry_stays_in_sight_above_many_mailboxes(browser: Any, relay_url: str) -> None:
    from playwright.sync_api import expect

    with httpx.Client(base_url=relay_url, timeout=10) as api:
        for n in range(30):
            r = api.post(
                "/api/v1/send",
                json={
                    "From": {"Email": "a@sender.test"},
                    "To": [{"Email": f"box{n}@example.test"}],
                    "Subject": "x",
                    "Text": "x",
                },
            )
            assert r.status_code == 200, r.text
    pg = open_page(browser, relay_url)
    goto(pg, relay_url)
    expect(pg.locator("#mailboxes li")).to_have_count(30)
    queue = pg.locator("#queue-button")
    expect(queue).to_be_visible()
    expect(queue).to_be_in_viewport()
    assert queue.bounding_box()["y"] < pg.locator("#mailboxes li").first.bounding_box()["y"]
    pg.context.close()


def test_remote_banner_fits_at_tablet_width(browser: Any, base_url: str, send: Send) -> None:
    from playwright.sync_api import expect

    hosts = "".join(f'<img src="https://tracker-{n}.example-analytics.test/p.gif">' for n in range(6))
    send(subject="Remote", html=f"<p>hi</p>{hosts}")
    for width in (820, 1024):  # iPad portrait, iPad landscape
        pg = open_page(browser, base_url, width=width, height=1180)
        goto(pg, base_url)
        rows(pg).first.click()
        bar = pg.locator(".remote-bar")
        expect(bar).to_contain_text("6 remote resources blocked")
        assert bar.evaluate("el => el.scrollWidth <= el.clientWidth")
        assert pg.locator(".remote-count").evaluate("el => el.getClientRects().length") == 1  # one line
        count = pg.locator(".remote-count").bounding_box()
        assert count["height"] < 24, count
        button = pg.locator(".remote-bar .button").bounding_box()
        outer = bar.bounding_box()
        assert button["height"] <= 32 and button["x"] + button["width"] <= outer["x"] + outer["width"] + 0.5
        tabs = pg.locator(".tabs")  # the tab row does not scroll sideways here either
        assert tabs.evaluate("el => el.scrollWidth <= el.clientWidth"), width
        pg.context.close()


def test_phone_search_placeholder_and_tab_row(browser: Any, base_url: str, send: Send) -> None:
    from playwright.sync_api import expect

    send(
        subject="Many tabs",
        html="<p>hi</p>",
        attachments=(("a.png", "image/png", PNG),),
    )
    pg = open_page(browser, base_url, width=360, height=740, is_mobile=True, has_touch=True)
    goto_phone = base_url + "/"
    pg.goto(goto_phone)
    fits = pg.locator("#search").evaluate(
        """el => {
          const style = getComputedStyle(el);
          const ctx = document.createElement("canvas").getContext("2d");
          ctx.font = style.font;
          const room = el.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
          return [ctx.measureText(el.placeholder).width, room];
        }"""
    )
    assert 0 < fits[0] <= fits[1], fits
    rows(pg).first.click()
    tabs = pg.locator(".tabs")
    expect(tabs).to_be_visible()
    assert tabs.evaluate("el => el.scrollWidth <= el.clientWidth"), "the tab row scrolls sideways"
    for tab in pg.locator(".tab:visible").all():
        expect(tab).to_be_in_viewport(ratio=1)
    pg.locator(".tab", has_text="Attachments").click()
    expect(pg.locator(".attachment-name")).to_have_text(["a.png"])
    expect(pg.locator(".attachment img")).to_have_js_property("complete", True)
    assert pg.locator(".attachment img").evaluate("img => img.naturalWidth") > 0  # the thumb, or the part
    pg.context.close()
