"""Large-message benchmark: time to accept 1, 5 and 20 MB, peak RSS while 10 clients send 20 MB
at once, and small-message throughput, for the sandbox and, in the same run, a baseline aiosmtpd whose
handler stores nothing.

The sandbox runs as its own process (`python -m mailsandbox serve`, SQLite store on disk: every 250 is
committed first); peak RSS is the server process's VmHWM from /proc. Each large message is a text part and
a random binary attachment in base64.

    .venv/bin/python bench/large_bench.py [--repeat 3] [--parallel 10] [--small 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from smtp_bench import Client, connect, message, peak_rss_mb, scenario, start_baseline, start_sandbox

MB = 1_000_000


def stuffed(size: int) -> bytes:
    """A message of about `size` octets, dot-stuffed and terminated for DATA."""
    body = message(size, attachment=True)
    return body.replace(b"\r\n.", b"\r\n..") + b".\r\n"


async def accept_time(port: int, data: bytes) -> float:
    """Seconds from the first octet of the content to the 250 (envelope sent first, on its own)."""
    client = await connect(port)
    await client.send(b"MAIL FROM:<bench@example.test>\r\nRCPT TO:<sink@example.test>\r\nDATA\r\n",
                      b"250", b"250", b"354")  # fmt: skip
    started = time.perf_counter()
    await client.send(data, b"250")
    elapsed = time.perf_counter() - started
    await close(client)
    return elapsed


async def close(client: Client) -> None:
    await client.send(b"QUIT\r\n", b"221")
    assert client.transport is not None
    client.transport.close()


async def parallel(port: int, data: bytes, clients: int) -> tuple[float, float]:
    """`clients` connections send `data` at once; (seconds until the last 250, slowest small message sent
    meanwhile on another connection: what everyone else waits while they arrive)."""
    done = asyncio.Event()
    worst = 0.0

    async def probe() -> None:
        nonlocal worst
        small = message(2048, attachment=False)
        while not done.is_set():
            worst = max(worst, await accept_time(port, small + b".\r\n"))

    started = time.perf_counter()
    probing = asyncio.create_task(probe())
    await asyncio.gather(*(accept_time(port, data) for _ in range(clients)))
    elapsed = time.perf_counter() - started
    done.set()
    await probing
    return elapsed, worst


def measure(name: str, port: int, pid: int, args: argparse.Namespace, payloads: dict[int, bytes]) -> dict[str, float]:
    out: dict[str, float] = {}
    print(name, flush=True)
    for size, data in payloads.items():
        times = [asyncio.run(accept_time(port, data)) for _ in range(args.repeat)]
        out[f"accept_{size}"] = statistics.median(times)
        print(f"  accept {size // MB:>2} MB: {out[f'accept_{size}'] * 1000:7.0f} ms (median of {args.repeat}; "
              f"{len(data) / MB:.1f} MB on the wire)", flush=True)  # fmt: skip
    before = peak_rss_mb(pid)
    elapsed, worst = asyncio.run(parallel(port, payloads[20 * MB], args.parallel))
    out["rss"], out["parallel_s"], out["probe_ms"] = peak_rss_mb(pid), elapsed, worst * 1000
    print(f"  {args.parallel} x 20 MB at once: {elapsed:.2f} s; peak RSS {out['rss']:.0f} MB (before: {before:.0f} MB);"
          f" slowest 2 KB message meanwhile {worst * 1000:.0f} ms", flush=True)  # fmt: skip
    small = message(2048, attachment=False)
    label = f"2 KB, 20 connections, {args.small} messages"
    out["rate"] = scenario(label, port, args.small, 20, small, False, pid)["rate"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="sends per size for the accept times")
    parser.add_argument("--parallel", type=int, default=10, help="clients sending 20 MB at once")
    parser.add_argument("--small", type=int, default=5000, help="2 KB messages for the throughput figure")
    args = parser.parse_args()
    payloads = {size: stuffed(size) for size in (1 * MB, 5 * MB, 20 * MB)}

    base, base_port = start_baseline()
    try:
        theirs = measure(f"baseline: aiosmtpd, handler stores nothing ({os.cpu_count()} cores)", base_port,
                         base.pid, args, payloads)  # fmt: skip
    finally:
        base.terminate()
        base.wait()
    with tempfile.TemporaryDirectory() as data_dir:
        proc, port, _http = start_sandbox(data_dir, [])
        try:
            ours = measure(f"mailsandbox: SQLite store in {data_dir}", port, proc.pid, args, payloads)
        finally:
            proc.terminate()
            proc.wait()
    print("mailsandbox vs the do-nothing baseline:")
    for size in payloads:
        key = f"accept_{size}"
        print(f"  accept {size // MB:>2} MB: {ours[key] / theirs[key]:.2f}x the baseline's time")
    print(f"  {args.parallel} x 20 MB peak RSS: {ours['rss']:.0f} MB vs {theirs['rss']:.0f} MB (target under 600 MB)")
    print(f"  2 KB throughput: {ours['rate'] / theirs['rate']:.2f}x the baseline's rate")


if __name__ == "__main__":
    main()
