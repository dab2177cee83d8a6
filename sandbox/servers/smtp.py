"""SMTP capture: the asyncio adapter for the SMTP core, and the handler that commits each message before its 250."""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import ssl
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from mailsandbox.chaos import Chaos
from mailsandbox.latency import Latency
from mailsandbox.models import Envelope, StoredMessage
from mailsandbox.protocols.smtp import (
    AUTH_FAILED,
    TEMP_ERROR,
    TOO_MANY_CONNECTIONS,
    TOO_MANY_FAILURES,
    CloseRequested,
    Event,
    Hold,
    LoginFailed,
    MessageReceived,
    Reply,
    SmtpConnection,
    StartTlsRequested,
    State,
)
from mailsandbox.received import received_line, with_protocol
from mailsandbox.servers._limits import ConnectionLimiter, Slot, client_address
from mailsandbox.servers._penalty import LoginPenalty
from mailsandbox.servers._starttls import upgrade
from mailsandbox.store import DuplicateMessage, Store
from mailsandbox.throttle import LoginThrottle

log = logging.getLogger("mailsandbox.smtp")

IDLE_TIMEOUT = 300.0  # RFC 5321 §4.5.3.2.7: the server waits at least 5 minutes for the next command
# Pipelined input held unread while a message commits; beyond it, stop reading. Content being received is
# consumed as it arrives (bounded by the message size limit), so it never counts here.
MAX_BUFFERED = 1 << 20
# Queue IDs for the Received: line: unique within a run without a urandom syscall per message.
_QUEUE_PREFIX = secrets.token_hex(3).upper()
_queue_numbers = itertools.count(1)


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
    ignored: int = 0  # duplicates of a stored Message-ID (--ignore-duplicate-ids): answered 250, not stored
    # add_message to its commit, as the client waits for it (/metrics' store write latency)
    store_latency: Latency = field(default_factory=Latency)


@dataclass
class CaptureHandler:
    """Turns a received message into a stored one: envelope, our Received: line, commit, relay hand-off."""

    store: Store
    hostname: str
    relay: RelayHook | None = None
    stats: SmtpStats = field(default_factory=SmtpStats)

    async def handle_message(self, event: MessageReceived, peer: str) -> bytes:
        """The reply to the end of DATA: 250 only once the message is committed (a kill -9 keeps it)."""
        txn = event.transaction
        env = Envelope(
            mail_from=txn.mail_from,
            rcpt_tos=tuple(txn.rcpt_tos),
            peer=peer,
            helo=event.helo,
            tls=event.tls,
            auth_user=event.auth_user,
            smtputf8=txn.smtputf8,
            body_8bit=txn.body_8bit,
        )
        try:
            message = await self.capture(env, event.take(), esmtp=event.esmtp)
        except DuplicateMessage:  # as Mailpit: the client hears success, the copy is dropped
            return b"250 2.0.0 Ok: duplicate Message-ID ignored\r\n"
        except Exception:
            return TEMP_ERROR  # nothing was committed: the client must keep it and retry
        return f"250 2.0.0 Ok: queued as {message.id}\r\n".encode()

    async def capture(self, env: Envelope, content: list[bytes], via: str = "", esmtp: bool = True) -> StoredMessage:
        """The one way mail enters (SMTP, the send API): our Received: line, commit, relay hand-off,
        counted. `via` names a protocol other than SMTP for the Received: line's "with" (`esmtp`: the
        client said EHLO, not HELO). Raises
        DuplicateMessage (counted as ignored), or whatever made the commit fail."""
        # The trace line and the content's pieces: the store joins them once (off the loop when large).
        queue_id = f"{_QUEUE_PREFIX}{next(_queue_numbers):06X}"
        parts = [self._received(env, esmtp, queue_id, via), *content]
        content.clear()  # `parts` holds the pieces now, and the store lets go of them once it has joined them
        size = sum(map(len, parts))
        try:
            local, queued = (list(env.rcpt_tos), []) if self.relay is None else self.relay.split(env.rcpt_tos)
            started = time.perf_counter()
            message = await self.store.add_message(parts, env, deliver_to=local, queue=queued)
            self.stats.store_latency.observe(time.perf_counter() - started)
        except DuplicateMessage as exc:
            log.info("ignored a duplicate of Message-ID %s", exc.message_id)
            self.stats.ignored += 1
            raise
        except Exception:
            log.exception("storing a message failed")
            self.stats.errors += 1
            raise
        if self.relay is not None and queued:
            try:  # committed, with its queue rows: the relay's next pass finds it even if this hand-off fails
                self.relay.accepted(message, queued)
            except Exception:
                log.exception("handing a message to the relay failed")
        self.stats.accepted += 1
        self.stats.accepted_size += size
        return message

    def _received(self, env: Envelope, esmtp: bool, queue_id: str, via: str = "") -> bytes:
        # RFC 5321 §4.4: the trace line every MTA prepends; "with" per RFC 3848 and RFC 6531 §3.7.3.
        protocol = via or with_protocol(esmtp=esmtp, tls=env.tls, auth=bool(env.auth_user), utf8=env.smtputf8)
        host = env.peer.rpartition(":")[0].strip("[]")
        rcpt = env.rcpt_tos[0] if len(env.rcpt_tos) == 1 else None
        return received_line(helo=env.helo, address=host, client_name=host or "unknown", by=self.hostname,
                             via="(Mailsandbox)", protocol=protocol, queue=queue_id, recipient=rcpt,
                             at=time.time())  # fmt: skip


@dataclass
class SmtpOptions:
    hostname: str
    max_message_size: int
    tls_context: ssl.SSLContext | None = None
    require_tls: bool = False
    credentials: dict[str, str] | None = None
    allow_insecure_auth: bool = False
    require_auth: bool = False  # MAIL only after a successful AUTH (530 5.7.0 before)
    idle_timeout: float = IDLE_TIMEOUT
    throttle: LoginThrottle | None = None  # failed logins: a growing delay, then a disconnect
    chaos: Chaos | None = None  # faults on purpose (--enable-chaos): asked at each stage of a session


class SmtpProtocol(asyncio.Protocol):
    """One SMTP connection: feeds the core, writes its replies in one write per read, stores messages."""

    def __init__(
        self, handler: CaptureHandler, options: SmtpOptions, implicit_tls: bool,
        limiter: ConnectionLimiter | None = None,
    ) -> None:  # fmt: skip
        self.handler = handler
        self.options = options
        # Chaos is fixed on or off at start: off, the core gets no hook and the adapter asks nothing.
        self._chaos = options.chaos if options.chaos is not None and options.chaos.enabled else None
        self._client = ""
        self._cut_checked: object = None  # the transaction whose DATA was asked about a disconnect
        self._limiter = limiter
        self._slot: Slot | None = None
        self._refused = False
        self.conn = SmtpConnection(
            options.hostname,
            max_message_size=options.max_message_size,
            # With implicit TLS the transport is already encrypted; STARTTLS is offered only on plain ports.
            tls_available=options.tls_context is not None and not implicit_tls,
            tls_active=implicit_tls,
            require_tls=options.require_tls and not implicit_tls,
            credentials=options.credentials,
            allow_insecure_auth=options.allow_insecure_auth,
            require_auth=options.require_auth,
            fault=self._fault if self._chaos is not None else None,
            locked_out=lambda: self._penalty.blocked(),  # the penalty is made below, the lambda runs later
        )
        self.transport: asyncio.Transport | None = None
        self._penalty = LoginPenalty(options.throttle, "SMTP", lambda: self.transport, self._resume_reading)
        self.peer = ""
        self._loop = asyncio.get_running_loop()
        self._last_active = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._paused = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._tls_pending: bytearray | None = None  # what came through TLS before `tls_started`

    # -- asyncio callbacks -------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        self.transport = transport
        peername = transport.get_extra_info("peername")
        if self._limiter is not None:
            self._slot = self._limiter.admit_transport(transport, TOO_MANY_CONNECTIONS)
            if self._slot is None:  # over the listener's or this client's connection limit
                self._refused = True
                return
        if self._penalty.blocked():  # too many failed logins from this address lately
            self._refused = True
            transport.write(TOO_MANY_FAILURES)
            transport.close()
            return
        self.peer = _peer(peername)
        self._client = client_address(peername)
        self._last_active = self._loop.time()
        self._timer = self._loop.call_later(self.options.idle_timeout, self._check_idle)
        fault = self._chaos.check("greeting", self._client) if self._chaos is not None else None
        if fault is not None:
            self._penalty.hold(fault.delay)
            if fault.reply is not None:  # refused at the greeting: say why, then hang up
                self._refused = True
                self._write([fault.reply])
                self._close()
                return
        self._process(self.conn.greeting())

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._last_active = self._loop.time()
        if self._chaos is not None and self._cut_mid_data():
            return
        if self._tls_pending is not None:
            # The handshake is done but _start_tls has not resumed yet (a client's first command may share
            # a segment with its Finished): hold it, or tls_started would drop it as if sent in clear.
            self._tls_pending += data
            return
        self._process(self.conn.receive_data(data))
        if self.conn.buffered > MAX_BUFFERED and not self._paused and self.transport is not None:
            self._paused = True  # a client pipelining far ahead of our commits: stop reading for a while
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        self.conn.receive_data(b"")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        # A message already handed to the store still commits; only its 250 has nowhere to go.
        self.conn.receive_data(b"")
        if self._timer is not None:
            self._timer.cancel()
        if self._slot is not None:
            self._slot.release()
        self._penalty.cancel()
        self.transport = None

    # -- driving the core -------------------------------------------------------
    def _process(self, events: list[Event]) -> None:
        out: list[bytes] = []
        try:
            for event in events:
                if isinstance(event, Reply):
                    out.append(event.data)
                elif isinstance(event, MessageReceived):
                    self._spawn(self._store(event))
                elif isinstance(event, StartTlsRequested):
                    self._write(out)
                    self._spawn(self._start_tls())
                elif isinstance(event, CloseRequested):
                    self._write(out)
                    self._close()
                elif isinstance(event, Hold):
                    self._write(out)
                    self._penalty.hold(event.seconds)
                elif isinstance(event, LoginFailed):
                    self._write(out)  # replies before it go now; its 535 and the rest wait out the delay
                    if self._penalty.failed():
                        self._write([AUTH_FAILED, TOO_MANY_FAILURES])
                        self._close()
                        return
        except Exception:
            # The core never raises on input; this is a programming error: don't leak it, don't go on.
            log.exception("SMTP session failed")
            self.handler.stats.errors += 1
            out.append(b"421 4.3.0 Error: local problem, closing connection\r\n")
            self._write(out)
            self._close()
        self._write(out)

    async def _store(self, event: MessageReceived) -> None:
        fault = None
        if self._chaos is not None:
            txn = event.transaction
            fault = self._chaos.check("message", self._client, txn.mail_from, txn.rcpt_tos)
            if fault is not None and fault.delay:
                await asyncio.sleep(fault.delay)  # a slow server: a loop timer, nothing blocks
        if fault is not None and fault.reply is not None:
            event.take()  # refused after DATA: nothing is stored
            self.handler.stats.rejected += 1
            reply = fault.reply
        else:
            reply = await self.handler.handle_message(event, self.peer)
        self._last_active = self._loop.time()
        try:
            events = self.conn.message_stored(reply)
        except Exception:  # a core bug: never leave the client waiting for an answer that cannot come
            log.exception("SMTP session failed after a message")
            events = [Reply(b"421 4.3.0 Error: local problem, closing connection\r\n"), CloseRequested()]
        self._process(events)
        if self._paused and self.transport is not None and self.conn.buffered <= MAX_BUFFERED:
            self._paused = False
            self._resume_reading()

    def _resume_reading(self) -> None:
        # Both the pipelining bound and a failed login's delay pause reading: resume when neither holds.
        if self.transport is not None and not self._paused and not self._penalty.holding:
            self.transport.resume_reading()

    async def _start_tls(self) -> None:
        transport, context = self.transport, self.options.tls_context
        if transport is None or context is None:
            return
        if self._chaos is not None and self._chaos.check("tls", self._client) is not None:
            transport.abort()  # the handshake fails: the client's ClientHello meets a closed socket
            return
        self._tls_pending = bytearray()  # start_tls swaps the protocol before it first awaits
        new = await upgrade(transport, self, context, "SMTP STARTTLS")
        if new is None:
            return
        self.transport = new
        pending, self._tls_pending = self._tls_pending, None
        self._process(self.conn.tls_started())
        if pending:
            self.data_received(bytes(pending))

    def _check_idle(self) -> None:
        # One timer per connection, re-armed for the remainder, instead of a new timer per read.
        idle = self._loop.time() - self._last_active
        if idle >= self.options.idle_timeout and not self._tasks:
            self._process(self.conn.timed_out())
        elif self.transport is not None:  # a commit still running counts as activity: wait a full period
            wait = self.options.idle_timeout - idle if idle < self.options.idle_timeout else self.options.idle_timeout
            self._timer = self._loop.call_later(wait, self._check_idle)

    # -- chaos ----------------------------------------------------------------------
    def _fault(self, stage: str, sender: str, recipients: Sequence[str]) -> tuple[bytes | None, float] | None:
        assert self._chaos is not None
        fault = self._chaos.check(stage, self._client, sender, recipients)
        return None if fault is None else (fault.reply, fault.delay)

    def _cut_mid_data(self) -> bool:
        """Content is arriving: once per transaction, ask whether to drop the connection right here."""
        txn = self.conn.transaction
        if self.conn.state not in (State.DATA, State.BDAT) or txn is None or txn is self._cut_checked:
            return False
        self._cut_checked = txn
        assert self._chaos is not None
        if self._chaos.check("disconnect", self._client, txn.mail_from, txn.rcpt_tos) is None:
            return False
        self._refused = True
        if self.transport is not None:
            self.transport.abort()
        return True

    # -- small helpers ------------------------------------------------------------
    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _write(self, out: list[bytes]) -> None:
        if out:
            self._penalty.write(out[0] if len(out) == 1 else b"".join(out))
        out.clear()

    def _close(self) -> None:
        self._penalty.close()


def _peer(peer: object) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = str(peer[0])
        return f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"
    return str(peer or "")


async def start_smtp(
    host: str,
    port: int,
    handler: CaptureHandler,
    options: SmtpOptions,
    implicit_tls: bool = False,
    limiter: ConnectionLimiter | None = None,
) -> asyncio.Server:
    """Listen for SMTP on host:port (port 0: any free port); `implicit_tls` speaks TLS from the first byte;
    `limiter` refuses connections over its limits with 421."""
    loop = asyncio.get_running_loop()
    ssl_context = options.tls_context if implicit_tls else None
    return await loop.create_server(
        lambda: SmtpProtocol(handler, options, implicit_tls, limiter),
        host=host, port=port, ssl=ssl_context, reuse_address=True,
    )  # fmt: skip
