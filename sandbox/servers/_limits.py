"""Bounds every TCP listener shares: connections per listener and per client address, and log lines that
cannot turn into a storm when a flood or an exhausted file-descriptor table makes the same error repeat."""

from __future__ import annotations

import asyncio
import logging
import resource
import threading
import time
from collections.abc import Callable
from typing import Any


class Slot:
    """One admitted connection; `release` (idempotent) gives its place back."""

    __slots__ = ("_client", "_limiter")

    def __init__(self, limiter: ConnectionLimiter, client: str) -> None:
        self._limiter: ConnectionLimiter | None = limiter
        self._client = client

    def release(self) -> None:
        limiter, self._limiter = self._limiter, None
        if limiter is not None:
            limiter._release(self._client)


class ConnectionLimiter:
    """Admits at most `total` connections to one listener and `per_client` from one address (0: no limit).

    A refused connection is the adapter's to answer (SMTP `421 4.7.0`, POP3 `-ERR [SYS/TEMP]`, IMAP
    `* BYE`); refusals are logged at most once a minute per listener."""

    def __init__(self, name: str, total: int, per_client: int, log: logging.Logger | None = None) -> None:
        self.name = name
        self.total = total
        self.per_client = per_client
        self.active = 0
        self.opened = 0  # connections admitted since start (/metrics)
        self.refused = 0
        self._by_client: dict[str, int] = {}
        self._lock = threading.Lock()  # cheap; lets a test thread read the counts consistently
        self._log = RateLimitedLog(log or logging.getLogger(f"mailsandbox.{name}"), 60.0)

    def admit(self, peername: object) -> Slot | None:
        client = client_address(peername)
        with self._lock:
            count = self._by_client.get(client, 0)
            over_total = self.total > 0 and self.active >= self.total
            over_client = self.per_client > 0 and count >= self.per_client
            if over_total or over_client:
                self.refused += 1
                refused = self.refused
            else:
                self.active += 1
                self.opened += 1
                self._by_client[client] = count + 1
                return Slot(self, client)
        what = f"{self.total} connections" if over_total else f"{self.per_client} connections from {client}"
        self._log.warning(
            "limit", "%s: refusing connections over the limit of %s (%d refused so far)", self.name, what, refused
        )
        return None

    def admit_transport(self, transport: asyncio.Transport, refusal: bytes = b"") -> Slot | None:
        """`admit` for a new connection: refused, it gets `refusal` and is closed (aborted when there is
        nothing to say), and the answer is None."""
        slot = self.admit(transport.get_extra_info("peername"))
        if slot is None:
            if refusal:
                transport.write(refusal)
                transport.close()
            else:
                transport.abort()
        return slot

    def _release(self, client: str) -> None:
        with self._lock:
            self.active -= 1
            left = self._by_client.get(client, 1) - 1
            if left > 0:
                self._by_client[client] = left
            else:
                self._by_client.pop(client, None)


def client_address(peername: object) -> str:
    """The host part of a transport's peername (IPv4 or IPv6 tuple); anything else as text."""
    if isinstance(peername, tuple) and peername:
        return str(peername[0])
    return str(peername or "")


class RateLimitedLog:
    """Logs a message of one kind at most once per `interval` seconds, with how many were suppressed."""

    def __init__(self, log: logging.Logger, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._log = log
        self._interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def warning(self, kind: str, msg: str, *args: Any, exc_info: Any = None) -> bool:
        """True when the line was written."""
        now = self._clock()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self._interval:
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                return False
            self._last[kind] = now
            skipped = self._suppressed.pop(kind, 0)
        if skipped:
            msg += f" ({skipped} similar messages suppressed)"
        self._log.warning(msg, *args, exc_info=exc_info)
        return True


def install_loop_error_throttle(loop: asyncio.AbstractEventLoop, interval: float = 10.0) -> None:
    """Make the loop's unhandled-error reports (for example `socket.accept() out of system resource`
    once per listener per second when file descriptors run out) one line per kind per `interval`.
    A loop that already has its own handler (an embedding application's) is left alone."""
    if loop.get_exception_handler() is not None:
        return
    limited = RateLimitedLog(logging.getLogger("mailsandbox.loop"), interval)

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message") or "unhandled error in the event loop")
        exc = context.get("exception")
        kind = f"{message}:{type(exc).__name__}"
        limited.warning(kind, "%s", message, exc_info=exc)

    loop.set_exception_handler(handler)


def raise_fd_limit(wanted: int) -> int:
    """Raise the soft open-file limit towards `wanted` (never above the hard limit); the limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return int(soft)


class Listening(asyncio.AbstractServer):
    """A listener whose close() also ends what its sessions hold (their executor, open sessions): it wraps
    the loop's server, since uvloop's Server does not let close be replaced."""

    def __init__(self, server: asyncio.AbstractServer, on_close: Callable[[], None]) -> None:
        self._server = server
        self._on_close = on_close

    @property
    def sockets(self) -> tuple[Any, ...]:
        return tuple(getattr(self._server, "sockets", ()) or ())

    def close(self) -> None:
        self._server.close()
        self._on_close()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._server.get_loop()

    def is_serving(self) -> bool:
        return self._server.is_serving()

    async def start_serving(self) -> None:
        await self._server.start_serving()

    async def serve_forever(self) -> None:
        await self._server.serve_forever()

    async def wait_closed(self) -> None:
        await self._server.wait_closed()
