"""Live-events benchmark: capture at full rate while WebSocket clients read every frame of /api/events.

For each number of clients (0, 1, 10, 50 by default) a fresh sandbox (its own process, SQLite store on
disk) captures --messages 2 KB messages over --connections SMTP connections while a reader process holds
that many /api/events WebSockets (websockets' sans-IO client, offering permessage-deflate as browsers do)
and records when each "new" frame arrives. Prints, per client count: capture msg/s, server CPU per
message (from the first message until every client has had the last event or was closed), the readers'
CPU per message, event latency from the 250 to the frame (p50 / p99 over every client's frames), events
delivered and clients closed; then the ratio of CPU per message to the 0-client figure of the same round.
--rounds repeats the whole set (interleaved, so machine noise hits every count alike) and prints ranges.

    .venv/bin/python bench/events_bench.py [--messages 10000] [--connections 20] [--clients 0,1,10,50]
                                           [--rounds 3] [--profile DIR (py-spy records the server)]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))  # last: PYTHONPATH can name another checkout

from smtp_bench import Client, connect, cpu_seconds, message, start_sandbox
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

SUBJECT = b'"Subject":"bench '  # how a reader finds the sequence number in a "new" frame
DRAIN_TIMEOUT = 120.0  # seconds the readers may take after the last 250 before the round is called failed


# -- the reader process: N WebSocket clients on one loop -----------------------------------------------


class Reader(asyncio.Protocol):
    def __init__(self, url: str) -> None:
        self.ws = ClientProtocol(parse_uri(url), extensions=[ClientPerMessageDeflateFactory()], max_size=2**22)
        self.transport: asyncio.Transport | None = None
        self.open: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.seqs: list[int] = []
        self.times: list[float] = []
        self.close: tuple[int, str] | None = None
        self.expected = 0
        self.lean = False
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.ws.send_request(self.ws.connect())
        transport.write(b"".join(self.ws.data_to_send()))

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if self.lean:
            self._frames(data, now)
            return
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Response):
                if not self.open.done():
                    self.open.set_result(None)
                # Handshake done, nothing compressed, no partial frame held: read with the lean parser.
                self.lean = event.status_code == 101 and not self.ws.extensions and not self.ws.reader.buffer
            elif isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                self._text(bytes(event.data), now)
        out = self.ws.data_to_send()
        if out and self.transport is not None:
            self.transport.write(b"".join(out))
        if self.ws.close_rcvd is not None and self.close is None:
            self.close = (self.ws.close_rcvd.code, self.ws.close_rcvd.reason)
            self._finish()

    def _text(self, payload: bytes, now: float) -> None:
        if payload.startswith(b'{"Type":"new"'):
            at = payload.find(SUBJECT) + len(SUBJECT)
            self.seqs.append(int(payload[at : at + 6]))
            self.times.append(now)
            if len(self.seqs) >= self.expected:
                self._finish()

    def _frames(self, data: bytes, now: float) -> None:
        """Unmasked, unfragmented server frames (RFC 6455 §5.2), parsed with as little CPU as we can: the
        readers share the 2 cores with the server."""
        buf = self.buffer + data if self.buffer else data
        pos, end = 0, len(buf)
        while end - pos >= 2:
            opcode, size = buf[pos] & 0x0F, buf[pos + 1] & 0x7F
            head = 2
            if size == 126:
                if end - pos < 4:
                    break
                size, head = int.from_bytes(buf[pos + 2 : pos + 4]), 4
            elif size == 127:
                if end - pos < 10:
                    break
                size, head = int.from_bytes(buf[pos + 2 : pos + 10]), 10
            if end - pos < head + size:
                break
            payload = buf[pos + head : pos + head + size]
            pos += head + size
            if opcode == 0x1:
                self._text(payload, now)
            elif opcode == 0x9 and self.transport is not None:  # ping: a masked pong, mask 0
                self.transport.write(bytes((0x8A, 0x80 | len(payload))) + b"\0\0\0\0" + payload)
            elif opcode == 0x8:
                code = int.from_bytes(payload[:2]) if len(payload) >= 2 else 1005
                self.close = (code, payload[2:].decode(errors="replace"))
                if self.transport is not None:
                    self.transport.close()
                self._finish()
        self.buffer = buf[pos:]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.open.done():
            self.open.set_exception(ConnectionError("closed before the handshake"))
        if self.close is None and len(self.seqs) < self.expected:
            self.close = (1006, "connection lost")
        self._finish()

    def _finish(self) -> None:
        if not self.finished.done():
            self.finished.set_result(None)


async def reader_main(url: str, clients: int, expected: int) -> None:
    loop = asyncio.get_running_loop()
    host, port = parse_uri(url).host, parse_uri(url).port
    readers = []
    for _ in range(clients):
        _t, reader = await loop.create_connection(lambda: Reader(url), host, port)
        reader.expected = expected
        await reader.open
        readers.append(reader)
    print("ready", flush=True)
    started = time.process_time()
    try:
        await asyncio.wait_for(asyncio.gather(*(r.finished for r in readers)), DRAIN_TIMEOUT + 60)
    except TimeoutError:
        pass
    print("done", flush=True)
    cpu = time.process_time() - started
    result = [{"seqs": r.seqs, "times": r.times, "close": r.close} for r in readers]
    print(json.dumps({"cpu": cpu, "clients": result}), flush=True)
    for reader in readers:
        if reader.transport is not None:
            reader.transport.close()


# -- the parent: SMTP load, one sandbox per measurement ----------------------------------------------


async def load(port: int, total: int, connections: int, body: bytes, acked: list[float]) -> float:
    """Send `total` messages; acked[seq] is when the 250 for "bench <seq>" was read."""
    next_seq = iter(range(total))

    async def worker() -> None:
        client: Client = await connect(port)
        for seq in next_seq:
            data = body.replace(b"Subject: benchmark message", b"Subject: bench %06d" % seq, 1)
            await client.send(b"MAIL FROM:<bench@example.test>\r\nRCPT TO:<sink@example.test>\r\nDATA\r\n",
                              b"250", b"250", b"354")  # fmt: skip
            await client.send(data + b".\r\n", b"250")
            acked[seq] = time.monotonic()
        assert client.transport is not None
        client.transport.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


def measure(clients: int, total: int, connections: int, body: bytes, profile: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as data_dir:
        proc, smtp_port, http_port = start_sandbox(data_dir, [])
        spy = None
        try:
            reader = None
            if clients:
                url = f"ws://127.0.0.1:{http_port}/api/events"
                reader = subprocess.Popen(
                    [sys.executable, __file__, "--reader", url, str(clients), str(total)],
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True,
                )  # fmt: skip
                assert reader.stdout is not None
                if reader.stdout.readline().strip() != "ready":
                    raise RuntimeError("the reader process did not start")
            if profile:
                out = Path(profile) / f"server-{clients}-clients.txt"
                spy = subprocess.Popen(["py-spy", "record", "-p", str(proc.pid), "-f", "raw", "-o", str(out),
                                        "-r", "200"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
                time.sleep(1.0)
            acked = [0.0] * total
            cpu_before = cpu_seconds(proc.pid)
            elapsed = asyncio.run(load(smtp_port, total, connections, body, acked))
            row: dict[str, Any] = {"rate": total / elapsed}
            if reader is not None:
                assert reader.stdout is not None
                if reader.stdout.readline().strip() != "done":
                    raise RuntimeError("the reader process failed")
                row["cpu_us"] = (cpu_seconds(proc.pid) - cpu_before) / total * 1e6
                report = json.loads(reader.stdout.readline())
                reader.wait()
                latencies, delivered, closed, out_of_order = [], 0, 0, 0
                for c in report["clients"]:
                    delivered += len(c["seqs"])
                    closed += c["close"] is not None
                    if c["close"] is None and sorted(c["seqs"]) != list(range(total)):
                        out_of_order += 1  # a client that was not closed must have had every event once
                    latencies.extend((t - acked[s]) * 1000 for s, t in zip(c["seqs"], c["times"], strict=True))
                row.update(
                    p50=percentile(latencies, 0.5), p99=percentile(latencies, 0.99), delivered=delivered,
                    closed=closed, missing=out_of_order, reader_us=report["cpu"] / total * 1e6,
                    reasons=sorted({f"{c['close'][0]} {c['close'][1]}" for c in report["clients"] if c["close"]}),
                )  # fmt: skip
            else:
                row["cpu_us"] = (cpu_seconds(proc.pid) - cpu_before) / total * 1e6
            return row
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
                spy.wait()
            proc.terminate()
            proc.wait()


def span(values: list[float], fmt: str) -> str:
    low, high = min(values), max(values)
    return format(low, fmt) if format(low, fmt) == format(high, fmt) else f"{low:{fmt}}-{high:{fmt}}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--clients", default="0,1,10,50")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", metavar="DIR", help="record the server with py-spy (raw stacks) into DIR")
    parser.add_argument("--reader", nargs=3, metavar=("URL", "CLIENTS", "EXPECTED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reader:
        url, clients, expected = args.reader
        asyncio.run(reader_main(url, int(clients), int(expected)))
        return
    counts = [int(c) for c in args.clients.split(",")]
    body = message(2048, False)
    load_avg = os.getloadavg()[0]
    rows: dict[int, list[dict[str, Any]]] = {c: [] for c in counts}
    for round_no in range(args.rounds):
        for clients in counts:
            row = measure(clients, args.messages, args.connections, body, args.profile)
            rows[clients].append(row)
            base = rows[counts[0]][-1]["cpu_us"]
            extra = ""
            if clients:
                extra = (f"  p50 {row['p50']:.1f} ms  p99 {row['p99']:.1f} ms  delivered {row['delivered']}"
                         f"  closed {row['closed']} {row['reasons'] or ''}"
                         f"  readers {row['reader_us']:.0f} us/msg")  # fmt: skip
            print(f"round {round_no + 1}, {clients:>2} clients: {row['rate']:6.0f} msg/s  server CPU "
                  f"{row['cpu_us']:5.0f} us/msg ({row['cpu_us'] / base:.2f}x){extra}", flush=True)  # fmt: skip
    print(f"\n{args.messages} 2 KB messages over {args.connections} SMTP connections, {args.rounds} rounds, "
          f"{os.cpu_count()} cores, load average {load_avg:.1f} at the start, "
          f"{os.getloadavg()[0]:.1f} at the end")  # fmt: skip
    print("| WebSocket clients | capture msg/s | server CPU per message | vs 0 clients | event latency after the "
          "250: p50 / p99 | events delivered / clients closed |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for clients in counts:
        rs = rows[clients]
        ratios = [r["cpu_us"] / rows[counts[0]][i]["cpu_us"] for i, r in enumerate(rs)]
        latency = delivered = "—"
        if clients:
            latency = f"{span([r['p50'] for r in rs], '.1f')} ms / {span([r['p99'] for r in rs], '.1f')} ms"
            delivered = (f"{span([r['delivered'] for r in rs], '.0f')} of {clients * args.messages} / "
                         f"{span([r['closed'] for r in rs], '.0f')}")  # fmt: skip
            if any(r["missing"] for r in rs):
                delivered += f" ({max(r['missing'] for r in rs)} open clients missed events)"
        print(f"| {clients} | {span([r['rate'] for r in rs], ',.0f')} | {span([r['cpu_us'] for r in rs], ',.0f')} us "
              f"| {span(ratios, '.2f')}x | {latency} | {delivered} |")  # fmt: skip


if __name__ == "__main__":
    main()
