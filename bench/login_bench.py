"""Password guessing benchmark: how many SMTP, POP3 and IMAP guesses one client address gets in --seconds.

Starts a sandbox with `--smtp-auth alice:right` (in this process, like the tests) and guesses passwords
(SMTP AUTH PLAIN, POP3 USER/PASS, IMAP LOGIN) over --connections parallel connections from 127.0.0.1,
reconnecting when cut off, first with the failed-login throttle off (limit 0, delay 0: the baseline) and
then with the defaults (a growing delay, a cut-off after 10), in the same run. A fresh sandbox per run, so
one protocol's failures do not count against the next (the throttle shares one count per address).

    .venv/bin/python bench/login_bench.py [--seconds 10] [--connections 1] [--protocol smtp|pop3|imap|all]
"""

from __future__ import annotations

import argparse
import base64
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

sys.path.append(str(Path(__file__).resolve().parent.parent))  # last: PYTHONPATH can name another checkout

from mailsandbox.app import SandboxThread
from tests.conftest import free_config

# A protocol: (its greeting's first bytes, the login's opening exchange, one guess -> refused?).
Guess = Callable[[socket.socket, BinaryIO, int], bool]


def _smtp_open(sock: socket.socket, reader: BinaryIO) -> None:
    sock.sendall(b"EHLO bench\r\n")
    while not reader.readline().startswith(b"250 "):
        pass


def _smtp_guess(sock: socket.socket, reader: BinaryIO, n: int) -> bool:
    sock.sendall(b"AUTH PLAIN " + base64.b64encode(b"\0alice\0guess%d" % n) + b"\r\n")
    return reader.readline().startswith(b"535")


def _pop3_guess(sock: socket.socket, reader: BinaryIO, n: int) -> bool:
    sock.sendall(b"USER alice\r\nPASS guess%d\r\n" % n)
    return reader.readline().startswith(b"+OK") and reader.readline().startswith(b"-ERR [AUTH]")


def _imap_guess(sock: socket.socket, reader: BinaryIO, n: int) -> bool:
    sock.sendall(b"a%d LOGIN alice guess%d\r\n" % (n, n))
    line = reader.readline()
    while line.startswith(b"* ") and b"BYE" not in line:  # untagged lines before the tagged answer
        line = reader.readline()
    return line.startswith(b"a%d NO" % n)


PROTOCOLS: dict[str, tuple[bytes, Callable[[socket.socket, BinaryIO], None] | None, Guess]] = {
    "smtp": (b"220", _smtp_open, _smtp_guess),
    "pop3": (b"+OK", None, _pop3_guess),
    "imap": (b"* OK", None, _imap_guess),
}


class _Count:
    def __init__(self) -> None:
        self.guesses = self.refused = 0
        self.late_login = ""  # the right password at the end, on a connection opened at the start
        self.lock = threading.Lock()


RIGHT: dict[str, tuple[bytes, bytes]] = {  # (the right login, its success's first bytes)
    "smtp": (b"AUTH PLAIN " + base64.b64encode(b"\0alice\0right") + b"\r\n", b"235"),
    "pop3": (b"USER alice\r\nPASS right\r\n", b"+OK"),
    "imap": (b"z LOGIN alice right\r\n", b"z OK"),
}


def _late_login(protocol: str, sock: socket.socket, reader: BinaryIO) -> str:
    """After the guessing: does the right password still open a connection made before it began?"""
    login, success = RIGHT[protocol]
    try:
        sock.sendall(login)
        lines = [reader.readline() for _ in range(2 if protocol == "pop3" else 1)]
        while lines[-1].startswith(b"* ") and b"BYE" not in lines[-1]:
            lines.append(reader.readline())
    except OSError:
        return "refused (cut)"
    return "ACCEPTED" if lines[-1].startswith(success) else "refused"


def _session(protocol: str, host: str, port: int, end: float, count: _Count) -> None:
    """Guesses on one connection until it is cut or time is up."""
    greeting, opening, guess = PROTOCOLS[protocol]
    with socket.create_connection((host, port), timeout=30) as sock, sock.makefile("rb") as reader:
        if not reader.readline().startswith(greeting):
            with count.lock:
                count.refused += 1
            time.sleep(0.01)  # refused at connect: an attacker would come back; do not spin the CPU
            return
        if opening:
            opening(sock, reader)
        while time.monotonic() < end:
            with count.lock:
                n = count.guesses
            if not guess(sock, reader, n):
                return
            with count.lock:
                count.guesses += 1


def _worker(protocol: str, host: str, port: int, end: float, count: _Count) -> None:
    while time.monotonic() < end:
        try:
            _session(protocol, host, port, end, count)
        except OSError:  # cut mid-exchange
            pass


def guesses_in(protocol: str, seconds: float, connections: int, **overrides: Any) -> _Count:
    config = free_config(Path(tempfile.mkdtemp()), smtp_auth="alice:right", smtp_auth_allow_insecure=True,
                         dns=None, http=None, **overrides)  # fmt: skip
    thread = SandboxThread(config)
    address = thread.start().address(protocol)
    count = _Count()
    greeting, opening, _ = PROTOCOLS[protocol]
    early = socket.create_connection((address.host, address.port), timeout=30)
    early_reader = early.makefile("rb")
    assert early_reader.readline().startswith(greeting)
    if opening:
        opening(early, early_reader)
    end = time.monotonic() + seconds
    workers = [threading.Thread(target=_worker, args=(protocol, address.host, address.port, end, count))
               for _ in range(connections)]  # fmt: skip
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        count.late_login = _late_login(protocol, early, early_reader)
    finally:
        early_reader.close()
        early.close()
        thread.stop()
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--protocol", choices=[*PROTOCOLS, "all"], default="all")
    args = parser.parse_args()
    protocols = list(PROTOCOLS) if args.protocol == "all" else [args.protocol]
    print(f"password guesses from one address in {args.seconds:.0f} s over {args.connections} connection(s)")
    for protocol in protocols:
        base = guesses_in(protocol, args.seconds, args.connections, auth_failure_limit=0, auth_failure_delay=0)
        guarded = guesses_in(protocol, args.seconds, args.connections)
        per_second = base.guesses / args.seconds / args.connections
        ratio = base.guesses / max(guarded.guesses, 1)
        print(f"  {protocol:4}  throttle off (baseline) {base.guesses:8d} ({per_second:,.0f}/s per connection)")
        print(f"        defaults (limit 10, 1 s) {guarded.guesses:7d}   refused connects {guarded.refused:6d}"
              f"   {ratio:,.0f}x fewer")  # fmt: skip
        print(f"        then the right password on a connection opened at the start: {guarded.late_login}")


if __name__ == "__main__":
    main()
