"""The trace lines and dates we write into mail: one Received: builder (RFC 5321 §4.4) for capture and
every relay hop, and RFC 5322 §3.3 dates with "+0000" for UTC."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from email.utils import format_datetime


def rfc5322_date(epoch: float) -> str:
    """ "Wed, 02 Dec 2026 01:40:00 +0000": UTC is "+0000" (RFC 5322 §3.3; "-0000" means the zone is unknown)."""
    return _second(int(epoch // 1))


@functools.lru_cache(maxsize=4)
def _second(second: int) -> str:  # every message captured in one second has the same date: made once
    return format_datetime(datetime.fromtimestamp(second, UTC))


def with_protocol(*, esmtp: bool, tls: bool = False, auth: bool = False, utf8: bool = False) -> str:
    """The "with" keyword: SMTP after HELO, ESMTP after EHLO, +S for TLS, +A for AUTH (RFC 3848);
    UTF8SMTP, UTF8SMTPS, UTF8SMTPA, UTF8SMTPSA for SMTPUTF8 mail (RFC 6531 §3.7.3)."""
    if utf8:
        base = "UTF8SMTP"
    elif esmtp or tls or auth:  # STARTTLS and AUTH are ESMTP extensions: they imply EHLO
        base = "ESMTP"
    else:
        return "SMTP"
    return base + ("S" if tls else "") + ("A" if auth else "")


def _literal(address: str) -> str:
    return f"IPv6:{address}" if ":" in address else address  # RFC 5321 §4.1.3 address literals


def received_line(
    *,
    helo: str,
    address: str,
    by: str,
    protocol: str,
    queue: str,
    recipient: str | None,
    at: float,
    via: str = "",
    client_name: str = "",
) -> bytes:
    """One trace line: from the client's HELO/EHLO name with its TCP-info (`client_name`, else the HELO
    name, and the address), by the receiving host (and `via`, a comment such as "(Mailsandbox)"),
    with the protocol, id, for the one recipient, then the date."""
    helo = helo or "unknown"
    text = (
        f"Received: from {helo} ({client_name or helo} [{_literal(address)}])\r\n"
        f"\tby {by}{' ' + via if via else ''} with {protocol} id {queue}"
        + (f"\r\n\tfor <{recipient}>" if recipient else "")
        + f"; {rfc5322_date(at)}\r\n"
    )
    return text.encode("utf-8", "replace")
