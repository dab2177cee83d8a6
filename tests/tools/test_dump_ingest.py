"""dump -> ingest round trips, byte for byte, through eml, mbox and Maildir; from a file and from the API."""

from __future__ import annotations

import mailbox
import smtplib
import subprocess
import sys
import tracemalloc
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailsandbox.app import Sandbox
from mailsandbox.mailfiles import FileMessage, read_mbox, read_paths, write_mbox_message
from mailsandbox.store.export import read_only
from mailsandbox.store.sqlite import SqliteStore

SCRIPT = Path(sys.executable).with_name("mailsandbox")


def mailsandbox(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def fill(sb: Sandbox) -> list[bytes]:
    """Awkward messages by SMTP: From_ lines in the body (mbox escaping), 8-bit text, an attachment, no
    final newline in the content, a large one (raw chunks)."""
    smtp = sb.address("smtp")
    bodies = [
        "plain\n",
        "From the start of a line\n>From already quoted\n>>From twice\nFrom \n",
        "Grüße, ünïcödé\n",
        "big " * 300_000,
    ]
    with smtplib.SMTP(smtp.host, smtp.port) as client:
        for i, body in enumerate(bodies):
            msg = EmailMessage()
            msg["From"], msg["To"], msg["Subject"] = f"s{i}@example.test", f"r{i}@example.test", f"m{i}"
            msg.set_content(body)
            if i == 0:
                msg.add_attachment(bytes(range(256)), maintype="application", subtype="octet-stream", filename="b")
            client.send_message(msg)
        client.sendmail("raw@example.test", ["r@example.test"], b"Subject: no final newline\r\n\r\nlast")
    return [m.raw for m in read_only(sb.store.path)]  # type: ignore[attr-defined]


@pytest.mark.parametrize("fmt", ["eml", "mbox", "maildir"])
def test_round_trip_is_byte_for_byte(sandbox_factory: object, tmp_path: Path, fmt: str) -> None:
    sb = sandbox_factory()  # type: ignore[operator]
    original = fill(sb)
    assert len(original) == 5 and all(original)
    first, second = tmp_path / "first", tmp_path / "second"
    mailsandbox("dump", "--db", sb.store.path, "--format", fmt, str(first))  # read-only, while it runs
    mailsandbox("ingest", "--db", str(tmp_path / "copy.db"), str(first))
    copied = [m.raw for m in read_only(tmp_path / "copy.db")]
    assert copied == original
    mailsandbox("dump", "--db", str(tmp_path / "copy.db"), "--format", fmt, str(second))
    files = sorted(p for p in first.rglob("*") if p.is_file())
    assert len(files) == (1 if fmt == "mbox" else 5)
    again = sorted(p for p in second.rglob("*") if p.is_file())
    if fmt == "mbox":  # the same file again, byte for byte
        assert [p.read_bytes() for p in again] == [p.read_bytes() for p in files]
    else:
        assert sorted(p.read_bytes() for p in again) == sorted(p.read_bytes() for p in files)
    if fmt == "mbox":  # the mbox a real reader sees: Python's mailbox module agrees on the messages
        assert [m.get("Subject") for m in mailbox.mbox(first / "mailsandbox.mbox")] == [
            "m0", "m1", "m2", "m3", "no final newline"
        ]  # fmt: skip


def test_dump_from_the_api_matches_the_file(running_sandbox: Sandbox, tmp_path: Path) -> None:
    original = fill(running_sandbox)
    mailsandbox("dump", "--url", f"http://{running_sandbox.address('http')}", str(tmp_path / "api"))
    files = sorted((tmp_path / "api").glob("*.eml"), key=lambda p: p.stat().st_mtime)
    assert [p.read_bytes() for p in files] == original
    ids = {m.id for m in read_only(running_sandbox.store.path)}  # type: ignore[attr-defined]
    assert {p.stem for p in files} == ids


def test_ingest_by_smtp(running_sandbox: Sandbox, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.eml").write_bytes(b"From: a@example.test\nTo: b@example.test\nSubject: lf only\n\nbody\n")
    with (folder / "box.mbox").open("wb") as out:
        write_mbox_message(out, b"From: c@example.test\r\nTo: d@example.test\r\nSubject: in mbox\r\n\r\nx\r\n",
                           "c@example.test", 0)  # fmt: skip
    done = mailsandbox("ingest", "--smtp", str(running_sandbox.address("smtp")), str(folder))
    assert "ingested 2 message(s)" in done.stderr
    subjects = {m.summary.subject for m in running_sandbox.store.list().messages}
    assert subjects == {"lf only", "in mbox"}
    assert running_sandbox.store.mailboxes()  # delivered to the recipients in the headers


def test_large_mbox_streams(tmp_path: Path) -> None:
    """10,000 messages: read with bounded memory, loaded through group commits; prints msgs/s."""
    path = tmp_path / "big.mbox"
    body = b"x" * 2000
    with path.open("wb") as out:
        for i in range(10_000):
            raw = f"From: s{i}@example.test\r\nTo: r{i % 50}@example.test\r\nSubject: n{i}\r\n\r\n".encode() + body
            write_mbox_message(out, raw + b"\r\n", f"s{i}@example.test", 1_700_000_000 + i)
    size = path.stat().st_size
    tracemalloc.start()
    count = sum(1 for _ in read_mbox(path))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count == 10_000 and peak < size / 20, (peak, size)  # one message at a time, not the file
    done = mailsandbox("ingest", "--db", str(tmp_path / "big.db"), str(path))
    print(done.stderr.strip())
    store = SqliteStore(str(tmp_path / "big.db"))
    try:
        assert store.count() == (10_000, 10_000)
        oldest = store.list(start=9_999, limit=1).messages[0]
        assert oldest.summary.subject == "n0" and oldest.created == 1_700_000_000  # the From_ line's time
    finally:
        store.close()


def test_unreadable_input_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run([str(SCRIPT), "ingest", "--db", str(tmp_path / "x.db"), str(tmp_path / "missing")],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1 and "no such file or folder" in done.stderr and "Traceback" not in done.stderr
    done = subprocess.run([str(SCRIPT), "dump", "--db", str(tmp_path / "none.db"), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1 and "no database" in done.stderr


def test_maildir_reader_takes_new_and_cur(tmp_path: Path) -> None:
    box = mailbox.Maildir(tmp_path / "md")  # written by Python's own Maildir implementation
    box.add(b"Subject: one\n\n1\n")
    key = box.add(b"Subject: two\n\n2\n")
    message = box.get_message(key)
    message.set_subdir("cur")
    box[key] = message
    got = sorted(m.raw for m in read_paths([tmp_path / "md"]))
    assert got == [b"Subject: one\n\n1\n", b"Subject: two\n\n2\n"]
    assert all(isinstance(m, FileMessage) for m in read_paths([tmp_path / "md"]))
