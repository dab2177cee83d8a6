"""DNS rebinding and UI authentication in real Chromium: a foreign name resolved to 127.0.0.1 reads nothing."""

from __future__ import annotations

import os
import smtplib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mailsandbox.app import Sandbox
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.browser
Start = Callable[..., Sandbox]

# The attacker's page, as it was served before its name was rebound to 127.0.0.1: from then on its
# same-origin requests reach the sandbox, with the attacker's name in Host.
ATTACK = """<!doctype html><script>
window.results = (async () => {
  const out = {};
  for (const [name, path, init] of [["list", "/api/v1/messages", {}], ["raw", "/api/v1/message/latest/raw", {}],
      ["read", "/api/v1/messages", {method: "PUT", body: '{"Read": true}', headers: {"Content-Type": "application/json"}}],
      ["delete", "/api/v1/messages", {method: "DELETE"}]]) {
    try { const r = await fetch(path, init); out[name] = [r.status, await r.text()]; }
    catch (e) { out[name] = ["error", String(e)]; }
  }
  out.events = await new Promise((resolve) => {
    const ws = new WebSocket(`ws://${location.host}/api/events`);
    ws.onopen = () => resolve("open");
    ws.onerror = () => resolve("refused");
  });
  return out;
})();
</script>"""


@pytest.fixture(scope="module")
def rebinding_browser() -> Iterator[Any]:
    """Chromium whose resolver maps attacker.test to 127.0.0.1, as a rebinding DNS server would."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing; .ci/run must apt-get install chromium")
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    # Chromium's own Private Network Access checks would stop the page before it reaches the sandbox; other
    # browsers have none, so they are off here and the sandbox must refuse on its own.
    args = [*CHROMIUM_ARGS, "--host-resolver-rules=MAP attacker.test 127.0.0.1",
            "--disable-features=BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessSendPreflights,"
            "PrivateNetworkAccessRespectPreflightResults,LocalNetworkAccessChecks"]  # fmt: skip
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        yield browser
        browser.close()


def _send(sandbox: Sandbox) -> None:
    smtp = sandbox.address("smtp")
    with smtplib.SMTP(smtp.host, smtp.port) as client:
        client.sendmail("a@x.test", ["b@y.test"], b"Subject: private\r\n\r\nthe secret\r\n")


def _attack(browser: Any, sandbox: Sandbox) -> dict[str, Any]:
    port = sandbox.address("http").port
    context = browser.new_context()
    page = context.new_page()
    origin = f"http://attacker.test:{port}"
    page.route(origin + "/", lambda route: route.fulfill(status=200, content_type="text/html", body=ATTACK))
    page.goto(origin + "/")
    results: dict[str, Any] = page.evaluate("window.results")
    direct = context.new_page().goto(origin + "/api/v1/messages")  # no route: straight to the sandbox
    results["direct"] = direct.status if direct else None
    context.close()
    return results


def test_a_rebound_name_reads_and_changes_nothing(rebinding_browser: Any, sandbox_factory: Start) -> None:
    sandbox = sandbox_factory()
    _send(sandbox)
    results = _attack(rebinding_browser, sandbox)
    for name in ("list", "raw", "read", "delete"):
        assert results[name][0] == 403, (name, results[name])
        assert "the secret" not in results[name][1]
    assert results["events"] == "refused" and results["direct"] == 403
    assert sandbox.store.count() == (1, 1)  # still there, still unread


def test_an_allowed_name_works_in_the_same_browser(rebinding_browser: Any, sandbox_factory: Start) -> None:
    # The control: the same page, once its name is allowed, reads everything (so the test above can fail).
    sandbox = sandbox_factory(allowed_hosts="attacker.test")
    _send(sandbox)
    results = _attack(rebinding_browser, sandbox)
    assert results["list"][0] == 200 and results["raw"][0] == 200 and "the secret" in results["raw"][1]
    assert results["events"] == "open" and results["direct"] == 200


def test_ui_login_carries_to_the_event_stream(rebinding_browser: Any, sandbox_factory: Start, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    users = tmp_path / "users"
    users.write_text("ann:s3cret\n")
    sandbox = sandbox_factory(ui_auth_file=users)
    http = sandbox.address("http")
    url = f"http://{http.host}:{http.port}/"
    context = rebinding_browser.new_context(http_credentials={"username": "ann", "password": "s3cret"})
    page = context.new_page()
    page.goto(url)
    expect(page.locator("#live")).to_have_text("live", timeout=5000)  # /api/events opened with the login
    _send(sandbox)
    expect(page.locator("#messages > li")).to_have_count(1, timeout=5000)
    context.close()
