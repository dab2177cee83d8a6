"""The HTTP listener's bounds over real loopback sockets: the request body limit (413 without buffering),
connections per client (503 before any request is read), the request-head timeout (idle and slowloris
connections are closed, WebSockets are not), and malformed requests answered with a JSON 400."""

from __future__ import annotations

import json
import select
import smtplib
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from mailsandbox.app import Sandbox, SandboxThread
from mailsandbox.models import Envelope
from mailsandbox.web.inputs import MIB, body_limit
from tests.conftest import ON_POSTGRES, free_config

HEAD_TIMEOUT = 0.5
ENV = Envelope(mail_from="a@example.test", rcpt_tos=("b@example.test",), peer="", helo="")
Start = Callable[..., Sandbox]


@pytest.fixture
def start() -> Iterator[Start]:
    """Sandboxes with a short request-head timeout, so the timeout tests take about a second."""
    started: list[SandboxThread] = []
    with tempfile.TemporaryDirectory() as tmp:

        def _start(head_timeout: float = HEAD_TIMEOUT, **overrides: object) -> Sandbox:
            thread = SandboxThread(free_config(Path(tmp) / str(len(started)), **overrides))
            thread.sandbox.http_header_timeout = head_timeout
            started.append(thread)
            return thread.start()

        yield _start
        for thread in reversed(started):
            thread.stop()


@pytest.fixture(scope="module")
def shared() -> Iterator[Sandbox]:
    """One sandbox (1 MiB message limit) for the tests that need no limits of their own."""
    with tempfile.TemporaryDirectory() as tmp:
        thread = SandboxThread(free_config(Path(tmp), max_message_size=MIB))
        thread.sandbox.http_header_timeout = HEAD_TIMEOUT
        yield thread.start()
        thread.stop()


def _connect(sandbox: Sandbox) -> socket.socket:
    http = sandbox.address("http")
    return socket.create_connection((http.host, http.port), timeout=10)


def _read_response(sock: socket.socket, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """One HTTP response with a Content-Length body, read off a raw socket."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a response head: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    return int(lines[0].split()[1]), headers, body


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes `sock` within `seconds` (EOF or reset)."""
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


# -- the body limit -----------------------------------------------------------------------------------------


def test_the_limit_leaves_room_for_a_message_sent_as_json_and_base64() -> None:
    assert body_limit(25 * MIB) == 51 * MIB
    assert body_limit(0) == body_limit(25 * MIB)  # no size limit set: the default one's room


def test_a_content_length_over_the_limit_gets_413_before_the_body_is_sent(shared: Sandbox) -> None:
    sandbox = shared
    with _connect(sandbox) as sock:
        sock.sendall(b"DELETE /api/v1/messages HTTP/1.1\r\nHost: localhost\r\nContent-Length: 800000000\r\n\r\n")
        started = time.monotonic()
        status, headers, body = _read_response(sock)
        assert time.monotonic() - started < 2
    assert status == 413
    assert headers["connection"] == "close"
    assert str(body_limit(MIB)) in json.loads(body)["Error"]


def test_an_800_mb_chunked_body_is_refused_early_without_buffering_it(start: Start) -> None:
    """Streamed, never allocated: the 413 comes after about the limit (3 MiB here), the server's memory
    grows by far less than the body, and the client reads the answer (a lingering close, not a reset)."""
    sandbox = start(max_message_size=MIB)
    limit = body_limit(MIB)
    chunk = b"[" + b"0," * 32_767 + b"0"  # 64 KiB of a JSON array that never closes
    framed = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    head = b"PUT /api/v1/messages HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    before = _rss()
    sent = 0
    with _connect(sandbox) as sock:
        sock.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n")
        sock.setblocking(False)
        while sent < 800_000_000:
            readable, writable, _ = select.select([sock], [sock], [], 5)
            if readable:
                break
            assert writable, "the server neither read nor answered for 5 s"
            try:
                sent += sock.send(framed)
            except (BrokenPipeError, ConnectionResetError):
                break
        sock.setblocking(True)
        status, headers, body = _read_response(sock)
    grown = _rss() - before
    assert status == 413, body
    assert headers["connection"] == "close"
    assert str(limit) in json.loads(body)["Error"]
    assert sent < 10 * limit, f"the 413 came after {sent} bytes"
    assert grown < 64 * MIB, f"the server grew by {grown / MIB:.0f} MiB"
    httpx.get(f"http://{sandbox.address('http')}/livez").raise_for_status()


def test_a_body_under_the_limit_still_works(shared: Sandbox) -> None:
    sandbox = shared
    ids = ["x" * 20] * 50_000  # about 1.2 MB of JSON: over the message size, under the body limit
    response = httpx.put(f"http://{sandbox.address('http')}/api/v1/messages", json={"IDs": ids, "Read": True})
    assert response.status_code == 200, response.text


def test_an_unread_large_body_closes_the_connection_with_connection_close(shared: Sandbox) -> None:
    """A handler that answers without reading a large body: the response says so, then the server closes."""
    sandbox = shared
    with httpx.Client(base_url=f"http://{sandbox.address('http')}") as client:
        response = client.request("DELETE", "/api/sandbox/hosts/nobody.test", content=b"x" * 500_000)
        assert response.status_code == 404
        assert response.headers["connection"] == "close"
        small = client.request("DELETE", "/api/sandbox/hosts/nobody.test", content=b"x" * 100)
        assert small.status_code == 404
        assert "connection" not in small.headers  # a small one is skipped, keep-alive stays
        assert client.get("/livez").status_code == 200


# -- connections per client ---------------------------------------------------------------------------------


def test_a_connection_over_the_per_client_limit_gets_503_and_close(start: Start) -> None:
    sandbox = start(max_connections_per_client=3)
    limiter = sandbox.limiter("http")
    held = [_connect(sandbox) for _ in range(3)]
    _wait(lambda: limiter.active == 3)
    with _connect(sandbox) as extra:
        status, headers, body = _read_response(extra)  # sent before any request
        assert status == 503
        assert headers["connection"] == "close"
        assert json.loads(body) == {"Error": "too many connections"}
        assert _closed_within(extra, 2)
    held.pop().close()
    _wait(lambda: limiter.active == 2)
    assert httpx.get(f"http://{sandbox.address('http')}/livez").status_code == 200
    for sock in held:
        sock.close()
    _wait(lambda: limiter.active == 0)


def test_a_websocket_keeps_its_place_until_it_closes(start: Start) -> None:
    sandbox = start(max_connections_per_client=2)
    limiter = sandbox.limiter("http")
    url = f"ws://{sandbox.address('http')}/api/events"
    with connect(url, open_timeout=5):
        _wait(lambda: limiter.active == 1)
        with connect(url, open_timeout=5), _connect(sandbox) as third:
            assert _read_response(third)[0] == 503
    _wait(lambda: limiter.active == 0)


def _wait(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# -- request-head and keep-alive timeouts -------------------------------------------------------------------


def test_a_connection_that_sends_nothing_is_closed(shared: Sandbox) -> None:
    sandbox = shared
    with _connect(sandbox) as sock:
        started = time.monotonic()
        assert _closed_within(sock, 5)
        assert HEAD_TIMEOUT * 0.9 <= time.monotonic() - started < HEAD_TIMEOUT + 2


def test_a_slowloris_trickling_its_head_is_closed(shared: Sandbox) -> None:
    sandbox = shared
    head = b"GET /livez HTTP/1.1\r\nHost: localhost\r\n" + b"X-Slow: " + b"a" * 200
    with _connect(sandbox) as sock:
        started = time.monotonic()
        closed = False
        for byte in head:
            try:
                sock.send(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if _closed_within(sock, 0.05):
                closed = True
                break
        assert closed, "the server still reads a head it has been sent for seconds"
        assert time.monotonic() - started < HEAD_TIMEOUT + 2


def test_after_a_response_the_next_head_has_the_same_deadline(shared: Sandbox) -> None:
    sandbox = shared
    with _connect(sandbox) as sock:
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert _read_response(sock)[0] == 200
        sock.sendall(b"GET /livez HTTP/1.1\r\n")  # and then nothing more
        started = time.monotonic()
        assert _closed_within(sock, 5)
        assert time.monotonic() - started < HEAD_TIMEOUT + 2


def test_a_slow_handler_is_not_cut_off_by_the_head_timeout(start: Start) -> None:
    """The timer covers only the request head: a search that runs several head timeouts still answers."""
    if ON_POSTGRES:  # the HTTP server's timer is the same on either store; this search is SQLite's slow one
        pytest.skip("PostgreSQL's GIN answers this search too quickly to outlast the head timeout")
    head_timeout = 0.1
    sandbox = start(head_timeout)  # its own: the messages would slow the other tests' searches
    store: Any = sandbox.store  # SqliteStore or PostgresStore: both load in bulk and take a search budget
    words = [f"w{i}x" for i in range(300)]
    # 800: a search reads its look-ups once when it has few matches (sqlite.FEW_MATCHES), twice when many
    raws = (f"Subject: m{i}\r\n\r\n{' '.join(words)}\r\n".encode() for i in range(800))
    list(store.add_messages_sync((raw, ENV) for raw in raws))
    store.search_seconds = 60
    query = " ".join("w" + "." * k for k in range(1, 51))  # 50 prefix lookups of "w"
    started = time.monotonic()
    response = httpx.get(f"http://{sandbox.address('http')}/api/v1/search", params={"query": query}, timeout=60)
    assert response.status_code == 200
    assert time.monotonic() - started > head_timeout * 3, "too fast to show anything: make the search slower"


def test_a_websocket_outlives_the_head_timeout(shared: Sandbox) -> None:
    sandbox = shared
    with connect(f"ws://{sandbox.address('http')}/api/events", open_timeout=5) as ws:
        time.sleep(HEAD_TIMEOUT * 3)  # what is tested is that this much time passes without a close
        smtp = sandbox.address("smtp")
        with smtplib.SMTP(smtp.host, smtp.port) as client:
            client.sendmail("a@example.test", ["b@example.test"], b"Subject: still here\r\n\r\nhi\r\n")
        frames = [json.loads(ws.recv(timeout=5)) for _ in range(2)]
        assert "new" in {f["Type"] for f in frames}


# -- malformed requests -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_bytes",
    [b"NONSENSE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: localhost\r\nBad Header\r\n\r\n",
     b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
     b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n",
     b"GET / HTTP/1.1\r\nHost: localhost\r\n" + b"X-Many: a\r\n" * 2_000 + b"\r\n"],
)  # fmt: skip
def test_a_malformed_request_gets_a_json_4xx(shared: Sandbox, request_bytes: bytes) -> None:
    sandbox = shared
    with _connect(sandbox) as sock:
        sock.sendall(request_bytes)
        status, headers, body = _read_response(sock)
    assert status == (431 if len(request_bytes) > 16 * 1024 else 400)
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["Error"]


def test_a_client_that_leaves_mid_body_logs_no_traceback(shared: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    with _connect(shared) as sock:
        sock.sendall(b"PUT /api/v1/messages HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n{\"IDs\": [")
        _wait(lambda: shared.limiter("http").active == 1)
    _wait(lambda: shared.limiter("http").active == 0)
    assert httpx.get(f"http://{shared.address('http')}/livez").status_code == 200
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]


def test_a_flood_of_malformed_requests_logs_one_line(shared: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    for _ in range(30):
        with _connect(shared) as sock:
            sock.sendall(b"NONSENSE\r\n\r\n")
            assert _read_response(sock)[0] == 400
    invalid = [r for r in caplog.records if "Invalid HTTP request" in r.getMessage()]
    assert len(invalid) <= 1
