"""Capture with the email authentication checks on and off, in one run: messages/s and MAIL->250 latency.

Starts the sandbox (own process, SQLite on disk) with --auth-checks off and on, alternately for --rounds
rounds, and sends the same DKIM-signed message (its key, SPF and DMARC records published through the DNS
API) over concurrent SMTP connections. Prints each rate, the median ratio on/off (alternating rounds
keep a shared machine's load changes out of the ratio), the server CPU per message, and how long the
checks took to catch up with the burst.

    .venv/bin/python bench/auth_bench.py [--messages 3000] [--connections 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from smtp_bench import message, scenario, start_sandbox

from mailsandbox.auth.keys import generate_key


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
            if extra[-1] == "off":
                result["checked"], result["drain_s"] = result["checked_at_end"], 0.0
                return result
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
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    key = generate_key("example.test", "bench")
    body = key.sign(message(2048, False))
    records = [
        {"Name": key.record_name, "Type": "TXT", "Value": key.txt_record},
        {"Name": "example.test", "Type": "TXT", "Value": "v=spf1 ip4:127.0.0.1 -all"},
        {"Name": "_dmarc.example.test", "Type": "TXT", "Value": "v=DMARC1; p=reject"},
    ]
    n, c = args.messages, args.connections
    offs, ons = [], []
    for _ in range(args.rounds):
        offs.append(run("checks off", ["--auth-checks", "off"], body, records, n, c))
        ons.append(run("checks on ", ["--auth-checks", "on"], body, records, n, c))
    ratios = sorted(on["rate"] / off["rate"] for on, off in zip(ons, offs, strict=True))
    cpu = sorted(on["cpu_us"] / off["cpu_us"] for on, off in zip(ons, offs, strict=True))
    print(f"capture rate, checks on / off: median {statistics.median(ratios):.2f}x over {args.rounds} alternating"
          f" rounds ({', '.join(f'{r:.2f}' for r in ratios)}); server CPU per message during the burst:"
          f" median {statistics.median(cpu):.2f}x")  # fmt: skip
    for on in ons:
        print(f"  checks on: {on['checked_at_end']:.0f} of {n} checked by the end of the burst, {on['checked']:.0f}"
              f" {on['drain_s']:.1f} s later")  # fmt: skip


if __name__ == "__main__":
    main()
