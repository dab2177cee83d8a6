"""Another site's page must not change the sandbox through the visitor's browser (CSRF)."""

from __future__ import annotations

import httpx

from mailsandbox.app import Sandbox

Send = object


def test_cross_site_state_changes_are_refused(running_sandbox: Sandbox, client: httpx.Client, send: Send) -> None:
    send(subject="keep me")  # type: ignore[operator]
    host = str(running_sandbox.address("http"))
    evil = {"Origin": "http://evil.example", "Content-Type": "text/plain"}
    for method, path in (("POST", "/api/sandbox/reset"), ("DELETE", "/api/v1/messages"),
                         ("PUT", "/api/v1/messages"), ("POST", "/api/v1/message/latest/release")):  # fmt: skip
        response = client.request(method, path, headers=evil, content=b'{"To": ["x@example.test"]}')
        assert response.status_code == 403, (method, path)
        assert response.json() == {"Error": "cross-site request refused"}
    fetch_metadata = client.post("/api/sandbox/reset", headers={"Sec-Fetch-Site": "cross-site"})
    assert fetch_metadata.status_code == 403
    assert client.post("/api/sandbox/reset", headers={"Origin": "null"}).status_code == 403
    assert client.get("/api/v1/messages").json()["total"] == 1  # nothing happened

    # The UI's own requests (same origin) and non-browser clients (no Origin) still work.
    assert client.put("/api/v1/messages", headers={"Origin": f"http://{host}"}, json={"Read": True}).status_code == 200
    assert client.get("/api/v1/messages", headers=evil).status_code == 200  # reads are harmless
    assert client.post("/api/sandbox/reset").status_code == 200
    assert client.get("/api/v1/messages").json()["total"] == 0
