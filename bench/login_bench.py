"""Password guessing benchmark: how many SMTP AUTH guesses one client address gets in --seconds.

Starts a sandbox with `--smtp-auth alice:right` (in this process, like the tests) and guesses AUTH PLAIN
passwords over one connection, reconnecting when cut off, first with the failed-login throttle off
(limit 0, delay 0: the baseline) and then with the defaults (a growing delay, a cut-off after 10).

    .venv/bin/python bench/login_bench.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import base64
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))  # last: PYTHONPATH can name another checkout

from mailsandbox.app import SandboxThread
from tests.conftest import free_config


def _session(host: str, port: int, end: float, guesses: int) -> tuple[int, bool]:
    """Guesses on one connection until it is cut; (guesses made, refused at connect)."""
    with socket.create_connection((host, port), timeout=30) as sock, sock.makefile("rb") as reader:
        if not reader.readline().startswith(b"220"):
            return guesses, True
        sock.sendall(b"EHLO bench\r\n")
        while not reader.readline().startswith(b"250 "):
            pass
        while time.monotonic() < end:
            sock.sendall(b"AUTH PLAIN " + base64.b64encode(b"\0alice\0guess%d" % guesses) + b"\r\n")
            if not reader.readline().startswith(b"535"):
                break
            guesses += 1
    return guesses, False


def guesses_in(seconds: float, **overrides: Any) -> tuple[int, int]:
    config = free_config(Path(tempfile.mkdtemp()), smtp_auth="alice:right", smtp_auth_allow_insecure=True,
                         pop3=None, imap=None, dns=None, **overrides)  # fmt: skip
    thread = SandboxThread(config)
    smtp = thread.start().address("smtp")
    guesses = refused = 0
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            guesses, was_refused = _session(smtp.host, smtp.port, end, guesses)
            refused += was_refused
    finally:
        thread.stop()
    return guesses, refused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    base, _ = guesses_in(args.seconds, auth_failure_limit=0, auth_failure_delay=0)
    guarded, refused = guesses_in(args.seconds)
    print(f"SMTP AUTH guesses from one address in {args.seconds:.0f} s")
    print(f"  throttle off (baseline)   {base:8d}")
    ratio = base / max(guarded, 1)
    print(f"  defaults (limit 10, 1 s)  {guarded:8d}   refused connects {refused}   {ratio:,.0f}x fewer")


if __name__ == "__main__":
    main()
