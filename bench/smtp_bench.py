"""Capture benchmark: messages/s and MAIL->250 latency over concurrent SMTP connections.

Runs, in one go, the sandbox (its own process, SQLite store on disk: every 250 is committed first) and a
baseline aiosmtpd whose handler stores nothing, and prints our rate as a ratio to the baseline, the
server CPU per message of each, and the sandbox's peak RSS.

    .venv/bin/python bench/smtp_bench.py [--messages 20000] [--connections 20] [--relay-off] [--fsync]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

BASELINE = """
import asyncio, sys
from aiosmtpd.smtp import SMTP
class Nothing:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"
async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Nothing(), enable_SMTPUTF8=True), "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def message(size: int, attachment: bool) -> bytes:
    msg = EmailMessage()
    msg["From"] = "bench@example.test"
    msg["To"] = "sink@example.test"
    msg["Subject"] = "benchmark message"
    msg["Message-ID"] = "<bench@example.test>"
    if attachment:
        msg.set_content("Please find the report attached.\n")
        msg.add_attachment(os.urandom(size * 3 // 4), maintype="application", subtype="octet-stream",
                           filename="report.bin")  # fmt: skip
    else:
        line = "The quick brown fox jumps over the lazy dog. " * 2 + "\n"
        msg.set_content(line * max(1, size // len(line)))
    return msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


class Client(asyncio.Protocol):
    """A lean SMTP client (a Protocol, no streams): the load generator shares the 2 cores with the server,
    so the less CPU it takes, the more the figures measure the server."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.replies: list[bytes] = []
        self.waiter: asyncio.Future[None] | None = None
        self.wanted = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\r\n")
        self.replies.extend(line for line in lines if line[3:4] != b"-")  # last lines of replies
        if self.waiter is not None and len(self.replies) >= self.wanted and not self.waiter.done():
            self.waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("server closed"))

    async def send(self, data: bytes, *expect: bytes) -> None:
        """Write `data`, then wait for one reply per `expect` and check each starts with it."""
        assert self.transport is not None
        if data:
            self.transport.write(data)
        if len(self.replies) < len(expect):
            self.wanted = len(expect)
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
        got, self.replies = self.replies[: len(expect)], self.replies[len(expect) :]
        for reply, code in zip(got, expect, strict=True):
            if not reply.startswith(code):
                raise RuntimeError(f"{data[:40]!r} -> {reply!r}")


async def connect(port: int) -> Client:
    _transport, client = await asyncio.get_running_loop().create_connection(Client, "127.0.0.1", port)
    await client.send(b"", b"220")
    await client.send(b"EHLO bench\r\n", b"250")
    return client


async def send_one(client: Client, body: bytes) -> float:
    start = time.perf_counter()
    # Pipelined, as real clients do (RFC 2920): MAIL, RCPT and DATA in one write.
    await client.send(b"MAIL FROM:<bench@example.test>\r\nRCPT TO:<sink@example.test>\r\nDATA\r\n",
                      b"250", b"250", b"354")  # fmt: skip
    await client.send(body + b".\r\n", b"250")
    return time.perf_counter() - start


async def run_load(port: int, total: int, connections: int, body: bytes, reconnect: bool) -> dict[str, float]:
    latencies: list[float] = []
    per_conn = [total // connections + (1 if i < total % connections else 0) for i in range(connections)]

    async def worker(count: int) -> None:
        client = None if reconnect else await connect(port)
        for _ in range(count):
            if reconnect:
                client = await connect(port)
            assert client is not None
            latencies.append(await send_one(client, body))
            if reconnect:
                await client.send(b"QUIT\r\n", b"221")
                assert client.transport is not None
                client.transport.close()
        if client is not None and not reconnect:
            assert client.transport is not None
            client.transport.write(b"QUIT\r\n")
            client.transport.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in per_conn))
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "rate": total / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peak_rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(match.group(1)) / 1024 if match else float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process: a steadier cost measure than rates on a shared machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_sandbox(data_dir: str, extra: list[str]) -> tuple[subprocess.Popen[str], int, int]:
    smtp_port, http_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, *os.environ.get("BENCH_SERVER_PREFIX", "-m mailsandbox").split(), "serve",
         "--smtp", f"127.0.0.1:{smtp_port}",
         "--http", f"127.0.0.1:{http_port}", "--pop3", "off", "--imap", "off", "--dns", "off",
         "--data-dir", data_dir, *extra],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("Press Ctrl-C"):
            break
    return proc, smtp_port, http_port


def start_baseline() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, "-c", BASELINE], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def scenario(
    name: str, port: int, total: int, conns: int, body: bytes, reconnect: bool, pid: int
) -> dict[str, float]:
    cpu_before, client_before = cpu_seconds(pid), time.process_time()
    result = asyncio.run(run_load(port, total, conns, body, reconnect))
    result["cpu_us"] = (cpu_seconds(pid) - cpu_before) / total * 1e6
    result["client_us"] = (time.process_time() - client_before) / total * 1e6
    print(f"  {name:<40} {result['rate']:7.0f} msg/s  p50 {result['p50_ms']:6.2f} ms  "
          f"p99 {result['p99_ms']:6.2f} ms  server CPU {result['cpu_us']:5.0f} us/msg  "
          f"(client {result['client_us']:4.0f})", flush=True)  # fmt: skip
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--relay-off", action="store_true", help="start the sandbox without the relay")
    parser.add_argument("--fsync", action="store_true", help="start the sandbox with --fsync (power-loss safe)")
    args = parser.parse_args()
    small, big = message(2048, False), message(100 * 1024, True)
    n, c = args.messages, args.connections

    print(f"baseline: aiosmtpd, handler stores nothing ({os.cpu_count()} cores)")
    base, base_port = start_baseline()
    try:
        b_small = scenario(f"2 KB, {c} connections, {n} messages", base_port, n, c, small, False, base.pid)
        b_new = scenario("2 KB, new connection per message", base_port, n // 4, c, small, True, base.pid)
        b_big = scenario("100 KB MIME with attachment", base_port, n // 10, c, big, False, base.pid)
    finally:
        base.terminate()
        base.wait()

    extra = (["--relay", "off"] if args.relay_off else []) + (["--fsync"] if args.fsync else [])
    with tempfile.TemporaryDirectory() as data_dir:
        mode = "fsync every group commit" if args.fsync else "WAL, synchronous=NORMAL"
        print(f"mailsandbox: SQLite store ({mode}) in {data_dir}, relay {'off' if args.relay_off else 'on'}")
        proc, port, _http = start_sandbox(data_dir, extra)
        try:
            s_small = scenario(f"2 KB, {c} connections, {n} messages", port, n, c, small, False, proc.pid)
            rss_after = peak_rss_mb(proc.pid)
            s_new = scenario("2 KB, new connection per message", port, n // 4, c, small, True, proc.pid)
            s_big = scenario("100 KB MIME with attachment", port, n // 10, c, big, False, proc.pid)
            rss_end = peak_rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait()
    print("ratios to the do-nothing baseline (rate; and baseline CPU / our CPU per message):")
    for label, ours, theirs in (("2 KB persistent connections", s_small, b_small),
                                ("2 KB new connection each", s_new, b_new),
                                ("100 KB with attachment", s_big, b_big)):  # fmt: skip
        print(f"  {label:<28} {ours['rate'] / theirs['rate']:.2f}x   CPU {theirs['cpu_us'] / ours['cpu_us']:.2f}x")
    print(f"sandbox peak RSS: {rss_after:.1f} MB after the first {n} messages, {rss_end:.1f} MB at the end")


if __name__ == "__main__":
    main()
