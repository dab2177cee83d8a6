"""A relayed recipient is delivered exactly once, even when the process dies at the worst moment."""

from __future__ import annotations

import json
import signal
import smtplib
import subprocess
import sys
from pathlib import Path

CHILD = Path(__file__).with_name("_crash_child.py")
ZONE = """\
$ORIGIN test.
$TTL 300
example.test.      MX 10 mx1.example.test.
mx1.example.test.  A 192.0.2.1
"""
RECIPIENT = "bob@example.test"


def start(data: Path, zone: Path, *crash: str) -> tuple[subprocess.Popen[str], int]:
    # faulthandler: a crash in native code prints every thread's stack on stderr.
    proc = subprocess.Popen([sys.executable, "-X", "faulthandler", str(CHILD), str(data), str(zone), RECIPIENT,
                             *crash], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("smtp "), f"no start: {line!r}, exit {proc.poll()}"
    return proc, int(line.split()[2])


def test_kill_9_right_after_the_delivery_commit_delivers_once(tmp_path: Path) -> None:
    data, zone = tmp_path / "data", tmp_path / "world.zone"
    data.mkdir()
    zone.write_text(ZONE)
    proc, port = start(data, zone, "crash")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail("alice@sender.test", [RECIPIENT], b"Subject: once\r\n\r\nbody\r\n")
    # The relay tries the recipient at once; its first commit into bob's mailbox kills the process.
    assert proc.wait(30) == -signal.SIGKILL

    proc, _port = start(data, zone)  # same database: the relay resumes what it left queued
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, f"exit {proc.returncode}: {err[-3000:]}"
    entries = json.loads(out.strip().splitlines()[-1])
    assert len(entries) == 1, f"delivered {len(entries)} times: {entries}"
