"""Release (opt in, as Mailpit has it): send a captured message on to a real upstream SMTP server."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mailsandbox.executors import BoundedExecutor, ExecutorBusy
from mailsandbox.relay.release_addresses import AddressError, Mailbox, parse_recipient, wire_data
from mailsandbox.store import Store

# An upstream that accepts and never answers holds a thread for `timeout` seconds per socket operation:
# releases get threads of their own, and a bounded queue, so they can never hold up IMAP or the relay.
RELEASE_WORKERS = 4
RELEASE_PENDING = 16


class ReleaseError(Exception):
    """Why a release did not happen; `status` is the HTTP status the API answers with."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# Each also derives from a builtin, so the web layer can tell them apart without importing the relay.
class ReleaseForbidden(ReleaseError, PermissionError):
    status = 403


class ReleaseInvalid(ReleaseError, ValueError):
    status = 400


class ReleaseFailed(ReleaseError, ConnectionError):
    status = 502


@dataclass(frozen=True)
class ReleaseSettings:
    """config["release"]: where released mail goes; off unless `host` is set."""

    host: str
    port: int = 25
    starttls: bool = False
    tls: bool = False  # implicit TLS from the first byte (RFC 8314 §3.3), usually port 465
    username: str | None = None
    password: str | None = None
    allowed: tuple[str, ...] = ("*",)  # recipient globs that may be released to
    return_path: str | None = None  # MAIL FROM for released mail; default: the original sender
    ca_file: str | None = None  # trust this CA instead of the system's (a private upstream)
    insecure: bool = False  # skip certificate checks (a self-signed upstream in a lab)
    timeout: float = 30.0  # smtplib's: for the connect and for every read and write
    helo: str | None = None
    # percent hack, source routes (ignored, RFC 5321 §3.3), bang paths, quoted local parts holding "@"
    allow_unusual_recipients: bool = False

    @classmethod
    def from_config(cls, data: Mapping[str, Any] | None) -> ReleaseSettings | None:
        if not data or not data.get("host"):
            return None
        items = {str(k).lower().replace("-", "_"): v for k, v in data.items()}
        allowed = items.get("allowed", ["*"])
        if isinstance(allowed, str):
            allowed = [a for a in allowed.split(",") if a.strip()]
        tls = _flag(items.get("tls", False))
        return cls(
            host=str(items["host"]),
            port=int(items.get("port", 465 if tls else 25)),
            starttls=_flag(items.get("starttls", False)),
            tls=tls,
            username=items.get("username") or None,
            password=items.get("password") or None,
            allowed=tuple(str(a).strip().lower() for a in allowed),
            return_path=items.get("return_path"),
            ca_file=items.get("ca_file"),
            insecure=_flag(items.get("insecure", False)),
            timeout=float(items.get("timeout", 30.0)),
            helo=items.get("helo"),
            allow_unusual_recipients=_flag(items.get("allow_unusual_recipients", False)),
        )

    def permits(self, recipient: Mailbox) -> bool:
        return any(recipient.matches(pattern) for pattern in self.allowed)


def _flag(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes", "on")


def check_recipients(settings: ReleaseSettings | None, recipients: Any) -> list[str]:
    """The validated recipient list, or ReleaseError: 403 when release is off or a recipient is not
    allowed, 400 when the list is empty or holds something that is not an address. The texts are
    Mailpit's (server/apiv1/release.go) for the same mistakes; the routing tricks are ours."""
    if settings is None:
        raise ReleaseForbidden("release is not configured (set [release] host = ... in the config)")
    if not isinstance(recipients, list):
        raise ReleaseInvalid('give the recipients as {"To": ["someone@example.com", ...]}')
    if not recipients:
        raise ReleaseInvalid("No valid addresses found")
    out: list[str] = []
    refused: list[str] = []
    for value in recipients:
        try:
            mailbox = parse_recipient(value) if isinstance(value, str) else None
        except AddressError:
            mailbox = None
        if mailbox is None:
            raise ReleaseInvalid(f"Invalid email address: {value}")
        if mailbox.unusual and not settings.allow_unusual_recipients:
            raise ReleaseForbidden(
                f"{value!r} uses {' and '.join(mailbox.unusual)}, which an upstream may route elsewhere"
                " (allow_unusual_recipients = true in [release] permits it)"
            )
        if not settings.permits(mailbox):
            refused.append(value)  # Mailpit names every refused recipient, as given, in one answer
        out.append(str(mailbox))
    if refused:
        noun = "Address" if len(refused) == 1 else "Addresses"
        raise ReleaseForbidden(f"{len(refused)} {noun} do not match the allowlist: {', '.join(refused)}")
    return out


def _context(settings: ReleaseSettings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=settings.ca_file)
    if settings.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _send(settings: ReleaseSettings, raw: bytes, sender: str, recipients: Sequence[str]) -> str:
    client: smtplib.SMTP
    if settings.tls:
        client = smtplib.SMTP_SSL(
            settings.host,
            settings.port,
            local_hostname=settings.helo,
            timeout=settings.timeout,
            context=_context(settings),
        )
    else:
        client = smtplib.SMTP(settings.host, settings.port, local_hostname=settings.helo, timeout=settings.timeout)
    with client:
        client.ehlo()
        if settings.starttls:
            client.starttls(context=_context(settings))  # RFC 3207; smtplib says EHLO again after it
            client.ehlo()
        if settings.username:
            client.login(settings.username, settings.password or "")
        options: list[str] = []
        if not raw.isascii() and client.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")  # RFC 6152
        if not (sender.isascii() and all(r.isascii() for r in recipients)):
            options.append("SMTPUTF8")  # RFC 6531 §3.4
        refused = _transaction(client, sender, recipients, raw, options)
        code, text = client.noop()
    if refused:
        return "accepted for some: " + "; ".join(
            f"{r}: {c} {m.decode(errors='replace')}" for r, (c, m) in refused.items()
        )
    return f"{code} {text.decode(errors='replace')}"


def _transaction(
    client: smtplib.SMTP, sender: str, recipients: Sequence[str], raw: bytes, options: Sequence[str]
) -> dict[str, tuple[int, bytes]]:
    """MAIL, RCPT and DATA by hand: smtplib's sendmail re-parses addresses (email.utils) and stuffs dots
    only after LF, so a bare CR before a dot would reach the upstream as it is."""
    code, text = client.docmd("MAIL", f"FROM:<{sender}>" + "".join(" " + o for o in options))
    if code != 250:
        client.rset()
        raise smtplib.SMTPSenderRefused(code, text, sender)
    refused: dict[str, tuple[int, bytes]] = {}
    for recipient in recipients:
        code, text = client.docmd("RCPT", f"TO:<{recipient}>")
        if code not in (250, 251):
            refused[recipient] = (code, text)
    if len(refused) == len(recipients):
        client.rset()
        raise smtplib.SMTPRecipientsRefused(refused)
    code, text = client.docmd("DATA")
    if code != 354:
        client.rset()
        raise smtplib.SMTPDataError(code, text)
    client.send(wire_data(raw))
    code, text = client.getreply()
    if code != 250:
        raise smtplib.SMTPDataError(code, text)
    return refused


async def release_message(
    settings: ReleaseSettings | None,
    raw: bytes,
    sender: str,
    recipients: Any,
    executor: BoundedExecutor | None = None,
) -> tuple[list[str], str]:
    """Check the recipients, then send `raw` upstream over a blocking smtplib session in a thread
    (of `executor`, else asyncio's default). Returns (recipients, the upstream's last reply); raises a
    ReleaseError."""
    addresses = check_recipients(settings, recipients)
    assert settings is not None
    mail_from = settings.return_path if settings.return_path is not None else sender
    try:
        if executor is None:
            reply = await asyncio.to_thread(_send, settings, raw, mail_from, addresses)
        else:
            reply = await executor.run(_send, settings, raw, mail_from, addresses)
    except ExecutorBusy:
        raise ReleaseFailed(f"{RELEASE_PENDING} releases are already in progress; try again later") from None
    except smtplib.SMTPRecipientsRefused as exc:
        detail = "; ".join(f"{r}: {c} {m.decode(errors='replace')}" for r, (c, m) in exc.recipients.items())
        raise ReleaseFailed(f"upstream refused every recipient: {detail}") from None
    except smtplib.SMTPResponseException as exc:
        error = exc.smtp_error
        text = error.decode(errors="replace") if isinstance(error, bytes) else str(error)
        raise ReleaseFailed(f"upstream said {exc.smtp_code} {text}") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise ReleaseFailed(f"upstream {settings.host}:{settings.port}: {exc}") from None
    return addresses, reply


class Releaser:
    """POST /api/v1/message/{ID}/release: the stored raw message, its envelope sender, the settings."""

    def __init__(self, store: Store, settings: Mapping[str, Any] | ReleaseSettings | None) -> None:
        self.store = store
        if not isinstance(settings, ReleaseSettings | None):
            settings = ReleaseSettings.from_config(settings)
        self.settings = settings
        self._executor = BoundedExecutor("release", RELEASE_WORKERS, max_pending=RELEASE_PENDING)

    async def close(self) -> None:
        self._executor.shutdown()

    async def release(self, message_id: str, recipients: Any) -> dict[str, Any]:
        """Raises KeyError for an unknown message, ReleaseError (PermissionError, ValueError or
        ConnectionError too) when release is off, not allowed, malformed or the upstream failed."""
        message = self.store.get(message_id)
        if message is None:
            raise KeyError(message_id)
        raw = self.store.raw(message.id)
        sent, reply = await release_message(self.settings, raw, message.envelope.mail_from, recipients, self._executor)
        assert self.settings is not None
        return {"ID": message.id, "To": sent, "Upstream": f"{self.settings.host}:{self.settings.port}", "Reply": reply}
