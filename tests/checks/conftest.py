"""A local HTTP server for the link check (the standard library's, in a thread)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class LocalSite:
    port: int
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # (method, path, Host header)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture
def site() -> Iterator[LocalSite]:
    """/ok 200, /gone 404, /moved 301 to /ok, /loop redirects to itself, /to?URL redirects to URL."""
    state = LocalSite(0)

    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            state.requests.append((self.command, self.path, self.headers.get("Host", "")))
            path, _, query = self.path.partition("?")
            if path in ("/moved", "/loop", "/to"):
                self.send_response(301)
                target = {"/moved": "/ok", "/loop": "/loop"}.get(path, query)
                self.send_header("Location", target)
            else:
                self.send_response(200 if path == "/ok" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
