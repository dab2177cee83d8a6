"""mailsandbox send: a tiny sendmail-style client for trying the server by hand."""

from __future__ import annotations

import argparse
import mimetypes
import smtplib
import ssl
import sys
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from email.utils import getaddresses, make_msgid
from pathlib import Path

from mailsandbox.config import parse_listen

DEFAULT_SENDER = "sender@example.test"


def _fail(message: str, code: int) -> int:
    print(f"mailsandbox send: {message}", file=sys.stderr)
    return code


def compose(args: argparse.Namespace, stdin_text: str | None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = args.sender or DEFAULT_SENDER
    to = args.to or args.recipients
    if to:
        msg["To"] = ", ".join(to)
    msg["Subject"] = args.subject or ""
    msg["Message-ID"] = make_msgid(domain="mailsandbox.local")
    msg.set_content(args.body if args.body is not None else (stdin_text or ""))
    if args.html:
        msg.add_alternative(args.html, subtype="html")
    for name in args.attach:
        path = Path(name)
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        maintype, subtype = ctype.split("/", 1)
        msg.add_attachment(path.read_bytes(), maintype=maintype, subtype=subtype, filename=path.name)
    return msg


def _addresses(values: list[str]) -> list[str]:
    # getaddresses of an empty header is [] on some Python patch releases, [("", "")] on others.
    return [address for _name, address in getaddresses(values) if address]


def send(args: argparse.Namespace) -> int:
    try:
        listen = parse_listen(args.server)
    except ValueError as exc:
        return _fail(f"--server {exc}", 2)
    if listen is None:
        return _fail("--server is off: give the sandbox's SMTP HOST:PORT", 2)
    for name in args.attach:
        if not Path(name).is_file():
            return _fail(f"--attach {name}: no such file", 2)
    if args.subject is None and args.body is None and not args.html and not args.attach:
        if sys.stdin.isatty():
            return _fail("type or pipe a whole message on stdin, or compose one with --subject/--body", 2)
        raw = sys.stdin.buffer.read()  # a whole message on stdin, sendmail style
        if not raw.strip():
            return _fail("the message on stdin is empty; pipe one in, or compose one with --subject/--body", 2)
        parsed = BytesParser(policy=default_policy).parsebytes(raw)
        sender = args.sender or next(iter(_addresses([str(parsed.get("From", ""))])), DEFAULT_SENDER)
        heads = [str(v) for k in ("To", "Cc", "Bcc") for v in parsed.get_all(k, [])]
        recipients = args.recipients or list(args.to) or _addresses(heads)  # as --from, --to is asked for
        data: bytes | EmailMessage = raw
    else:
        try:
            msg = compose(args, None)
        except OSError as exc:
            return _fail(f"--attach {exc.filename}: {exc.strerror}", 2)
        sender = args.sender or DEFAULT_SENDER
        recipients = args.recipients or args.to
        data = msg
    if not recipients:
        return _fail("no recipients: name them as arguments, with --to, or in the message's To/Cc/Bcc", 2)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the sandbox's certificate is self-signed
    try:
        client: smtplib.SMTP
        if args.tls:
            client = smtplib.SMTP_SSL(listen.host, listen.port, context=context, timeout=30)
        else:
            client = smtplib.SMTP(listen.host, listen.port, timeout=30)
        with client:
            if args.starttls:
                client.starttls(context=context)
            if args.user:
                client.login(args.user, args.password or "")
            if isinstance(data, EmailMessage):
                refused = client.send_message(data, sender, recipients)
            else:
                refused = client.sendmail(sender, recipients, data)
    except smtplib.SMTPException as exc:
        return _fail(f"{listen} answered: {_smtp_reason(exc)}", 1)
    except OSError as exc:  # refused, unreachable, a name that does not resolve, a TLS failure
        reason = exc.strerror or str(exc) or type(exc).__name__
        return _fail(f"cannot send to {listen} ({reason}); is `mailsandbox serve` running there? (--server)", 1)
    for rcpt, (code, text) in refused.items():
        print(f"refused {rcpt}: {code} {text.decode(errors='replace')}", file=sys.stderr)
    print(f"sent to {len(recipients) - len(refused)} recipient(s)")
    return 0 if not refused else 1


def _smtp_reason(exc: smtplib.SMTPException) -> str:
    code, text = getattr(exc, "smtp_code", None), getattr(exc, "smtp_error", b"")
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return f"{code} {text}".strip() if code else str(exc)
