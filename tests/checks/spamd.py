"""A real spamd (Debian's spamassassin) on a free loopback port with the shipped rules and no network
tests, for the spam score tests and the mailpit-api client test's sa-check."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING SPAMC/1.5\r\n\r\n")
            s.shutdown(socket.SHUT_WR)
            return s.recv(100).startswith(b"SPAMD/")
    except OSError:
        return False


@contextlib.contextmanager
def running_spamd(binary: str) -> Iterator[int]:
    """spamd on 127.0.0.1:PORT (-L: no DNS or network rules) while the block runs; yields PORT."""
    # The user spamd becomes must read the site configuration: not under pytest's 0700 temporary folders.
    site = Path(tempfile.mkdtemp(prefix="mailsandbox-spamd-"))
    site.chmod(0o755)
    for pre in Path("/etc/spamassassin").glob("*.pre"):  # the plugins; the rules are the shipped ones
        shutil.copy(pre, site)
    (site / "local.cf").write_text("use_bayes 0\nskip_rbl_checks 1\nuse_razor2 0\nuse_pyzor 0\n")
    port = free_port()
    command = [binary, "-x", "-L", "--siteconfigpath", str(site), "--listen", f"127.0.0.1:{port}",
               "-A", "127.0.0.1", "--max-children", "1", "--syslog", "stderr"]  # fmt: skip
    if os.geteuid() == 0:
        command[1:1] = ["-u", "nobody"]  # as root, spamd wants a user to become
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not _answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"spamd did not start: {process.stderr.read().decode()[-2000:] if process.stderr else ''}")
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(site, ignore_errors=True)
