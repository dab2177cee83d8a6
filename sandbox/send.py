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

from sandbox.config import parse_listen


def compose(args: argparse.Namespace, stdin_text: str | None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = args.sender or "sender@example.test"
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


def send(args: argparse.Namespace) -> int:
    listen = parse_listen(args.server)
    if listen is None:
        print("mailsandbox send: --server is required", file=sys.stderr)
        return 2
    if args.subject is None and args.body is None and not args.html and not args.attach:
        raw = sys.stdin.buffer.read()  # a whole message on stdin, sendmail style
        parsed = BytesParser(policy=default_policy).parsebytes(raw)
        sender = args.sender or getaddresses([str(parsed.get("From", ""))])[0][1] or "sender@example.test"
        heads = [str(v) for k in ("To", "Cc", "Bcc") for v in parsed.get_all(k, [])]
        recipients = args.recipients or [a for _n, a in getaddresses(heads) if a]
        data: bytes | EmailMessage = raw
    else:
        msg = compose(args, None)
        sender = args.sender or "sender@example.test"
        recipients = args.recipients or args.to
        data = msg
    if not recipients:
        print("mailsandbox send: no recipients", file=sys.stderr)
        return 2
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
    except (OSError, smtplib.SMTPException) as exc:
        print(f"mailsandbox send: {exc}", file=sys.stderr)
        return 1
    for rcpt, (code, text) in refused.items():
        print(f"refused {rcpt}: {code} {text.decode(errors='replace')}", file=sys.stderr)
    print(f"sent to {len(recipients) - len(refused)} recipient(s)")
    return 0 if not refused else 1
