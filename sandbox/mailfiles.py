"""Mail on disk: .eml files, mbox (the mboxrd variant) and Maildir, written and read one message at a time."""

from __future__ import annotations

import calendar
import os
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_ESCAPED_FROM = re.compile(rb">*From ")  # mboxrd: a line that would read as a separator gets one more ">"
_MBOX_SUFFIXES = (".mbox", ".mbx")
_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_abbr) if m}


@dataclass(frozen=True)
class FileMessage:
    raw: bytes
    received: float | None  # when it was received, where the format says (mtime, the From_ line)
    sender: str = ""  # the mbox From_ line's envelope sender
    origin: str = ""  # where it came from, for messages


# -- writing -----------------------------------------------------------------------------------------------
def write_eml(folder: Path, name: str, raw: bytes, received: float) -> Path:
    path = folder / f"{name}.eml"
    path.write_bytes(raw)
    os.utime(path, (received, received))  # so an ingest keeps the order and the time received
    return path


def mbox_separator(sender: str, received: float) -> bytes:
    # RFC 4155: "From " sender asctime-date
    return f"From {sender or 'MAILER-DAEMON'} {time.asctime(time.gmtime(received))}\n".encode()


def write_mbox_message(out: BinaryIO, raw: bytes, sender: str, received: float) -> None:
    out.write(mbox_separator(sender, received))
    for line in raw.splitlines(keepends=True):
        out.write(b">" + line if _ESCAPED_FROM.match(line) else line)
    out.write(b"\n" if raw.endswith(b"\n") else b"\n\n")  # the blank line before the next separator


def maildir(folder: Path) -> Path:
    for sub in ("cur", "new", "tmp"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return folder


def write_maildir(folder: Path, name: str, raw: bytes, received: float) -> Path:
    """Into tmp/, then renamed into new/ (the Maildir rule, so a reader never sees half a message)."""
    unique = f"{int(received)}.{name}.{socket.gethostname().replace('/', '_')}"
    tmp = folder / "tmp" / unique
    tmp.write_bytes(raw)
    os.utime(tmp, (received, received))
    final = folder / "new" / unique
    tmp.rename(final)
    return final


# -- reading -----------------------------------------------------------------------------------------------
def is_maildir(path: Path) -> bool:
    return path.is_dir() and (path / "cur").is_dir() and (path / "new").is_dir()


def is_mbox(path: Path) -> bool:
    if path.suffix.lower() in _MBOX_SUFFIXES:
        return True
    with path.open("rb") as fh:
        return fh.read(5) == b"From "


def read_mbox(path: Path) -> Iterator[FileMessage]:
    """The messages of an mbox file, streamed line by line (never the whole file in memory)."""
    with path.open("rb", buffering=1 << 20) as fh:
        lines: list[bytes] = []
        separator: bytes | None = None
        previous_blank = True
        for line in fh:
            if line.startswith(b"From ") and previous_blank and (separator is not None or not lines):
                if separator is not None:
                    yield _mbox_message(separator, lines, path)
                separator, lines = line, []
                previous_blank = False
                continue
            previous_blank = line in (b"\n", b"\r\n")
            lines.append(line[1:] if line.startswith(b">") and _ESCAPED_FROM.match(line, 1) else line)
        if separator is not None:
            yield _mbox_message(separator, lines, path)


def _mbox_message(separator: bytes, lines: list[bytes], path: Path) -> FileMessage:
    if lines and lines[-1] in (b"\n", b"\r\n"):
        lines.pop()  # the blank line before the next separator belongs to the file, not the message
    parts = separator[5:].decode("latin-1").strip().split(None, 1)
    received = _asctime(parts[1]) if len(parts) == 2 else None
    sender = parts[0] if parts and parts[0] != "MAILER-DAEMON" else ""  # the null sender's stand-in
    return FileMessage(b"".join(lines), received, sender, str(path))


def _asctime(text: str) -> float | None:
    """The From_ line's date, "Wed Dec  2 01:58:13 2026" (UTC), as epoch seconds; None if it is not one."""
    try:
        _day, month, date, clock, year = text.split()[:5]
        hour, minute, second = (int(x) for x in clock.split(":"))
        return float(calendar.timegm((int(year), _MONTHS[month.lower()], int(date), hour, minute, second)))
    except (KeyError, ValueError):
        return None


def read_file(path: Path) -> FileMessage:
    return FileMessage(path.read_bytes(), path.stat().st_mtime, "", str(path))


def read_paths(paths: list[Path]) -> Iterator[FileMessage]:
    """.eml (or any single-message) files, mbox files, Maildirs, and folders holding any of them."""
    for path in paths:
        if is_maildir(path):
            files = [p for sub in ("new", "cur") for p in (path / sub).iterdir() if p.is_file()]
            for file in sorted(files, key=lambda p: (p.stat().st_mtime, p.name)):
                yield read_file(file)
        elif path.is_dir():
            children = sorted(path.iterdir(), key=lambda p: (p.is_dir(), p.stat().st_mtime, p.name))
            yield from read_paths([c for c in children if not c.name.startswith(".") and c.name != "tmp"])
        elif path.is_file():
            yield from read_mbox(path) if is_mbox(path) else iter([read_file(path)])
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
