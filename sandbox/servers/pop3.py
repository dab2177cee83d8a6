"""Asyncio adapter for the POP3 core: moves bytes, answers its requests from the Store."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import ssl
import threading
from collections import deque
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, cast

from mailsandbox.executors import BoundedExecutor
from mailsandbox.protocols.pop3 import (
    CRLF,
    ERR_AUTH,
    ERR_IN_USE,
    ERR_SYS_TEMP,
    ERR_TOO_MANY_FAILURES,
    CloseRequested,
    Event,
    LoginFailed,
    MaildropItem,
    MaildropRequested,
    MessageRequested,
    Pop3Connection,
    Reply,
    StartTlsRequested,
    State,
    UpdateRequested,
)
from mailsandbox.servers._limits import ConnectionLimiter, Listening, Slot
from mailsandbox.servers._penalty import LoginPenalty
from mailsandbox.servers._per_store import PerStore
from mailsandbox.servers._starttls import upgrade
from mailsandbox.store import Store, StoreError, normalize_user
from mailsandbox.throttle import LoginThrottle

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 600.0  # RFC 1939 §3: an autologout timer of at least 10 minutes
LOGIN_TIMEOUT = 60.0  # before login a silent connection only holds a place: much shorter
WORKERS = 4  # threads for the store calls of one listener's sessions
REFUSAL = b"-ERR [SYS/TEMP] too many connections\r\n"  # RFC 3206 §4: try again later


class MaildropLocks:
    """The exclusive-access locks of RFC 1939 §4, shared by every POP3 listener of one store."""

    def __init__(self) -> None:
        self._held: set[str] = set()
        self._mutex = threading.Lock()  # a SandboxThread and a test thread may share one store

    def acquire(self, user: str) -> bool:
        with self._mutex:
            if user in self._held:
                return False
            self._held.add(user)
            return True

    def release(self, user: str) -> None:
        with self._mutex:
            self._held.discard(user)


# The lock table of each store, so the plain and implicit-TLS listeners refuse each other.
locks_for: PerStore[MaildropLocks] = PerStore(MaildropLocks)


class Pop3Protocol(asyncio.Protocol):
    """One POP3 connection: feeds the core, writes its replies, answers its requests."""

    def __init__(
        self,
        store: Store,
        locks: MaildropLocks,
        hostname: str,
        credentials: Mapping[str, str] | None,
        ssl_context: ssl.SSLContext | None,
        implicit_tls: bool,
        idle_timeout: float = IDLE_TIMEOUT,
        *,
        executor: BoundedExecutor,
        limiter: ConnectionLimiter | None = None,
        login_timeout: float = LOGIN_TIMEOUT,
        throttle: LoginThrottle | None = None,
        access: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.store = store
        self.locks = locks
        self.ssl_context = ssl_context
        self.conn = Pop3Connection(
            hostname,
            credentials,
            access=access,
            tls_available=ssl_context is not None and not implicit_tls,
            tls_active=implicit_tls,
            banner_id=secrets.token_hex(8),
            locked_out=lambda: self._penalty.blocked(),  # the penalty is made below, the lambda runs later
        )
        self.transport: asyncio.Transport | None = None
        self._locked: str | None = None
        self._shared_lock = False  # _locked is also held in the store (lock_maildrop)
        self._idle_timeout = idle_timeout
        self._login_timeout = login_timeout
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._executor = executor
        self._limiter = limiter
        self._slot: Slot | None = None
        self._write_paused = False
        self._store_call = False  # reading pauses while the core waits for the store: its buffer stays small
        self._penalty = LoginPenalty(throttle, "POP3", lambda: self.transport, self._reading)

    # -- asyncio callbacks -------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        self.transport = transport
        if self._limiter is not None:
            self._slot = self._limiter.admit_transport(transport, REFUSAL)
            if self._slot is None:
                return
        if self._penalty.blocked():  # too many failed logins from this address lately
            transport.write(ERR_TOO_MANY_FAILURES + CRLF)
            transport.close()
            return
        self._touch()
        self._process(self.conn.greeting())

    def data_received(self, data: bytes) -> None:
        if self._timer is None:
            return  # refused: the -ERR is written, the transport closing
        self._touch()
        self._process(self.conn.receive_data(data))

    def eof_received(self) -> bool | None:
        self.conn.receive_data(b"")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._slot is not None:
            self._slot.release()
        self.conn.receive_data(b"")
        if self._timer is not None:
            self._timer.cancel()
        self._penalty.cancel()
        # RFC 1939 §6: no QUIT, no UPDATE; only the lock goes (unless an UPDATE is still running).
        if self._locked is not None and not self._tasks:
            self._unlock()
        self.transport = None

    def pause_writing(self) -> None:  # a client pipelining RETRs without reading: stop reading too
        self._write_paused = True
        self._reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._reading()

    def _reading(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self._write_paused or self._store_call or self._penalty.holding:
            transport.pause_reading()
        else:
            transport.resume_reading()

    # -- driving the core -------------------------------------------------------
    def _process(self, events: list[Event]) -> None:
        try:
            self._drain(events)
        except Exception:
            # The core never raises on input; this is a store or programming error: don't leak it.
            log.exception("POP3 session failed")
            self._write(ERR_SYS_TEMP + CRLF)
            self._close()

    def _drain(self, events: list[Event]) -> None:
        queue: deque[Event] = deque(events)
        while queue:
            event = queue.popleft()
            if isinstance(event, Reply):
                self._write(event.data)
            elif isinstance(event, MaildropRequested):
                self._spawn(self._open(event.user), store_call=True)
            elif isinstance(event, MessageRequested):
                self._spawn(self._raw(event.message_id), store_call=True)
            elif isinstance(event, StartTlsRequested):
                self._spawn(self._start_tls())
            elif isinstance(event, UpdateRequested):
                self._spawn(self._update(event))
            elif isinstance(event, CloseRequested):
                self._close()
            elif isinstance(event, LoginFailed) and self._penalty.failed():  # its -ERR waits out the delay
                self._write(ERR_AUTH + CRLF + ERR_TOO_MANY_FAILURES + CRLF)
                self._close()
                return

    async def _open(self, user: str) -> None:
        self._process(self.conn.answer_maildrop(*await self._list(user)))
        self._touch()  # logged in (or not): the timer of the state the session is in now

    async def _list(self, user: str) -> tuple[Sequence[MaildropItem] | None, bytes]:
        user = normalize_user(user)
        if not self.locks.acquire(user):
            return None, ERR_IN_USE
        self._locked = user
        shared = getattr(self.store, "lock_maildrop", None)  # a database that frontends share locks it too
        try:
            if shared is not None and not await self._executor.run(shared, user):
                self.locks.release(user)
                self._locked = None
                return None, ERR_IN_USE
            self._shared_lock = shared is not None
            entries = await self._executor.run(self.store.entries, user, "INBOX")
        except StoreError:
            log.exception("POP3: cannot list %s", user)
            self._unlock()
            return None, ERR_SYS_TEMP
        return entries, b""

    async def _raw(self, message_id: str) -> None:
        try:
            raw: bytes | None = await self._executor.run(self.store.raw, message_id)
        except StoreError:  # deleted meanwhile (web UI, IMAP EXPUNGE)
            raw = None
        self._process(self.conn.answer_message(raw))

    async def _update(self, event: UpdateRequested) -> None:
        ok = True
        if event.uids:
            try:  # resolves after the writer's COMMIT; the loop waits on nothing meanwhile
                await self.store.discard(event.user, "INBOX", event.uids)
            except Exception:
                log.exception("POP3: UPDATE failed for %s", event.user)
                ok = False
        if self._shared_lock and self._locked is not None:  # released before the client hears +OK
            self._shared_lock = False
            with contextlib.suppress(Exception):
                await self._executor.run(self.store.unlock_maildrop, self._locked)  # type: ignore[attr-defined]
        self._unlock()  # RFC 1939 §6: release the lock only once deletions are done
        self._process(self.conn.answer_update(ok))

    async def _start_tls(self) -> None:
        transport, context = self.transport, self.ssl_context
        if transport is None or context is None:
            return
        new = await upgrade(transport, self, context, "POP3 STLS")
        if new is None:
            return
        self.transport = new
        self._process(self.conn.tls_started())

    # -- small helpers ------------------------------------------------------------
    def _spawn(self, coro: Coroutine[Any, Any, None], store_call: bool = False) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        if store_call:
            self._store_call = True
            self._reading()

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("POP3 session failed", exc_info=task.exception())
            self._write(ERR_SYS_TEMP + CRLF)
            self._close()
        if self._store_call and not self._tasks:
            self._store_call = False
            self._reading()
        if self.transport is None and not self._tasks:
            self._unlock()  # the client left while the store answered

    def _unlock(self) -> None:
        if self._locked is not None:
            if self._shared_lock:  # the client left: nobody waits for the database's lock to go
                self._shared_lock = False
                self._spawn(self._unlock_shared(self._locked))
            self.locks.release(self._locked)
            self._locked = None

    async def _unlock_shared(self, user: str) -> None:
        with contextlib.suppress(Exception):
            await self._executor.run(self.store.unlock_maildrop, user)  # type: ignore[attr-defined]

    def _write(self, data: bytes) -> None:
        self._penalty.write(data)  # after a failed login, held for its delay

    def _close(self) -> None:
        self._penalty.close()

    def _touch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.transport is None:
            return  # gone while the store answered
        loop = asyncio.get_running_loop()
        before_login = self.conn.state is State.AUTHORIZATION
        self._timer = loop.call_later(self._login_timeout if before_login else self._idle_timeout, self._close)


async def start_pop3(
    host: str,
    port: int,
    store: Store,
    ssl_context: ssl.SSLContext | None = None,
    implicit_tls: bool = False,
    credentials: Mapping[str, str] | None = None,
    *,
    hostname: str = "mailsandbox.local",
    locks: MaildropLocks | None = None,
    limiter: ConnectionLimiter | None = None,
    login_timeout: float = LOGIN_TIMEOUT,
    idle_timeout: float = IDLE_TIMEOUT,
    workers: int = WORKERS,
    throttle: LoginThrottle | None = None,
    access: Mapping[str, Sequence[str]] | None = None,
) -> Listening:
    """Listen for POP3 on host:port (port 0: any free port; see `server.sockets`).

    With `ssl_context`, the plain port offers STLS (RFC 2595); with `implicit_tls` too, the port
    speaks TLS from the first byte (the 995 style). `credentials` maps mailbox address to password;
    None accepts any password; `access` maps an account to the mailbox globs it may open as
    `mailbox*account` (sandbox/protocols/accounts.py). Listeners of one store share maildrop locks
    unless `locks` is given.
    `limiter` refuses connections over its limits with `-ERR [SYS/TEMP]`; a session is closed after
    `login_timeout` seconds of silence before login and `idle_timeout` after it. Store calls run on
    `workers` threads of the listener's own. `throttle` answers failed logins with a growing delay
    and cuts an address off past its limit.
    """
    if implicit_tls and ssl_context is None:
        raise ValueError("implicit_tls needs an ssl_context")
    shared = locks if locks is not None else locks_for(store)
    loop = asyncio.get_running_loop()
    executor = BoundedExecutor("pop3", workers)

    def session() -> Pop3Protocol:
        return Pop3Protocol(
            store, shared, hostname, credentials, ssl_context, implicit_tls, idle_timeout,
            executor=executor, limiter=limiter, login_timeout=login_timeout, throttle=throttle,
            access=access,
        )  # fmt: skip

    server = await loop.create_server(session, host, port, ssl=ssl_context if implicit_tls else None)
    return Listening(server, executor.shutdown)
