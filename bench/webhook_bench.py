"""Webhook and metrics benchmark: does a webhook slow capture, and what does a /metrics scrape cost?

Runs the sandbox (its own process) four times with the same SMTP load (bench/smtp_bench.py's client):
without a webhook, with a webhook to a receiver that answers at once, to one that takes 1 s per request,
and to a port where nothing listens; then scrapes /metrics and prints the time per scrape.

    .venv/bin/python bench/webhook_bench.py [--messages 5000] [--connections 20]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from smtp_bench import message, run_load, start_sandbox  # a sibling script, not a package


def receiver(delay: float) -> tuple[ThreadingHTTPServer, list[int]]:
    received: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver would

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            time.sleep(delay)
            received.append(1)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, received


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(label: str, extra: list[str], total: int, conns: int, body: bytes) -> tuple[dict[str, float], int]:
    with tempfile.TemporaryDirectory() as data_dir:
        proc, port, http = start_sandbox(data_dir, ["--relay", "off", "--auth-checks", "off", *extra])
        try:
            result = asyncio.run(run_load(port, total, conns, body, False))
            print(f"  {label:<44} {result['rate']:7.0f} msg/s  p50 {result['p50_ms']:6.2f} ms  "
                  f"p99 {result['p99_ms']:6.2f} ms", flush=True)  # fmt: skip
        finally:
            proc.terminate()
            proc.wait()
    return result, http


def scrapes(total: int, conns: int, body: bytes) -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        proc, port, http = start_sandbox(data_dir, ["--relay", "off", "--enable-prometheus", "true"])
        try:
            asyncio.run(run_load(port, total, conns, body, False))
            with httpx.Client(base_url=f"http://127.0.0.1:{http}") as client:
                client.get("/metrics").raise_for_status()
                times = []
                for _ in range(50):
                    started = time.perf_counter()
                    size = len(client.get("/metrics").content)
                    times.append(time.perf_counter() - started)
            times.sort()
            print(f"  /metrics after {total} messages: p50 {times[25] * 1e3:.2f} ms, max {times[-1] * 1e3:.2f} ms "
                  f"per scrape, {size} bytes")  # fmt: skip
        finally:
            proc.terminate()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=20)
    args = parser.parse_args()
    body, n, c = message(2048, False), args.messages, args.connections
    print(f"capture of {n} 2 KB messages over {c} connections, relay off:")
    run("no webhook", [], n, c, body)
    fast, fast_got = receiver(0.0)
    run("webhook, receiver answers at once", ["--webhook-url", f"http://127.0.0.1:{fast.server_address[1]}/",
                                              "--webhook-limit", "0"], n, c, body)  # fmt: skip
    print(f"    (the receiver got {len(fast_got)} POSTs while the load ran and until the sandbox stopped)")
    slow, _ = receiver(1.0)
    run("webhook, receiver takes 1 s a request", ["--webhook-url", f"http://127.0.0.1:{slow.server_address[1]}/",
                                                  "--webhook-limit", "0"], n, c, body)  # fmt: skip
    run("webhook, nothing listening", ["--webhook-url", f"http://127.0.0.1:{closed_port()}/",
                                       "--webhook-limit", "0"], n, c, body)  # fmt: skip
    scrapes(n, c, body)
    fast.shutdown()
    slow.shutdown()


if __name__ == "__main__":
    main()
