"""Asyncio adapter for the IMAP core: moves bytes, upgrades to TLS, and wakes sessions on store events."""

from __future__ import annotations

import asyncio
import hmac
import logging
import ssl
from collections.abc import Callable, Mapping, Sequence
from typing import cast

from mailsandbox.events import Event, EventBus, MailboxChanged, MessagesDeleted, MessagesUpdated
from mailsandbox.executors import BoundedExecutor
from mailsandbox.protocols.accounts import Accounts
from mailsandbox.protocols.imap import MAX_LITERAL, MAX_LITERAL_PREAUTH, ImapConnection, MessageCache, RecentTracker
from mailsandbox.protocols.imap.session import Login, State
from mailsandbox.servers._limits import ConnectionLimiter, Listening, Slot, client_address
from mailsandbox.servers._per_store import PerStore
from mailsandbox.servers._starttls import upgrade
from mailsandbox.store import Store, normalize_user
from mailsandbox.throttle import LoginThrottle

log = logging.getLogger(__name__)

AUTOLOGOUT = 30 * 60.0  # RFC 3501 §5.4: at least 30 minutes of inactivity
LOGIN_TIMEOUT = 60.0  # before login a silent connection only holds a place: much shorter
WORKERS = 8  # threads running the sessions' commands, per listener
REFUSAL = b"* BYE [UNAVAILABLE] too many connections\r\n"  # RFC 5530 §3
TOO_MANY_FAILURES = b"* BYE [UNAVAILABLE] too many failed logins, try again later\r\n"
_NOTIFY = object()  # a work item: the store changed under the selected mailbox
# Received bytes waiting for the worker before we stop reading the socket. In bytes, not chunks: uvloop
# hands over up to 256 KB a call, and 64 of those from each of 8 clients sending a 50 MB literal was 100 MB.
_MAX_QUEUED = 1 << 20
# Store changes during a burst reach a session at most this often (one refresh covers them all), so the
# cost of N selected sessions is N refreshes per interval, not N per captured message.
NOTIFY_INTERVAL = 0.1


class ImapShared:
    """State the sessions of one store share: the parsed-message cache and who got \\Recent."""

    def __init__(self) -> None:
        self.cache = MessageCache()
        self.recent = RecentTracker()


# One ImapShared per store, so the plain and implicit-TLS listeners agree on \Recent.
shared_for: PerStore[ImapShared] = PerStore(ImapShared)


def make_login(credentials: Mapping[str, str] | None, access: Mapping[str, Sequence[str]] | None = None) -> Login:
    """Any password for any address by default; with credentials, only the listed pairs, each opening its
    own mailbox or, as `mailbox*account`, one its `access` globs allow (sandbox/protocols/accounts.py)."""
    accounts = Accounts(credentials, access)

    def login(user: str, password: str) -> str | None:
        given = password.encode("utf-8", "surrogateescape")
        return accounts.login(user, lambda secret: hmac.compare_digest(secret.encode("utf-8"), given))

    return login


class ImapProtocol(asyncio.Protocol):
    """One IMAP connection; commands run one at a time on a worker thread, so store writes spare the loop."""

    def __init__(
        self,
        store: Store,
        bus: EventBus,
        shared: ImapShared,
        login: Login,
        ssl_context: ssl.SSLContext | None,
        implicit_tls: bool,
        sessions: set[ImapProtocol],
        max_literal: int = MAX_LITERAL,
        autologout: float = AUTOLOGOUT,
        *,
        executor: BoundedExecutor,
        limiter: ConnectionLimiter | None = None,
        login_timeout: float = LOGIN_TIMEOUT,
        max_literal_preauth: int = MAX_LITERAL_PREAUTH,
        throttle: LoginThrottle | None = None,
    ) -> None:
        self.bus = bus
        self.ssl_context = ssl_context
        self._throttle = throttle
        self._login_failed = False  # set on the worker thread by the login check, read after it on the loop

        def checked_login(user: str, password: str) -> str | None:
            # Past the failed-login limit a login fails unchecked: connections opened before the cut-off
            # cannot go on guessing.
            locked = throttle is not None and throttle.blocked(self._client())
            owner = None if locked else login(user, password)
            self._login_failed = owner is None
            return owner

        self.conn = ImapConnection(
            store,
            login=checked_login,
            tls_available=ssl_context is not None and not implicit_tls,
            tls_active=implicit_tls,
            cache=shared.cache,
            recent=shared.recent,
            notified=True,
            max_literal=max_literal,
            max_literal_preauth=max_literal_preauth,
            log=self._log_error,
        )
        self.transport: asyncio.Transport | None = None
        self._work: asyncio.Queue[bytes | object] = asyncio.Queue()
        self._notify_queued = False  # a notification is queued or waiting for NOTIFY_INTERVAL: the rest join it
        self._notified_at = float("-inf")  # when the last one started (loop time)
        self._writable = asyncio.Event()
        self._writable.set()
        self._worker: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] = lambda: None
        self._autologout = autologout
        self._login_timeout = login_timeout
        self._executor = executor
        self._limiter = limiter
        self._slot: Slot | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._sessions = sessions
        self._reading_paused = False
        self._queued = 0  # bytes of the chunks in _work

    @staticmethod
    def _log_error(what: str, exc: BaseException) -> None:
        log.warning("IMAP %s failed: %r", what, exc)

    # -- asyncio callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        if self.transport is not None:
            self.transport = transport  # start_tls hands us the TLS transport: the session goes on
            return
        self.transport = transport
        if self._limiter is not None:
            self._slot = self._limiter.admit_transport(transport, REFUSAL)
            if self._slot is None:
                return
        if self._throttle is not None and self._throttle.blocked(self._client()):
            transport.write(TOO_MANY_FAILURES)  # too many failed logins from this address lately
            transport.close()
            return
        self._sessions.add(self)
        # Subscribed only now: a TLS handshake that fails never reaches connection_lost to undo it.
        self._unsubscribe = self.bus.subscribe(self._on_event)
        transport.write(self.conn.greeting())
        self._worker = asyncio.get_running_loop().create_task(self._run())
        self._touch()

    def data_received(self, data: bytes) -> None:
        if self._worker is None:
            return  # refused: the goodbye is written, the transport closing
        self._touch()
        self._work.put_nowait(data)
        self._queued += len(data)
        if self._queued > _MAX_QUEUED and self.transport is not None and not self._reading_paused:
            self._reading_paused = True  # a client sending faster than its commands run: stop reading
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        self._work.put_nowait(b"")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._slot is not None:
            self._slot.release()
        self._sessions.discard(self)
        self._unsubscribe()
        if self._timer is not None:
            self._timer.cancel()
        self._work.put_nowait(b"")
        self.transport = None

    def pause_writing(self) -> None:  # a client not reading a big FETCH: stop producing more
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # -- the worker: feeds the core one item at a time ----------------------------------------

    def _on_event(self, event: Event) -> None:
        selected = self.conn.selected
        if selected is None or self._notify_queued:
            return
        if isinstance(event, MailboxChanged):
            relevant = (normalize_user(event.user), event.folder) == selected
        elif isinstance(event, (MessagesUpdated, MessagesDeleted)):
            relevant = self.conn.watches(event.ids)
        else:
            relevant = False
        if relevant:
            self._notify_queued = True
            loop = asyncio.get_running_loop()
            wait = self._notified_at + NOTIFY_INTERVAL - loop.time()
            if wait > 0:
                loop.call_later(wait, self._queue_notify)
            else:
                self._queue_notify()

    def _queue_notify(self) -> None:
        if self.transport is not None:
            self._work.put_nowait(_NOTIFY)

    async def _run(self) -> None:
        while True:
            item = await self._work.get()
            if isinstance(item, bytes):
                self._queued -= len(item)
            if self._reading_paused and self._queued < _MAX_QUEUED // 2 and self.transport is not None:
                self._reading_paused = False
                self.transport.resume_reading()
            if item == b"":
                return
            try:
                if item is _NOTIFY:
                    self._notify_queued = False
                    self._notified_at = asyncio.get_running_loop().time()
                    out = await self._executor.run(self.conn.notify)
                else:
                    assert isinstance(item, bytes)
                    logged_in = self.conn.state is not State.NOT_AUTHENTICATED
                    out = await self._executor.run(self.conn.receive_data, item)
                    if not logged_in and self.conn.state is not State.NOT_AUTHENTICATED:
                        self._touch()  # logged in: the longer autologout timer from now on
            except Exception:
                if self.transport is None or self.transport.is_closing():
                    return  # the server is stopping (its executor is shut down) or the client left
                log.exception("IMAP session failed")  # the core answers bad input itself: this is a bug
                self.shutdown("Internal server error")
                return
            if self._login_failed and await self._penalize():
                await self._send(out + TOO_MANY_FAILURES)
                self._close()
                return
            await self._send(out)
            if self.conn.starttls_requested:
                await self._start_tls()
            if self.conn.closed:
                self._close()
                return

    def _client(self) -> str:
        return client_address(self.transport.get_extra_info("peername")) if self.transport else ""

    async def _penalize(self) -> bool:
        """A failed login: wait out the throttle's delay (this session's commands wait too); True means
        cut the connection."""
        self._login_failed = False
        if self._throttle is None:
            return False
        verdict = self._throttle.failed(self._client(), "IMAP")
        if not verdict.disconnect and verdict.delay > 0:
            await asyncio.sleep(verdict.delay)
        return verdict.disconnect

    def shutdown(self, reason: str) -> None:
        """Say goodbye (RFC 3501 §7.1.5 BYE) and hang up: the server is going away."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"* BYE " + reason.encode("ascii") + b"\r\n")
        self._close()

    async def _send(self, data: bytes) -> None:
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
            await self._writable.wait()

    async def _start_tls(self) -> None:
        transport, context = self.transport, self.ssl_context
        if transport is None or context is None:
            return
        upgraded = await upgrade(transport, self, context, "IMAP STARTTLS")
        if upgraded is None:  # failed (aborted), or the peer went away during the handshake
            self.conn.closed = True
            return
        self.transport = upgraded
        self.conn.tls_started()

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _touch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        before_login = self.conn.state is State.NOT_AUTHENTICATED
        timeout = self._login_timeout if before_login else self._autologout
        self._timer = asyncio.get_running_loop().call_later(timeout, self._expire, before_login)

    def _expire(self, before_login: bool) -> None:
        # RFC 2177 §3: IDLE clients re-issue IDLE within 29 minutes, so an idling session counts too.
        self.shutdown("Login timeout" if before_login else "Autologout; idle for too long")


async def start_imap(
    host: str,
    port: int,
    store: Store,
    bus: EventBus,
    ssl_context: ssl.SSLContext | None = None,
    implicit_tls: bool = False,
    credentials: dict[str, str] | None = None,
    *,
    max_literal: int = MAX_LITERAL,
    max_literal_preauth: int = MAX_LITERAL_PREAUTH,
    limiter: ConnectionLimiter | None = None,
    login_timeout: float = LOGIN_TIMEOUT,
    autologout: float = AUTOLOGOUT,
    workers: int = WORKERS,
    throttle: LoginThrottle | None = None,
    access: Mapping[str, Sequence[str]] | None = None,
) -> Listening:
    """Listen for IMAP: STARTTLS is offered when `ssl_context` is given; implicit_tls speaks TLS at once.

    `max_literal` is the largest literal (and APPEND) after login, `max_literal_preauth` before it;
    `limiter` refuses connections over its limits with `* BYE [UNAVAILABLE]`; a session is logged out
    after `login_timeout` seconds of silence before login and `autologout` after it. Commands run on
    `workers` threads of the listener's own; `throttle` delays failed logins and cuts an address off
    past its limit."""
    if implicit_tls and ssl_context is None:
        raise ValueError("implicit TLS needs an ssl_context")
    loop = asyncio.get_running_loop()
    shared = shared_for(store)
    login = make_login(credentials, access)
    sessions: set[ImapProtocol] = set()
    executor = BoundedExecutor("imap", workers)

    def session() -> ImapProtocol:
        return ImapProtocol(
            store, bus, shared, login, ssl_context, implicit_tls, sessions, max_literal, autologout,
            executor=executor, limiter=limiter, login_timeout=login_timeout,
            max_literal_preauth=max_literal_preauth, throttle=throttle,
        )  # fmt: skip

    server = await loop.create_server(
        session,
        host,
        port,
        ssl=ssl_context if implicit_tls else None,
    )

    def close() -> None:
        # Python 3.11's Server.close leaves accepted connections open (3.13 adds close_clients()).
        for open_session in list(sessions):
            open_session.shutdown("Server shutting down")
        executor.shutdown()

    return Listening(server, close)
