"""mailsandbox sendmail: the sendmail command line PHP, cron and Git call, delivering to the sandbox by SMTP.

Runs as `mailsandbox sendmail ...` or through a symlink named `sendmail`. Exit codes are sendmail's
(sysexits.h), so a caller such as PHP's mail() sees a failure as one.
"""

from __future__ import annotations

import os
import pwd
import smtplib
import socket
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from email.utils import formataddr, formatdate, getaddresses, make_msgid
from typing import BinaryIO

from mailsandbox.config import parse_listen

EX_OK, EX_USAGE, EX_DATAERR, EX_NOUSER, EX_UNAVAILABLE, EX_SOFTWARE, EX_TEMPFAIL = 0, 64, 65, 67, 69, 70, 75
DEFAULT_SERVER = "127.0.0.1:1025"
BS_LINGER = 30.0  # -bs: seconds the replies may still come after standard input ends
MAX_MESSAGE = 64 * 1024 * 1024  # what is read from stdin; the sandbox's own limit answers with 552 first

USAGE = """\
usage: sendmail [-t] [-i] [-f SENDER] [-F NAME] [-S HOST:PORT] [-bs | -bm] [-oOPTION...] [RECIPIENT...]

Read a message on standard input and hand it to the sandbox's SMTP listener.

  -t            recipients from the To, Cc and Bcc headers too (Bcc is then removed from the message)
  -i, -oi       a line with a single dot does not end the message
  -f SENDER     envelope sender (also -r; default: the From header, else USER@HOSTNAME)
  -F NAME       full name for the From header added when the message has none
  -S HOST:PORT  the sandbox's SMTP listener (default: $MAILSANDBOX_SMTP, else 127.0.0.1:1025)
  -bs           speak SMTP on standard input and output (passed through to the listener)
  -bm           deliver the message read on standard input (the default)
  -o...         other sendmail options: accepted and ignored
  -v            say what was sent
"""

# Flags of real sendmail that take a value and mean nothing here: accepted (so callers do not fail), ignored.
_IGNORED_WITH_VALUE = set("BCLNOQRVXhqp")
_IGNORED = set("UGmnv")


class UsageError(Exception):
    pass


@dataclass
class Options:
    extract: bool = False  # -t
    dots_end: bool = True  # without -i, a line "." ends the message
    sender: str | None = None
    full_name: str | None = None
    server: str = field(default_factory=lambda: os.environ.get("MAILSANDBOX_SMTP") or DEFAULT_SERVER)
    mode: str = "m"  # -bm deliver, -bs SMTP on stdio
    verbose: bool = False
    recipients: list[str] = field(default_factory=list)


def parse_args(argv: Sequence[str]) -> Options:
    """Sendmail's own syntax: clustered letters (-ti), values glued or apart (-ffoo, -f foo), -o* ignored."""
    opts = Options()
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            opts.recipients.extend(args[i:])
            break
        if not arg.startswith("-") or arg == "-":
            opts.recipients.append(arg)
            continue
        if arg.startswith("--"):
            raise UsageError("" if arg == "--help" else f"unknown option {arg}")
        letters = arg[1:]
        while letters:
            flag, letters = letters[0], letters[1:]
            if flag in "fFrSb" or flag in _IGNORED_WITH_VALUE:
                if not letters:
                    if i >= len(args):
                        raise UsageError(f"option -{flag} needs a value")
                    letters, i = args[i], i + 1
                _set_value(opts, flag, letters)
                letters = ""
            elif flag == "o":  # -oi is -i; -oem, -odb, -oQ... are ignored
                if letters.startswith("i"):
                    opts.dots_end = False
                letters = ""
            elif flag == "t":
                opts.extract = True
            elif flag == "i":
                opts.dots_end = False
            elif flag == "v":
                opts.verbose = True
            elif flag not in _IGNORED:
                raise UsageError(f"unknown option -{flag}")
    return opts


def _set_value(opts: Options, flag: str, value: str) -> None:
    if flag in "fr":
        opts.sender = value.strip().strip("<>")
    elif flag == "F":
        opts.full_name = value
    elif flag == "S":
        opts.server = value
    elif flag == "b":
        if value not in ("m", "s"):
            raise UsageError(f"-b{value} is not supported (only -bm and -bs)")
        opts.mode = value


def read_message(stream: BinaryIO, dots_end: bool, limit: int = MAX_MESSAGE) -> bytes:
    """Standard input up to EOF (or, without -i, a line "."), every line ending in CRLF."""
    lines: list[bytes] = []
    size = 0
    for line in iter(stream.readline, b""):
        body = line.rstrip(b"\r\n")
        if dots_end and body == b".":
            break
        lines.append(body + b"\r\n")
        size += len(body) + 2
        if size > limit:
            raise ValueError(f"the message is over {limit} bytes")
    return b"".join(lines)


def _header_lines(head: bytes) -> Iterator[list[bytes]]:
    """The header section as fields, each the list of its lines (the first, then its continuations)."""
    current: list[bytes] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and current:
            current.append(line)
            continue
        if current:
            yield current
        current = [line] if line else []
    if current:
        yield current


def prepare(raw: bytes, opts: Options) -> tuple[bytes, str, list[str]]:
    """(message, envelope sender, recipients): headers a real sendmail adds when they are missing
    (From, Date, Message-ID), -t's recipients taken from the headers and its Bcc removed."""
    if raw.startswith(b"From ") and b":" not in raw.split(b"\r\n", 1)[0].split(b" ", 2)[1]:
        raw = raw.partition(b"\r\n")[2]  # an mbox From_ line (git format-patch starts with one): not a header
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:  # headers only, or no header section
        head, body = (raw.rstrip(b"\r\n"), b"") if b":" in raw.split(b"\r\n", 1)[0] else (b"", raw)
    fields = list(_header_lines(head))
    names = {f[0].split(b":", 1)[0].strip().lower() for f in fields}

    def values(name: bytes) -> list[str]:
        found = [f for f in fields if f[0].split(b":", 1)[0].strip().lower() == name]
        return [b" ".join(x.strip() for x in f).split(b":", 1)[1].decode("utf-8", "replace") for f in found]

    from_header = [a for _n, a in getaddresses(values(b"from")) if a]
    sender = opts.sender or (from_header[0] if from_header else _login_address())
    recipients = list(opts.recipients)
    if opts.extract:
        recipients += [a for _n, a in getaddresses(values(b"to") + values(b"cc") + values(b"bcc")) if a]
        fields = [f for f in fields if f[0].split(b":", 1)[0].strip().lower() not in (b"bcc", b"resent-bcc")]
    added: list[str] = []
    if b"from" not in names:
        added.append(f"From: {formataddr((opts.full_name or '', sender))}")
    if b"date" not in names:
        added.append(f"Date: {formatdate(localtime=True)}")
    if b"message-id" not in names:
        added.append(f"Message-ID: {make_msgid(domain=sender.rpartition('@')[2] or socket.gethostname())}")
    lines = [line for f in fields for line in f] + [a.encode("utf-8") for a in added]
    message = b"\r\n".join(lines) + b"\r\n\r\n" + body
    return message, sender, list(dict.fromkeys(recipients))


def _login_address() -> str:
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = os.environ.get("USER") or "nobody"
    return f"{user}@{socket.gethostname() or 'localhost'}"


def deliver(opts: Options, stdin: BinaryIO) -> int:
    listen = parse_listen(opts.server)
    if listen is None:
        raise UsageError("-S needs HOST:PORT")
    try:
        raw = read_message(stdin, opts.dots_end)
    except ValueError as exc:
        print(f"sendmail: {exc}", file=sys.stderr)
        return EX_DATAERR
    message, sender, recipients = prepare(raw, opts)
    if not recipients:
        print("sendmail: no recipients (give them as arguments, or -t to read the headers)", file=sys.stderr)
        return EX_USAGE
    try:
        with smtplib.SMTP(listen.host, listen.port, local_hostname="localhost", timeout=60) as client:
            refused = client.sendmail(sender, recipients, message)
    except smtplib.SMTPRecipientsRefused as exc:
        for rcpt, (code, text) in exc.recipients.items():
            print(f"sendmail: {rcpt}: {code} {text.decode(errors='replace')}", file=sys.stderr)
        return EX_NOUSER
    except smtplib.SMTPResponseException as exc:
        why = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        print(f"sendmail: {exc.smtp_code} {why}", file=sys.stderr)
        return EX_TEMPFAIL if 400 <= exc.smtp_code < 500 else EX_UNAVAILABLE
    except (OSError, smtplib.SMTPException) as exc:  # nothing listening, a dropped connection
        print(f"sendmail: cannot send to {listen}: {exc}", file=sys.stderr)
        return EX_TEMPFAIL
    for rcpt, (code, text) in refused.items():
        print(f"sendmail: {rcpt}: {code} {text.decode(errors='replace')}", file=sys.stderr)
    if opts.verbose:
        print(f"sendmail: sent to {len(recipients) - len(refused)} recipient(s) via {listen}", file=sys.stderr)
    return EX_OK if not refused else EX_NOUSER


def smtp_on_stdio(opts: Options, stdin: BinaryIO, stdout: BinaryIO) -> int:
    """-bs: the listener's SMTP dialogue on stdin/stdout, bare LF turned into CRLF on the way in."""
    listen = parse_listen(opts.server)
    if listen is None:
        raise UsageError("-S needs HOST:PORT")
    try:
        sock = socket.create_connection((listen.host, listen.port), timeout=60)
    except OSError as exc:
        print(f"sendmail: cannot connect to {listen}: {exc}", file=sys.stderr)
        return EX_TEMPFAIL
    sock.settimeout(None)
    closed = threading.Event()

    def upstream() -> None:
        try:
            for line in iter(stdin.readline, b""):
                sock.sendall(line.rstrip(b"\r\n") + b"\r\n" if line.endswith(b"\n") else line)
            # No half-close: the server would take it as the end of the session and drop the replies still
            # due (a 250 after DATA). After QUIT it closes by itself; a client that never said QUIT is cut.
            if not closed.wait(BS_LINGER):
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # the server closed first: the reader below sees it

    threading.Thread(target=upstream, name="sendmail-stdin", daemon=True).start()
    with sock:
        try:
            while data := sock.recv(65536):
                stdout.write(data)
                stdout.flush()
        finally:
            closed.set()
    return EX_OK


def main(argv: Sequence[str]) -> int:
    try:
        opts = parse_args(argv)
        if opts.mode == "s":
            return smtp_on_stdio(opts, sys.stdin.buffer, sys.stdout.buffer)
        return deliver(opts, sys.stdin.buffer)
    except UsageError as exc:
        if not str(exc):  # --help
            print(USAGE, end="")
            return EX_OK
        print(f"sendmail: {exc}\n{USAGE}", file=sys.stderr, end="")
        return EX_USAGE


def wanted(argv: Sequence[str] | None) -> list[str] | None:
    """The sendmail arguments when this is a sendmail run: `mailsandbox sendmail ...`, or the console
    script called through a symlink named sendmail (`argv` None: the process's own)."""
    if argv is None and os.path.basename(sys.argv[0]) == "sendmail":
        return sys.argv[1:]
    args = sys.argv[1:] if argv is None else list(argv)
    return args[1:] if args[:1] == ["sendmail"] else None


def register(sub: object) -> None:
    """The `sendmail` entry in `mailsandbox --help`; its own syntax is parsed by `main`, not argparse."""
    sub.add_parser(  # type: ignore[attr-defined]
        "sendmail", add_help=False, help="sendmail-compatible: read a message on stdin (-t -i -f ...; --help for all)"
    )
