"""Delivery status notifications (RFC 3464): the bounce, or delay warning, sent back to the sender."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from mailsandbox import mime
from mailsandbox.received import rfc5322_date

Action = Literal["failed", "delayed", "delivered", "relayed", "expanded"]  # RFC 3464 §2.3.3


@dataclass(frozen=True)
class RecipientStatus:
    """One per-recipient block of a delivery-status report (RFC 3464 §2.3)."""

    recipient: str
    action: Action
    status: str  # RFC 3463 "5.1.1"
    diagnostic: str | None = None  # the SMTP reply, e.g. "550 5.1.1 User unknown"
    remote_mta: str | None = None
    last_attempt: float | None = None
    will_retry_until: float | None = None


_date = rfc5322_date


def header_block(raw: bytes) -> bytes:
    """The header section of a message, CRLF line ends, without the blank line."""
    head = mime.Message(raw).header.raw.replace(b"\r\n", b"\n").rstrip(b"\n")
    return b"\r\n".join(head.split(b"\n")) + b"\r\n" if head else b""


def _is_ascii(data: bytes | str) -> bool:
    return (data.encode("utf-8") if isinstance(data, str) else data).isascii()


def _address_field(name: str, address: str) -> str:
    # RFC 3464 §2.3.2 with RFC 6533 §3: "utf-8" addresses once anything is non-ASCII.
    return f"{name}: rfc822; {address}" if _is_ascii(address) else f"{name}: utf-8; {address}"


def build_dsn(
    *,
    hostname: str,
    original: bytes,
    sender: str,
    arrival: float,
    recipients: Sequence[RecipientStatus],
    now: float,
) -> bytes:
    """A multipart/report; report-type=delivery-status (RFC 3464 §2, RFC 6522) from MAILER-DAEMON.

    Parts: a human-readable explanation, the machine-readable message/delivery-status, and the
    original's header section (text/rfc822-headers). Send it with the null reverse path
    (RFC 5321 §4.5.5) so that it can never bounce in turn.
    """
    delayed = all(r.action == "delayed" for r in recipients)
    head = header_block(original)
    utf8 = not (_is_ascii(head) and all(_is_ascii(r.recipient) for r in recipients) and _is_ascii(sender))
    token = hashlib.sha256(original[:4096] + repr((sender, now, recipients)).encode()).hexdigest()
    boundary = f"=_dsn_{token[:24]}"
    header = mime.Header(head)
    subject = header.unicode("Subject").strip()  # unfolded, still in its encoded-word form if it had one
    original_id = header.unicode("Message-ID").strip()

    headers = [
        f"From: Mail Delivery System <MAILER-DAEMON@{hostname}>",
        f"To: <{sender}>",
        ("Subject: Mail delivery delayed" if delayed else "Subject: Mail delivery failed")
        + (f": {subject}" if subject and _is_ascii(subject) else ""),
        f"Date: {_date(now)}",
        f"Message-ID: <{token[24:48]}.dsn@{hostname}>",
        "Auto-Submitted: auto-replied",  # RFC 3834 §5: automatic, so no one auto-replies to it
        "MIME-Version: 1.0",
        # RFC 6533 §6 gives the types for reports about internationalized mail.
        "Content-Type: multipart/report; "
        f'report-type={"global-delivery-status" if utf8 else "delivery-status"}; boundary="{boundary}"',
    ]
    if original_id.startswith("<") and original_id.endswith(">") and original_id.isascii():
        headers.append("References: " + original_id)

    human = _human(hostname, recipients, delayed)
    # RFC 3464 §2.2: per-message fields, a blank line, then one block per recipient (§2.3).
    fields = [f"Reporting-MTA: dns; {hostname}", f"Arrival-Date: {_date(arrival)}", ""]
    for item in recipients:
        fields.append(_address_field("Final-Recipient", item.recipient))
        fields.append(f"Action: {item.action}")
        fields.append(f"Status: {item.status}")
        if item.remote_mta:
            fields.append(f"Remote-MTA: dns; {item.remote_mta}")
        if item.diagnostic:
            fields.append(f"Diagnostic-Code: smtp; {item.diagnostic}")
        if item.last_attempt is not None:
            fields.append(f"Last-Attempt-Date: {_date(item.last_attempt)}")
        if item.will_retry_until is not None:
            fields.append(f"Will-Retry-Until: {_date(item.will_retry_until)}")
        fields.append("")
    status_type = "message/global-delivery-status" if utf8 else "message/delivery-status"
    headers_type = "message/global-headers" if utf8 else "text/rfc822-headers"  # RFC 6533 §6.3 / RFC 6522 §4

    out = "\r\n".join(headers).encode() + b"\r\n\r\n"
    out += b"This is a MIME-encapsulated delivery status notification (RFC 3464).\r\n\r\n"
    out += f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n".encode()
    out += b"Content-Transfer-Encoding: 8bit\r\n"
    out += b"Content-Description: Notification\r\n\r\n" + human.encode() + b"\r\n"
    out += f"--{boundary}\r\nContent-Type: {status_type}\r\n".encode()
    out += b"Content-Description: Delivery report\r\n\r\n" + "\r\n".join(fields).encode() + b"\r\n"
    out += f"--{boundary}\r\nContent-Type: {headers_type}\r\n".encode()
    if not _is_ascii(head):
        out += b"Content-Transfer-Encoding: 8bit\r\n"
    out += b"Content-Description: Headers of the original message\r\n\r\n" + head + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out


def _human(hostname: str, recipients: Sequence[RecipientStatus], delayed: bool) -> str:
    if delayed:
        intro = (
            f"The mail system at {hostname} has not yet been able to deliver your message\r\n"
            "to the recipients below. It keeps trying; you need not send it again.\r\n"
        )
    else:
        intro = (
            f"The mail system at {hostname} gave up delivering your message to the\r\n"
            "recipients below. The report that follows says why.\r\n"
        )
    lines = [intro]
    for item in recipients:
        reason = item.diagnostic or item.status
        where = f" (answer from {item.remote_mta})" if item.remote_mta else ""
        lines.append(f"<{item.recipient}>: {reason}{where}")
    return "\r\n".join(lines) + "\r\n"
