"""The UI page, the preview and the search language over HTTP against a running sandbox (httpx)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

Send = Callable[..., None]  # the `send` fixture of conftest.py


PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201a5e2a1d90000000049454e44ae426082"
)
HOSTILE = (
    '<p id="p">hello</p><script>window.pwned = 1</script>'
    '<img src="https://tracker.test/open.gif" width=1 height=1>'
    "<img src=\"x\" onerror=\"fetch('/api/v1/messages', {method: 'DELETE'})\">"
    '<img src="cid:logo@test" alt="logo">'
    '<form method="post" action="/api/v1/messages"><button id="go">go</button></form>'
)


def only(client: httpx.Client, query: str) -> dict[str, Any]:
    page = client.get("/api/v1/search", params={"query": query}).json()
    assert page["messages_count"] == 1, page
    return page["messages"][0]  # type: ignore[no-any-return]


def directives(csp: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}


def test_ui_page_has_a_strict_csp_and_only_same_origin_assets(client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200
    csp = directives(page.headers["content-security-policy"])
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in page.headers["content-security-policy"]
    refs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert refs and all(r.startswith("/static/") or r == "/" for r in refs), refs
    assert "<script>" not in page.text  # no inline script: every script is a module file
    for ref in refs:
        if ref.startswith("/static/"):
            asset = client.get(ref)
            assert asset.status_code == 200, ref
            assert "immutable" in asset.headers["cache-control"]
    again = client.get("/", headers={"If-None-Match": page.headers["etag"]})
    assert again.status_code == 304


def test_static_modules_revalidate(client: httpx.Client) -> None:
    first = client.get("/static/view.js")
    assert first.status_code == 200 and first.headers["cache-control"] == "no-cache"
    assert "javascript" in first.headers["content-type"]
    again = client.get("/static/view.js", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304


def test_api_data_is_inert_if_rendered(client: httpx.Client) -> None:
    response = client.get("/api/v1/messages")
    csp = directives(response.headers["content-security-policy"])
    assert "sandbox" in csp and csp["default-src"] == ["'none'"]
    assert response.headers["x-content-type-options"] == "nosniff"


def test_preview_blocks_remote_rewrites_cid_and_sandboxes(client: httpx.Client, send: Send) -> None:
    send(subject="hostile", html=HOSTILE, related=(("logo@test", "image/png", PNG),))
    message = only(client, "subject:hostile")
    mid = message["ID"]
    view = client.get(f"/view/{mid}.html")
    assert view.status_code == 200
    assert view.headers["content-type"].startswith("text/html")
    csp = directives(view.headers["content-security-policy"])
    assert csp["sandbox"] == ["allow-popups", "allow-popups-to-escape-sandbox"]  # no scripts, no origin
    assert csp["default-src"] == ["'none'"]
    assert "script-src" not in csp and "connect-src" not in csp
    assert csp["form-action"] == ["'none'"]
    assert view.headers["x-blocked-remote"] == "1"
    assert "tracker.test" not in view.text
    part_url = f"/api/v1/message/{mid}/part/"
    assert any(src.endswith(part_url) for src in csp["img-src"])
    src = re.search(r'src="(/api/v1/message/[^"]+)" alt="logo"', view.text)
    assert src, view.text
    image = client.get(src.group(1))
    assert image.status_code == 200 and image.content == PNG

    remote = client.get(f"/view/{mid}.html", params={"remote": "1"})
    assert "tracker.test" in remote.text and remote.headers["x-blocked-remote"] == "0"
    assert "https:" in directives(remote.headers["content-security-policy"])["img-src"]

    info = client.get(f"/api/sandbox/message/{mid}/preview").json()
    assert info == {"ID": mid, "HTML": True, "RemoteBlocked": 1, "RemoteHosts": ["tracker.test"]}

    text = client.get(f"/view/{mid}.txt")
    assert text.headers["content-type"].startswith("text/plain")
    assert "sandbox" in text.headers["content-security-policy"]
    assert text.text.strip() == "Hello there."


def test_preview_of_missing_and_latest(client: httpx.Client, send: Send) -> None:
    assert client.get("/view/nope.html").status_code == 404
    assert client.get("/api/sandbox/message/nope/preview").status_code == 404
    send(subject="plain only", body="just text")
    assert client.get("/view/latest.html").status_code == 404  # no HTML part
    assert client.get("/view/latest.txt").text.strip() == "just text"
    assert client.get("/api/sandbox/message/latest/preview").json()["HTML"] is False


def test_search_language_through_the_api(client: httpx.Client, send: Send) -> None:
    send(subject="Invoice 42", body="please pay", sender="Billing <billing@shop.test>",
         attachments=(("bill.pdf", "application/pdf", b"%PDF"),))  # fmt: skip
    send(subject="Weekly news", body="invoice mentioned in the body", to=("carol@example.test",),
         bcc=("hidden@example.test",))  # fmt: skip
    send(subject='Odd "quotes" AND (parens) NOT*', body="weird")

    def ids(query: str, **params: str) -> list[str]:
        page = client.get("/api/v1/search", params={"query": query, **params})
        assert page.status_code == 200, page.text
        return [m["Subject"] for m in page.json()["messages"]]

    assert ids("invoice") == ["Weekly news", "Invoice 42"]
    assert ids("subject:invoice") == ["Invoice 42"]
    assert ids("from:billing@shop.test") == ["Invoice 42"]
    assert ids("to:hidden@example.test") == []  # To only, as in Mailpit
    assert ids("bcc:hidden@example.test") == ["Weekly news"]  # Bcc, from the envelope
    assert ids("has:attachment") == ["Invoice 42"]
    assert ids("invoice -has:attachment") == ["Weekly news"]
    assert ids('"quotes" AND (parens) NOT*') == ['Odd "quotes" AND (parens) NOT*']
    assert ids('subject:"\\"') == []  # a substring of the subject, as in Mailpit
    assert ids("is:unread") == [m for m in ids("after:1d")]
    assert ids("before:2000-01-01") == []
    assert ids("invoice", mailbox="carol@example.test") == ["Weekly news"]

    client.get(f"/api/v1/message/{only(client, 'subject:weekly')['ID']}")  # opening marks it read
    assert ids("is:read") == ["Weekly news"]

    deleted = client.request("DELETE", "/api/v1/search", params={"query": "invoice"})
    assert deleted.status_code == 200
    left = client.get("/api/v1/messages").json()
    assert [m["Subject"] for m in left["messages"]] == ['Odd "quotes" AND (parens) NOT*']


@pytest.mark.parametrize(
    ("query", "status"),
    [('"', 400), ("*", 400), ("(", 400), ("AND", 200), ("NEAR(a b)", 200), ("from:", 400), (":", 400),
     ('-"', 400), ("^x", 200), ("a:b:c", 200)],
)  # fmt: skip
def test_fts_syntax_in_a_query_is_searched_or_refused_never_a_500(
    client: httpx.Client, query: str, status: int
) -> None:
    response = client.get("/api/v1/search", params={"query": query})
    assert response.status_code == status, response.text
