"""DNS-over-TCP flood benchmark: pipelined queries against a running sandbox, and what the rest of it feels.

Starts a sandbox on free loopback ports (in this process, like the tests); a child process sends --queries
pipelined MX queries (~30 bytes each) over one TCP connection while reading the replies (in a process of
its own, so its Python does not compete for the sandbox's GIL), and meanwhile this process probes a small
SMTP send and GET /livez in a loop. Prints, for queries of one name (the answer cache's case) and of a new
name each (every one a miss): the time until the last reply, queries/s, the slowest probe and the loop's
longest stall, after a baseline row of the same probes with no flood. Medians of --runs.

    .venv/bin/python bench/dns_flood_bench.py [--queries 24000] [--runs 3]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent.parent))  # last: PYTHONPATH can name another checkout

import dns.message

from mailsandbox.app import SandboxThread
from tests.conftest import LoopWatch, free_config, probe


def queries(count: int, distinct: bool) -> bytes:
    data = bytearray()
    for i in range(count):
        name = f"host{i}.example.test" if distinct else "example.test"
        wire = dns.message.make_query(name, "MX", id=i % 65536).to_wire()
        data += len(wire).to_bytes(2, "big") + wire
    return bytes(data)


def flood(host: str, port: int, data: bytes, count: int) -> float:
    """Seconds from connecting until the last of `count` replies to the pipelined `data`."""
    started = time.perf_counter()
    with socket.create_connection((host, port), timeout=120) as sock:
        sender = threading.Thread(target=sock.sendall, args=(data,), daemon=True)
        sender.start()
        buffer, got = bytearray(), 0
        while got < count:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError(f"the server hung up after {got} replies")
            buffer += chunk
            while len(buffer) >= 2 and len(buffer) >= 2 + (size := int.from_bytes(buffer[:2], "big")):
                got += 1
                del buffer[: 2 + size]
        sender.join()
    return time.perf_counter() - started


def one(count: int, distinct: bool | None) -> tuple[float, float, float]:
    """(seconds to the last reply, slowest probe, longest stall); distinct=None: no flood, 2 s of probes."""
    with tempfile.TemporaryDirectory() as tmp:
        thread = SandboxThread(free_config(Path(tmp)))
        sandbox = thread.start()
        try:
            address = sandbox.address("dns")
            result: list[float] = []
            command = [sys.executable, __file__, "--client", address.host, str(address.port), str(count)]
            if distinct:
                command.append("--distinct")

            def run() -> None:
                out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
                result.append(float(out))

            work = threading.Thread(target=run if distinct is not None else lambda: time.sleep(2))
            worst = 0.0
            with LoopWatch(sandbox) as watch:
                work.start()
                while work.is_alive():
                    worst = max(worst, *probe(sandbox).values())
                work.join()
            return (result[0] if result else 0.0), worst, watch.max_stall
        finally:
            thread.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=24000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--client", nargs=3, metavar=("HOST", "PORT", "COUNT"), help=argparse.SUPPRESS)
    parser.add_argument("--distinct", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:  # the child: flood, print the seconds until the last reply
        host, port, count = args.client[0], int(args.client[1]), int(args.client[2])
        print(flood(host, port, queries(count, args.distinct), count))
        return
    print(f"{args.queries} pipelined queries ({len(queries(args.queries, False)) / 1000:.0f} KB) over one TCP "
          f"connection; medians of {args.runs} runs")  # fmt: skip
    print(f"{'queries':<16}{'last reply s':>14}{'queries/s':>12}{'slowest probe ms':>18}{'longest stall ms':>18}")
    for distinct in (None, False, True):  # first the baseline: the same probes with no flood
        rows = [one(args.queries, distinct) for _ in range(args.runs)]
        took = statistics.median(r[0] for r in rows)
        worst = statistics.median(r[1] for r in rows)
        stall = statistics.median(r[2] for r in rows)
        label = "no flood" if distinct is None else "a new name each" if distinct else "one name"
        rate = f"{args.queries / took:.0f}" if took else "-"
        print(f"{label:<16}{took:>14.2f}{rate:>12}{worst * 1000:>18.1f}{stall * 1000:>18.1f}")


if __name__ == "__main__":
    main()
