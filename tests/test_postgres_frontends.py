"""Three sandboxes on one PostgreSQL database, as a team or a CI fleet runs them behind a load balancer:
what one frontend captures, every other one lists, serves over POP3 and IMAP and announces live (the
WebSocket, IMAP IDLE); flags set on one show on the others. Each frontend is a whole sandbox on its own
loop, talking to its peers only through the database."""

from __future__ import annotations

import functools
import imaplib
import itertools
import json
import poplib
import smtplib
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from mailsandbox.app import Sandbox, SandboxThread
from tests.conftest import free_config
from tests.store_contract.pg import Cluster, postgresql  # noqa: F401  (the cluster fixture)

pytestmark = pytest.mark.fleet

_names = itertools.count()


def _start(cluster: Cluster, tmp_path: Path, **settings: object) -> tuple[list[Sandbox], list[SandboxThread]]:
    dsn = cluster.create_database(f"frontends_{next(_names)}_{int(time.time() * 1000)}")
    threads = [SandboxThread(free_config(tmp_path / f"f{i}", db=dsn, **settings)) for i in range(3)]
    return [thread.start() for thread in threads], threads


@pytest.fixture
def frontends(postgresql: Cluster, tmp_path: Path) -> Iterator[list[Sandbox]]:  # noqa: F811
    sandboxes, threads = _start(postgresql, tmp_path)
    try:
        yield sandboxes
    finally:
        for thread in threads:
            thread.stop()


def _send(sandbox: Sandbox, subject: str, to: str = "bob@example.test") -> None:
    smtp = sandbox.address("smtp")
    with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as client:
        client.sendmail("ann@example.test", [to], f"From: ann@example.test\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nhi\r\n")


def _api(sandbox: Sandbox) -> httpx.Client:
    http = sandbox.address("http")
    return httpx.Client(base_url=f"http://{http.host}:{http.port}", timeout=10)


def _until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def test_a_message_captured_by_one_frontend_is_read_on_the_others(frontends: list[Sandbox]) -> None:
    a, b, c = frontends
    _send(a, "through a")
    with _api(b) as api:
        listing = api.get("/api/v1/messages").json()
        assert [m["Subject"] for m in listing["messages"]] == ["through a"]  # committed before the 250
        assert listing["total"] == 1 and listing["unread"] == 1
        assert api.get("/api/v1/search", params={"query": "subject:through"}).json()["messages_count"] == 1
    pop3 = c.address("pop3")
    client = poplib.POP3(pop3.host, pop3.port, timeout=10)
    try:
        client.user("bob@example.test")
        client.pass_("x")
        assert client.stat()[0] == 1
        assert b"Subject: through a" in b"\r\n".join(client.retr(1)[1])
    finally:
        client.quit()
    imap = b.address("imap")
    with imaplib.IMAP4(imap.host, imap.port, timeout=10) as box:
        box.login("bob@example.test", "x")
        box.select("INBOX")
        assert box.uid("SEARCH", "ALL")[1] == [b"1"]
        box.uid("STORE", "1", "+FLAGS", "(\\Seen)")
    with _api(c) as api:  # IMAP's \Seen on b is the message's read state on c
        assert api.get("/api/v1/messages").json()["unread"] == 0


def test_live_events_cross_frontends(frontends: list[Sandbox]) -> None:
    a, b, c = frontends
    http = b.address("http")
    imap = c.address("imap")
    with imaplib.IMAP4(imap.host, imap.port, timeout=10) as box, connect(
        f"ws://{http.host}:{http.port}/api/events", open_timeout=5
    ) as ws:
        box.login("bob@example.test", "x")
        box.select("INBOX")
        tag = box._new_tag().decode()
        box.send(f"{tag} IDLE\r\n".encode())
        assert box.readline().startswith(b"+")
        _send(a, "live from a")
        while True:  # the browser on b hears of a's message
            frame = json.loads(ws.recv(timeout=10))
            if frame["Type"] == "new":
                assert frame["Data"]["Subject"] == "live from a"
                break
        assert box.readline().strip() == b"* 1 EXISTS"  # and c's IDLE wakes
        box.send(b"DONE\r\n")
        while not (line := box.readline()).startswith(tag.encode()):  # * 1 RECENT may come first
            assert line.startswith(b"* ")
        assert line.startswith(tag.encode() + b" OK")
        with _api(a) as api:
            mid = api.get("/api/v1/messages").json()["messages"][0]["ID"]
            assert api.put("/api/v1/messages", json={"IDs": [mid], "Read": True}).status_code == 200
        while True:
            frame = json.loads(ws.recv(timeout=10))
            if frame["Type"] == "update":
                assert frame["Data"] == {"ID": mid, "Read": True}
                break


def test_uids_are_never_handed_out_twice_across_frontends(frontends: list[Sandbox]) -> None:
    for i, frontend in zip(range(12), itertools.cycle(frontends), strict=False):
        _send(frontend, f"m{i}")
    imap = frontends[2].address("imap")
    with imaplib.IMAP4(imap.host, imap.port, timeout=10) as box:
        box.login("bob@example.test", "x")
        box.select("INBOX")
        uids = box.uid("SEARCH", "ALL")[1][0].split()
        assert [int(u) for u in uids] == list(range(1, 13))
        validity = {_uidvalidity(f) for f in frontends}
        assert len(validity) == 1


def _offset_at_least(api: httpx.Client, seconds: float) -> bool:
    return bool(api.get("/api/sandbox/clock").json()["Offset"] >= seconds)


def _uidvalidity(frontend: Sandbox) -> bytes:
    imap = frontend.address("imap")
    with imaplib.IMAP4(imap.host, imap.port, timeout=10) as box:
        box.login("bob@example.test", "x")
        return box.status("INBOX", "(UIDVALIDITY)")[1][0] or b""


def test_a_delete_on_one_frontend_empties_every_listing(frontends: list[Sandbox]) -> None:
    a, b, c = frontends
    for i in range(5):
        _send(b, f"d{i}")
    with _api(a) as api:
        assert api.delete("/api/v1/messages").status_code == 200
    with _api(c) as api:
        assert _until(lambda: api.get("/api/v1/messages").json()["total"] == 0)
        assert api.get("/api/v1/info").json()["Messages"] == 0


def test_a_maildrop_is_locked_across_frontends(frontends: list[Sandbox]) -> None:
    a, b, _ = frontends
    _send(a, "locked")
    first = _pop3_login(a)
    try:
        with pytest.raises(poplib.error_proto, match="IN-USE"):  # RFC 2449's code, from the other frontend
            _pop3_login(b)
    finally:
        first.quit()
    _pop3_login(b).quit()  # QUIT let go of it before its +OK


def _pop3_login(sandbox: Sandbox) -> poplib.POP3:
    pop3 = sandbox.address("pop3")
    client = poplib.POP3(pop3.host, pop3.port, timeout=10)
    client.user("bob@example.test")
    try:
        client.pass_("x")
    except poplib.error_proto:
        client.close()
        raise
    return client


def test_the_relay_clock_is_shared(frontends: list[Sandbox]) -> None:
    a, b, c = frontends
    with _api(a) as api:
        assert api.post("/api/sandbox/clock", json={"advance": 3600}).status_code == 200
    for other in (b, c):
        with _api(other) as api:
            assert _until(functools.partial(_offset_at_least, api, 3600))
    with _api(b) as api:
        assert api.post("/api/sandbox/reset").status_code == 200  # a reset anywhere puts it back everywhere
    with _api(c) as api:
        assert _until(lambda: api.get("/api/sandbox/clock").json()["Offset"] == 0)


class _Hooks(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        self.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_webhook_fires_once_per_message_not_once_per_frontend(postgresql: Cluster, tmp_path: Path) -> None:  # noqa: F811
    """Every frontend hears of every message (for its browsers and IDLE), but only the one that stored it
    calls the webhook (and checks its authentication)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hooks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Hooks.received = []
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    sandboxes, threads = _start(postgresql, tmp_path, webhook_url=url, webhook_limit=0)
    try:
        for i, frontend in enumerate(sandboxes):
            _send(frontend, f"hook {i}")
        assert _until(lambda: len(_Hooks.received) >= 3)
        time.sleep(0.5)  # room for a second call, if a frontend were to make one
        assert sorted(h["Subject"] for h in _Hooks.received) == ["hook 0", "hook 1", "hook 2"]
    finally:
        for thread in threads:
            thread.stop()
        server.shutdown()
