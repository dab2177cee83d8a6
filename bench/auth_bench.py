"""Capture with the email authentication checks on and off, in one run: messages/s and MAIL->250 latency.

Starts the sandbox twice (own process, SQLite on disk), once with --auth-checks off and once on, and sends
the same DKIM-signed message (its key, SPF and DMARC records published through the DNS API) over
concurrent SMTP connections. Prints each rate, the ratio on/off, the server CPU per message, and how many
messages were checked on arrival (the rest are checked when their results are first asked for).

    .venv/bin/python bench/auth_bench.py [--messages 5000] [--connections 20]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from smtp_bench import message, scenario, start_sandbox

from sandbox.auth.keys import generate_key


def api(http_port: int, method: str, path: str, body: object = None) -> object:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{http_port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def checked(http_port: int) -> int:
    found = api(http_port, "GET", "/api/v1/search?query=auth%3Adkim%3Dpass&limit=1")
    assert isinstance(found, dict)
    return int(found.get("messages_count", found.get("total", 0)))


def run(label: str, extra: list[str], body: bytes, records: list[dict[str, str]], n: int, c: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as data_dir:
        proc, port, http_port = start_sandbox(data_dir, ["--relay", "off", *extra])
        try:
            api(http_port, "POST", "/api/sandbox/dns/records", {"Records": records})
            result = scenario(f"{label}: 2 KB signed, {c} connections", port, n, c, body, False, proc.pid)
            result["checked_at_end"] = float(checked(http_port))
            # The backlog drains once the burst is over: wait until the count stops moving.
            began, last, still = time.perf_counter(), -1, time.perf_counter()
            while time.perf_counter() - still < 2.0 and time.perf_counter() - began < 120:
                now = checked(http_port)
                if now != last:
                    last, still = now, time.perf_counter()
                time.sleep(0.2)
            result["checked"] = float(last)
            result["drain_s"] = still - began
        finally:
            proc.terminate()
            proc.wait()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=20)
    args = parser.parse_args()
    key = generate_key("example.test", "bench")
    body = key.sign(message(2048, False))
    records = [
        {"Name": key.record_name, "Type": "TXT", "Value": key.txt_record},
        {"Name": "example.test", "Type": "TXT", "Value": "v=spf1 ip4:127.0.0.1 -all"},
        {"Name": "_dmarc.example.test", "Type": "TXT", "Value": "v=DMARC1; p=reject"},
    ]
    n, c = args.messages, args.connections
    off = run("checks off", ["--auth-checks", "off"], body, records, n, c)
    on = run("checks on ", ["--auth-checks", "on"], body, records, n, c)
    print(f"capture rate, checks on / off: {on['rate'] / off['rate']:.2f}x "
          f"({on['rate']:.0f} vs {off['rate']:.0f} msg/s); p99 {on['p99_ms']:.2f} vs {off['p99_ms']:.2f} ms; "
          f"server CPU {on['cpu_us']:.0f} vs {off['cpu_us']:.0f} us/msg")  # fmt: skip
    print(f"checked on arrival with checks on: {on['checked_at_end']:.0f} of {n} by the end of the burst, "
          f"{on['checked']:.0f} once the backlog drained ({on['drain_s']:.1f} s later; the rest are checked when "
          f"their results are asked for); with them off: {off['checked']:.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
