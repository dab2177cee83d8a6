"""Who may use the UI and API: the Host allow-list, basic and bearer auth, CORS, inert parts, error headers."""

from __future__ import annotations

import base64
import logging
import smtplib
import socket
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import bcrypt
import httpx
import pytest

from mailsandbox.app import Sandbox

Start = Callable[..., Sandbox]
FOREIGN = "attacker.example:8025"
# One route of each kind: API reads and writes, the UI page and assets, the preview, probes, a 404.
ROUTES = [
    ("GET", "/"), ("GET", "/app.js"), ("GET", "/api/v1/messages"), ("GET", "/api/v1/message/latest"),
    ("GET", "/api/v1/message/latest/raw"), ("PUT", "/api/v1/messages"), ("DELETE", "/api/v1/messages"),
    ("POST", "/api/sandbox/reset"), ("POST", "/api/v1/message/latest/release"), ("GET", "/view/latest.html"),
    ("GET", "/api/v1/info"), ("GET", "/livez"), ("GET", "/readyz"), ("GET", "/no/such/page"),
    ("OPTIONS", "/api/v1/messages"),
]  # fmt: skip


def _url(sandbox: Sandbox) -> str:
    http = sandbox.address("http")
    return f"http://{http.host}:{http.port}"


def _send(sandbox: Sandbox, subject: str = "secret", attachment: tuple[str, str, bytes] | None = None) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.test", "b@example.test", subject
    msg.set_content("the body")
    if attachment:
        name, ctype, data = attachment
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    smtp = sandbox.address("smtp")
    with smtplib.SMTP(smtp.host, smtp.port) as s:
        s.send_message(msg)


def _handshake(sandbox: Sandbox, host: str, extra: str = "") -> bytes:
    """A WebSocket upgrade for /api/events over a raw socket; the status line of the answer."""
    return _handshake_head(sandbox, host, extra).split(b"\r\n", 1)[0]


def _handshake_head(sandbox: Sandbox, host: str, extra: str = "") -> bytes:
    """The status line and header fields the WebSocket upgrade is answered with."""
    http = sandbox.address("http")
    with socket.create_connection((http.host, http.port), timeout=5) as sock:
        sock.sendall(
            f"GET /api/events HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head and (chunk := sock.recv(4096)):
            head += chunk
        return head.split(b"\r\n\r\n", 1)[0].lower()


def test_a_foreign_host_is_refused_on_every_route_and_the_websocket(
    sandbox_factory: Start, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox = sandbox_factory()
    _send(sandbox)
    caplog.set_level(logging.WARNING, logger="mailsandbox.http")
    with httpx.Client(base_url=_url(sandbox), timeout=10) as client:
        for method, path in ROUTES:
            response = client.request(method, path, headers={"Host": FOREIGN})
            assert response.status_code == 403, (method, path)
            assert response.json() == {"Error": "this Host is not allowed (see --allowed-hosts)"}
            assert response.headers["x-content-type-options"] == "nosniff", path
            assert "content-security-policy" in response.headers, path
        # loopback names and addresses, with or without a port, still work
        for host in ("localhost:8025", "127.0.0.1", "[::1]:8025", "app.localhost", "LOCALHOST."):
            assert client.get("/api/v1/messages", headers={"Host": host}).status_code == 200, host
        assert client.get("/api/v1/messages").json()["total"] == 1  # the refused DELETE/reset did nothing
    refused = _handshake_head(sandbox, FOREIGN)
    assert refused.startswith(b"http/1.1 403 forbidden")
    for field in (b"x-content-type-options: nosniff", b"content-security-policy: sandbox", b"referrer-policy"):
        assert field in refused  # a refused handshake carries the headers every answer has
    assert _handshake(sandbox, "localhost") == b"http/1.1 101 switching protocols"
    refusals = [r for r in caplog.records if "attacker.example" in r.getMessage()]
    assert refusals and all("from 127.0.0.1" in r.getMessage() and not r.exc_info for r in refusals)
    # a flood is one line per kind and interval, not one per request
    assert len(refusals) == 1


def test_allowed_hosts_names_and_globs(sandbox_factory: Start) -> None:
    sandbox = sandbox_factory(allowed_hosts="mail.test,*.ci.internal")
    with httpx.Client(base_url=_url(sandbox), timeout=10) as client:
        for host, status in (("mail.test:8025", 200), ("runner-7.ci.internal", 200), ("ci.internal", 403),
                             ("mail.test.attacker.example", 403), ("evil.test", 403)):  # fmt: skip
            assert client.get("/api/v1/messages", headers={"Host": host}).status_code == status, host
    assert _handshake(sandbox, "runner-7.ci.internal:8025") == b"http/1.1 101 switching protocols"


def test_an_exposed_listener_answers_its_addresses_but_no_foreign_name(sandbox_factory: Start) -> None:
    import socket as sockets

    from mailsandbox.config import Listen

    sandbox = sandbox_factory(http=Listen("0.0.0.0", 0))
    port = sandbox.address("http").port
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        for host in (f"192.0.2.7:{port}", "[2001:db8::1]", sockets.gethostname()):  # browsed by address or name
            assert client.get("/api/v1/messages", headers={"Host": host}).status_code == 200, host
        assert client.get("/api/v1/messages", headers={"Host": FOREIGN}).status_code == 403
    loopback_only = sandbox_factory()
    with httpx.Client(base_url=_url(loopback_only), timeout=10) as client:
        assert client.get("/api/v1/messages", headers={"Host": "192.0.2.7"}).status_code == 403


def _auth_file(tmp_path: Path) -> Path:
    hashed = bcrypt.hashpw(b"s3cret hashed", bcrypt.gensalt(rounds=4)).decode()
    path = tmp_path / "ui-users"
    path.write_text(f"# users\nann:plain-pass\nbob:{hashed}\n\n")
    return path


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_ui_auth_file_and_api_token(sandbox_factory: Start, tmp_path: Path) -> None:
    sandbox = sandbox_factory(ui_auth_file=_auth_file(tmp_path), api_token="tok-123", auth_failure_delay=0)
    _send(sandbox)
    with httpx.Client(base_url=_url(sandbox), timeout=10) as client:
        for method, path in ROUTES:
            if path in ("/livez", "/readyz"):
                assert client.get(path).status_code == 200  # probes stay open
                continue
            response = client.request(method, path)
            assert response.status_code == 401, (method, path)
            assert response.headers["www-authenticate"].startswith('Basic realm="Mailsandbox"')
            assert response.headers["x-content-type-options"] == "nosniff"
        assert client.get("/api/v1/messages", headers=_basic("ann", "plain-pass")).json()["total"] == 1
        assert client.get("/", headers=_basic("bob", "s3cret hashed")).status_code == 200
        assert client.get("/", headers=_basic("bob", "s3cret hashed")).status_code == 200  # cached: no re-hash
        assert client.get("/api/v1/messages", headers={"Authorization": "Bearer tok-123"}).status_code == 200
        for bad in (_basic("ann", "wrong"), _basic("bob", "plain-pass"), _basic("eve", "x"),
                    {"Authorization": "Bearer tok-12"}, {"Authorization": "Basic !!!"},
                    _basic("bob", "s3cret hashed" + "x" * 100), _basic("bob", "é" * 5000)):  # fmt: skip
            assert client.get("/api/v1/messages", headers=bad).status_code == 401, bad
    assert _handshake(sandbox, "localhost") == b"http/1.1 401 unauthorized"  # as the routes answer
    token = "Authorization: Bearer tok-123\r\n"
    assert _handshake(sandbox, "localhost", token) == b"http/1.1 101 switching protocols"
    basic = f"Authorization: {_basic('ann', 'plain-pass')['Authorization']}\r\n"
    assert _handshake(sandbox, "localhost", basic) == b"http/1.1 101 switching protocols"


def test_failed_http_logins_are_throttled(sandbox_factory: Start, tmp_path: Path) -> None:
    sandbox = sandbox_factory(ui_auth_file=_auth_file(tmp_path), auth_failure_limit=3, auth_failure_delay=0.2)
    with httpx.Client(base_url=_url(sandbox), timeout=10) as client:
        codes, times = [], []
        for i in range(4):
            began = time.monotonic()
            codes.append(client.get("/api/v1/info", headers=_basic("ann", f"guess{i}")).status_code)
            times.append(time.monotonic() - began)
        assert codes == [401, 401, 401, 429]
        assert times[0] < 0.2 <= times[1] and times[2] >= 0.4 and times[3] < 0.2  # growing, then refused at once
        # even the right password waits out the block; the clock moving on lifts it
        assert client.get("/api/v1/info", headers=_basic("ann", "plain-pass")).status_code == 429
        sandbox.clock.advance(sandbox.throttle.forget_after)
        assert client.get("/api/v1/info", headers=_basic("ann", "plain-pass")).status_code == 200


def test_bad_auth_files_are_refused_at_start(tmp_path: Path) -> None:
    from mailsandbox.web.access import load_users

    for text in ("ann:$apr1$abc$def\n", "justaname\n", "ann:$2b$12$short\n", "# nothing\n"):
        path = tmp_path / "f"
        path.write_text(text)
        with pytest.raises(ValueError):
            load_users(path)


def test_api_cors_is_off_by_default_and_follows_the_setting(sandbox_factory: Start) -> None:
    plain = sandbox_factory()
    origin = {"Origin": "https://dash.example"}
    with httpx.Client(base_url=_url(plain), timeout=10) as client:
        assert "access-control-allow-origin" not in client.get("/api/v1/messages", headers=origin).headers
        assert client.post("/api/sandbox/reset", headers=origin).status_code == 403  # cross-site
    cors = sandbox_factory(api_cors="https://dash.example")
    with httpx.Client(base_url=_url(cors), timeout=10) as client:
        preflight = client.options("/api/v1/messages", headers={**origin, "Access-Control-Request-Method": "DELETE"})
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == "https://dash.example"
        assert "DELETE" in preflight.headers["access-control-allow-methods"]
        response = client.get("/api/v1/messages", headers=origin)
        assert response.headers["access-control-allow-origin"] == "https://dash.example"
        assert client.post("/api/sandbox/reset", headers=origin).status_code == 200
        other = {"Origin": "https://other.example"}
        assert "access-control-allow-origin" not in client.get("/api/v1/messages", headers=other).headers
        assert client.post("/api/sandbox/reset", headers=other).status_code == 403


def test_parts_never_run_in_the_ui_origin(running_sandbox: Sandbox) -> None:
    _send(running_sandbox, attachment=("evil.js", "application/javascript", b"parent.pwned = 1"))
    _send(running_sandbox, attachment=("photo.png", "image/png", b"\x89PNG fake"))
    with httpx.Client(base_url=_url(running_sandbox), timeout=10) as client:
        script, image = (client.get(f"/api/v1/message/{m['ID']}").json() for m in
                         reversed(client.get("/api/v1/messages").json()["messages"]))  # fmt: skip
        js = f"/api/v1/message/{script['ID']}/part/{script['Attachments'][0]['PartID']}"
        served = client.get(js)
        assert served.content == b"parent.pwned = 1"
        assert served.headers["content-type"] == "application/octet-stream"
        assert served.headers["content-disposition"].startswith("attachment;")
        assert served.headers["x-content-type-options"] == "nosniff"
        assert served.headers["content-security-policy"].startswith("sandbox")
        assert client.get(js, headers={"Sec-Fetch-Dest": "script"}).status_code == 403
        png = f"/api/v1/message/{image['ID']}/part/{image['Attachments'][0]['PartID']}"
        assert client.get(png).headers["content-type"] == "image/png"  # a passive type keeps its type
        assert client.get(png, headers={"Sec-Fetch-Dest": "image"}).status_code == 200


def test_a_500_carries_the_security_headers(running_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> tuple[int, int]:
        raise RuntimeError("the disk is gone")

    monkeypatch.setattr(running_sandbox.store, "count", broken)
    with httpx.Client(base_url=_url(running_sandbox), timeout=10) as client:
        response = client.get("/api/v1/info")
    assert response.status_code == 500 and response.json() == {"Error": "internal error"}
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"].startswith("sandbox")
