"""html-check and link-check through a running sandbox, over HTTP, as Mailpit's clients call them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from mailsandbox.app import Sandbox
from tests.conftest import LoopWatch

Send = Callable[..., None]
HTML = '<html><body><div style="display:flex; padding:4px">x</div>\n<img src="https://x.example/a.webp"></body></html>'


def latest_id(client: httpx.Client) -> str:
    return str(client.get("/api/v1/messages").json()["messages"][0]["ID"])


def test_html_check(client: httpx.Client, send: Send) -> None:
    send(html=HTML)
    message_id = latest_id(client)
    answer = client.get(f"/api/v1/message/{message_id}/html-check")
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"Warnings", "Platforms", "Total"}
    slugs = {w["Slug"] for w in body["Warnings"]}
    assert {"css-display-flex", "css-padding", "image-webp", "html-body"} <= slugs
    assert all("Places" not in w for w in body["Warnings"])
    assert client.get("/api/v1/message/latest/html-check").json() == body
    placed = client.get(f"/api/sandbox/message/{message_id}/html-check").json()
    flex = next(w for w in placed["Warnings"] if w["Slug"] == "css-display-flex")
    assert flex["Places"] == [{"Line": 1, "Text": HTML.splitlines()[0]}]


def test_html_check_errors(client: httpx.Client, send: Send) -> None:
    assert client.get("/api/v1/message/nope/html-check").status_code == 404
    send(body="text only")
    answer = client.get(f"/api/v1/message/{latest_id(client)}/html-check")
    assert answer.status_code == 400
    assert answer.json() == {"Error": "message does not contain HTML"}


def test_a_large_html_check_does_not_stall_the_loop(client: httpx.Client, send: Send, running_sandbox: Sandbox) -> None:
    # 1.4 MB of styled cells: seconds of checking, in the checker's own process (on the loop, or on a
    # thread holding the interpreter lock, it would stall the loop for seconds). The loop may stall about as
    # long as while the same message is read (its MIME parse shares the lock), plus starting the process.
    send(html="<table>" + '<tr><td style="padding:1px; width:1rem" bgcolor="#fff">cell</td></tr>\n' * 20_000)
    message_id = latest_id(client)
    with LoopWatch(running_sandbox) as reading:
        assert client.get(f"/api/v1/message/{message_id}", timeout=60).status_code == 200
    with LoopWatch(running_sandbox) as watch:
        answer = client.get(f"/api/v1/message/{message_id}/html-check", timeout=120)
    assert answer.status_code == 200
    assert answer.json()["Total"]["Nodes"] == 40_001
    allowed = max(0.25, 3 * reading.max_stall)
    assert watch.max_stall < allowed, (
        f"the loop stalled {watch.max_stall * 1000:.0f} ms (reading: {reading.max_stall * 1000:.0f})"
    )


@pytest.fixture
def site() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self.send_response({"/ok": 200, "/moved": 302}.get(self.path, 404))
            if self.path == "/moved":
                self.send_header("Location", "/ok")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _send_links(sandbox: Sandbox, site: str) -> httpx.Client:
    import smtplib
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.test", "b@example.test", "links"
    msg.set_content(f"Text link: {site}/gone")
    msg.add_alternative(f'<a href="{site}/ok">ok</a> <a href="{site}/moved">moved</a> <img src="{site}/img.png">',
                        subtype="html")  # fmt: skip
    smtp = sandbox.address("smtp")
    with smtplib.SMTP(smtp.host, smtp.port) as s:
        s.send_message(msg)
    http = sandbox.address("http")
    return httpx.Client(base_url=f"http://{http.host}:{http.port}", timeout=30)


def codes(answer: httpx.Response) -> dict[str, int]:
    assert answer.status_code == 200
    body: dict[str, Any] = answer.json()
    assert set(body) == {"Errors", "Links"}
    return {link["URL"].rsplit("/", 1)[1]: link["StatusCode"] for link in body["Links"]}


def test_link_check_with_internal_requests_allowed(sandbox_factory: Callable[..., Sandbox], site: str) -> None:
    with _send_links(sandbox_factory(allow_internal_http_requests=True), site) as client:
        answer = client.get("/api/v1/message/latest/link-check")
        assert codes(answer) == {"ok": 200, "moved": 302, "img.png": 404, "gone": 404}
        assert answer.json()["Errors"] == 2
        assert codes(client.get("/api/v1/message/latest/link-check?follow=true"))["moved"] == 200
        assert client.get("/api/v1/message/nope/link-check").status_code == 404


def test_link_check_refuses_internal_addresses_by_default(sandbox_factory: Callable[..., Sandbox], site: str) -> None:
    with _send_links(sandbox_factory(), site) as client:
        answer = client.get("/api/v1/message/latest/link-check?follow=1")
        assert set(codes(answer).values()) == {451}
        assert {link["Status"] for link in answer.json()["Links"]} == {"Blocked private/reserved address"}
