"""SMTP capture: an aiosmtpd handler that commits each message before its 250, and the server factory."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import secrets
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from sandbox.models import Envelope, StoredMessage
from sandbox.store import Store

log = logging.getLogger("mailsandbox.smtp")

# Reply codes (RFC 5321 §4.2.3, enhanced codes RFC 3463).
OK_QUEUED = "250 2.0.0 Ok: queued as {id}"
RCPT_OK = "250 2.1.5 Ok"
TEMP_ERROR = "451 4.3.0 Error: local problem, message not stored; try again"
AUTH_FAILED = "535 5.7.8 Authentication credentials invalid"
BAD_ADDRESS = "501 5.1.3 Bad recipient address syntax"


class RelayHook(Protocol):
    """What the capture path needs from the relay (sandbox/relay): who is local, and a hand-off."""

    def split(self, rcpt_tos: Sequence[str]) -> tuple[list[str], list[str]]: ...

    def accepted(self, message: StoredMessage, queued: Sequence[str]) -> None: ...


@dataclass
class SmtpStats:
    accepted: int = 0
    accepted_size: int = 0
    rejected: int = 0
    errors: int = 0


@dataclass
class CaptureHandler:
    """aiosmtpd hooks (found by name): RCPT, DATA and exceptions."""

    store: Store
    hostname: str
    relay: RelayHook | None = None
    stats: SmtpStats = field(default_factory=SmtpStats)

    async def handle_EHLO(
        self, server: SMTP, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        # aiosmtpd reads commands in order from one buffered stream, so pipelined batches already work
        # (RFC 2920); it just never says so. ENHANCEDSTATUSCODES is not advertised: aiosmtpd's own
        # replies lack enhanced codes, and RFC 2034 requires them on every reply once advertised.
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_MAIL(
        self, server: SMTP, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        # RFC 5321 §4.1.2: Mailbox = Local-part "@" Domain; "<>", the null reverse-path of bounces,
        # must be accepted (§4.5.5). aiosmtpd hands it over with its brackets.
        if address == "<>":
            address = ""
        if address and "@" not in address:
            return "501 5.1.7 Bad sender address syntax"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self, server: SMTP, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if "@" not in address and address.lower() != "postmaster":  # RFC 5321 §4.5.1 postmaster
            return BAD_ADDRESS
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return RCPT_OK

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        content = envelope.original_content or b""
        # Covers STARTTLS and the implicit-TLS port alike (aiosmtpd sets session.ssl only for STARTTLS).
        transport = server.transport
        tls = transport is not None and transport.get_extra_info("ssl_object") is not None
        auth = session.auth_data
        auth_user = None
        if isinstance(auth, LoginPassword):
            auth_user = auth.login.decode("utf-8", "replace")
        elif auth is not None:
            auth_user = str(auth)
        env = Envelope(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            peer=_peer(session.peer),
            helo=session.host_name or "",
            tls=tls,
            auth_user=auth_user,
            smtputf8=bool(envelope.smtp_utf8),
            body_8bit="BODY=8BITMIME" in [o.upper() for o in envelope.mail_options],
        )
        queue_id = secrets.token_hex(6)
        raw = self._received(env, queue_id, session) + content
        local, queued = (list(env.rcpt_tos), []) if self.relay is None else self.relay.split(env.rcpt_tos)
        try:
            message = await self.store.add_message(raw, env, deliver_to=local, queue=queued)
        except Exception:
            log.exception("storing a message failed")
            self.stats.errors += 1
            return TEMP_ERROR  # nothing was committed: the client must keep it and retry
        if self.relay is not None and queued:
            self.relay.accepted(message, queued)
        self.stats.accepted += 1
        self.stats.accepted_size += len(raw)
        return OK_QUEUED.format(id=message.id)

    async def handle_exception(self, error: Exception) -> str:
        # aiosmtpd's default leaks "(ExceptionName) text"; say only that it is our fault and temporary.
        log.exception("SMTP session error", exc_info=error)
        self.stats.errors += 1
        return "451 4.3.0 Error: local problem"

    def _received(self, env: Envelope, queue_id: str, session: Any) -> bytes:
        # RFC 5321 §4.4: the trace line every MTA prepends; "with" per RFC 3848.
        proto = "ESMTP"
        if env.smtputf8:
            proto = "UTF8SMTP"
        if env.tls:
            proto += "S"
        if env.auth_user:
            proto += "A"
        host, _, _port = env.peer.rpartition(":")
        rcpt = env.rcpt_tos[0] if len(env.rcpt_tos) == 1 else None
        line = (
            f"Received: from {env.helo or 'unknown'} ({host.strip('[]') or 'unknown'} [{host.strip('[]')}])\r\n"
            f"\tby {self.hostname} (Mailsandbox) with {proto} id {queue_id}"
            + (f"\r\n\tfor <{rcpt}>" if rcpt else "")
            + f"; {email.utils.formatdate(localtime=False)}\r\n"
        )
        return line.encode("utf-8", "replace")


def _peer(peer: Any) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = str(peer[0])
        return f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"
    return str(peer or "")


def make_authenticator(credentials: dict[str, str] | None) -> Callable[..., AuthResult]:
    """Any login works and is recorded unless real credentials are configured (535 on a mismatch)."""

    def authenticator(server: SMTP, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        if credentials is None:
            return AuthResult(success=True, auth_data=auth_data)
        user = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        if user in credentials and secrets.compare_digest(credentials[user], password):
            return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False, message=AUTH_FAILED)

    return authenticator


@dataclass
class SmtpOptions:
    hostname: str
    max_message_size: int
    tls_context: ssl.SSLContext | None = None
    require_tls: bool = False
    credentials: dict[str, str] | None = None
    allow_insecure_auth: bool = False


def smtp_factory(handler: CaptureHandler, options: SmtpOptions, implicit_tls: bool = False) -> Callable[[], SMTP]:
    def factory() -> SMTP:
        smtp = SMTP(
            handler,
            data_size_limit=options.max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=options.hostname,
            ident="Mailsandbox ESMTP",
            # With implicit TLS the transport is already encrypted; STARTTLS is offered only on plain ports.
            tls_context=None if implicit_tls else options.tls_context,
            require_starttls=options.require_tls and not implicit_tls,
            auth_required=False,
            # On the implicit-TLS port the whole connection is encrypted already.
            auth_require_tls=not (options.allow_insecure_auth or implicit_tls),
            authenticator=make_authenticator(options.credentials),
            timeout=300,
        )
        return smtp

    return factory


async def start_smtp(
    host: str,
    port: int,
    handler: CaptureHandler,
    options: SmtpOptions,
    implicit_tls: bool = False,
) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    ssl_context = options.tls_context if implicit_tls else None
    return await loop.create_server(
        smtp_factory(handler, options, implicit_tls), host=host, port=port, ssl=ssl_context, reuse_address=True
    )
