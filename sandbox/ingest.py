"""mailsandbox ingest: Maildirs, mbox files, .eml files or folders, into a database file or by SMTP."""

from __future__ import annotations

import argparse
import smtplib
import sys
import time
from collections.abc import Iterator
from email.utils import getaddresses
from pathlib import Path
from typing import Any

from mailsandbox import mailfiles
from mailsandbox.config import parse_listen
from mailsandbox.models import Envelope

DEFAULT_SMTP = "127.0.0.1:1025"
_HEAD_LIMIT = 256 * 1024  # the header section read for the envelope; a longer one is cut there
_ENVELOPE_HEADERS = (b"return-path:", b"delivered-to:", b"x-original-to:")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "ingest", help="load Maildirs, mbox files or .eml files into a database file or by SMTP",
        description="Load messages, byte for byte, into a database file (through the store, no server needed)"
        " or into a running sandbox by SMTP (which adds its Received: line).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )  # fmt: skip
    target = p.add_mutually_exclusive_group()
    target.add_argument("--db", metavar="PATH", default=argparse.SUPPRESS,
                        help="a Mailsandbox database file (made if missing)")  # fmt: skip
    target.add_argument("--smtp", metavar="HOST:PORT", default=DEFAULT_SMTP, help="a running sandbox's SMTP listener")
    p.add_argument("paths", nargs="+", metavar="PATH", help="Maildir, mbox file, .eml file, or a folder of them")
    p.set_defaults(run=run)


def envelope(message: mailfiles.FileMessage) -> Envelope:
    """Sender and recipients from the headers: Return-Path (or the mbox From_ line, or From); Delivered-To
    or X-Original-To, else To, Cc and Bcc."""
    from email.parser import BytesHeaderParser
    from email.policy import compat32

    head = message.raw[:_HEAD_LIMIT].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    headers = BytesHeaderParser(policy=compat32).parsebytes(head)

    def addresses(*names: str) -> list[str]:
        return [a for _n, a in getaddresses([str(v) for n in names for v in headers.get_all(n, [])]) if a]

    sender = addresses("Return-Path") or ([message.sender] if message.sender else []) or addresses("From")
    recipients = addresses("Delivered-To", "X-Original-To") or addresses("To", "Cc", "Bcc")
    return Envelope(mail_from=sender[0] if sender else "", rcpt_tos=tuple(dict.fromkeys(recipients)))


def _needs_headers(message: mailfiles.FileMessage) -> bool:
    """Whether the envelope needs more than From/To/Cc/Bcc (which the store's own summary has, at no cost);
    the store fills those in itself."""
    head = message.raw[:_HEAD_LIMIT].split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0].lower()
    return any(name in head for name in _ENVELOPE_HEADERS)


def into_db(path: str, messages: Iterator[mailfiles.FileMessage]) -> int:
    from mailsandbox.store.sqlite import SqliteStore

    store = SqliteStore(path)
    try:
        items = ((m.raw, envelope(m) if _needs_headers(m) else Envelope(m.sender, ()), m.received) for m in messages)
        return sum(1 for stored in store.add_messages_sync(items) if stored is not None)
    finally:
        store.close()


def by_smtp(server: str, messages: Iterator[mailfiles.FileMessage]) -> int:
    listen = parse_listen(server)
    if listen is None:
        raise ValueError("--smtp needs HOST:PORT")
    count = 0
    with smtplib.SMTP(listen.host, listen.port, timeout=60) as client:
        for m in messages:
            env = envelope(m)
            if not env.rcpt_tos:
                print(f"mailsandbox ingest: {m.origin}: no recipients in its headers, skipped", file=sys.stderr)
                continue
            client.sendmail(env.mail_from, list(env.rcpt_tos), _crlf(m.raw))
            count += 1
    return count


def _crlf(raw: bytes) -> bytes:
    """SMTP's line ends (a Maildir or mbox file may hold bare LF)."""
    return raw if b"\n" not in raw.replace(b"\r\n", b"") else raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    messages = mailfiles.read_paths([Path(p) for p in args.paths])
    try:
        db = getattr(args, "db", None)
        count = into_db(db, messages) if db else by_smtp(args.smtp, messages)
    except (OSError, ValueError, smtplib.SMTPException) as exc:
        print(f"mailsandbox ingest: {exc}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - started
    rate = count / seconds if seconds > 0 else 0.0
    print(f"ingested {count} message(s) in {seconds:.2f}s ({rate:.0f} msgs/s)", file=sys.stderr)
    return 0
