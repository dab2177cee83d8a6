"""The HTTP listener's connection bounds, as a subclass of uvicorn's h11 protocol.

uvicorn has no per-client limit and no timeout for a request head: a connection that sends nothing, or
trickles one header byte a second, stays open forever. `bounded_protocol` adds both:

- a connection over the listener's limits (`ConnectionLimiter`) gets `503` + `Connection: close` before
  any request is read;
- a connection that has not sent a complete request head `header_timeout` seconds after it opened (or
  after its last response) is closed; idle keep-alive connections close after uvicorn's
  `timeout_keep_alive`, and a WebSocket (/api/events) is never timed out once upgraded;
- a connection that closes with a request body still arriving (a 413, or a large body a handler did
  not read: web.inputs.BodyLimit answers those with `Connection: close`) closes lingering: its response
  is sent, then its write side is shut and what the client still sends is read and dropped for a
  moment, so the client reads the answer instead of a reset.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from mailsandbox.servers._limits import ConnectionLimiter, Slot

HEADER_TIMEOUT = 10.0  # seconds to send a complete request head
KEEP_ALIVE_TIMEOUT = 5  # seconds an idle keep-alive connection stays open (uvicorn's default)
MAX_HEAD = 16 * 1024  # bytes of request line and headers (h11 enforces it only on a head read in pieces)
LINGER_SECONDS = 2.0  # how long a lingering close reads and drops what the client still sends
LINGER_BYTES = 16 * 1024 * 1024  # ... and how much of it


def _response(status: int, reason: str, text: str) -> bytes:
    body = json.dumps({"Error": text}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


_BUSY = _response(503, "Service Unavailable", "too many connections")
_HEAD_TOO_LARGE = _response(431, "Request Header Fields Too Large", f"request head over {MAX_HEAD} bytes")


class _LingeringTransport(asyncio.Transport):
    """The socket transport as uvicorn sees it: `close()` lingers while the request body is unread."""

    def __init__(self, transport: asyncio.Transport, protocol: BoundedH11Protocol) -> None:
        super().__init__()
        self.real = transport
        self._protocol = protocol
        self.lingering = False
        self.dropped = 0
        self._timer: asyncio.TimerHandle | None = None

    def close(self) -> None:
        real = self.real
        if self.lingering or real.is_closing():
            return
        if self._protocol.conn.their_state is not h11.SEND_BODY or not real.can_write_eof():
            real.close()
            return
        self.lingering = True
        real.write_eof()  # after the response: the client reads it, then end-of-file
        real.resume_reading()
        self._timer = self._protocol.loop.call_later(LINGER_SECONDS, real.close)

    def drop(self, data: bytes) -> None:
        self.dropped += len(data)
        if self.dropped > LINGER_BYTES:
            self.real.close()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def is_closing(self) -> bool:
        return self.lingering or self.real.is_closing()

    # The rest is the socket transport's.
    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.real.write(data)

    def writelines(self, list_of_data: Any) -> None:
        self.real.writelines(list_of_data)

    def write_eof(self) -> None:
        self.real.write_eof()

    def can_write_eof(self) -> bool:
        return self.real.can_write_eof()

    def abort(self) -> None:
        self.real.abort()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.real.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.real.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.real.get_protocol()

    def pause_reading(self) -> None:
        self.real.pause_reading()

    def resume_reading(self) -> None:
        self.real.resume_reading()

    def is_reading(self) -> bool:
        return self.real.is_reading()

    def get_write_buffer_size(self) -> int:
        return self.real.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self.real.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.real.set_write_buffer_limits(high, low)


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the bounds above; `bounded_protocol` sets the class attributes."""

    limiter: ConnectionLimiter | None = None
    header_timeout: float = HEADER_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slot: Slot | None = None
        self._head_timer: asyncio.TimerHandle | None = None
        self._lingering: _LingeringTransport | None = None
        self._head_bytes = 0  # of the request head being received
        self._tail = b""  # its last 3 bytes, to find a blank line split across reads

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._lingering = _LingeringTransport(transport, self)
        super().connection_made(self._lingering)
        if self.limiter is not None:
            self._slot = self.limiter.admit_transport(transport, _BUSY)
            if self._slot is None:
                return
        self._watch_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        if self._lingering is not None:
            self._lingering.cancel()
        if self._slot is not None:
            self._slot.release()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering is not None and self._lingering.lingering:
            self._lingering.drop(data)
            return
        if self.conn.their_state is h11.IDLE and self._head_over_limit(data):
            self.transport.write(_HEAD_TOO_LARGE)
            self.transport.close()
            return
        super().data_received(data)
        if self.transport.get_protocol() is self:  # not upgraded to a WebSocket meanwhile
            self._watch_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch_head()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._stop_head_timer()
        slot, self._slot = self._slot, None
        super().handle_websocket_upgrade(event)
        upgraded = self.transport.get_protocol()
        if slot is None or upgraded is self:
            self._slot = slot
            return
        lost = upgraded.connection_lost

        def connection_lost(exc: Exception | None) -> None:
            slot.release()
            lost(exc)

        # The WebSocket protocol now owns the transport: the place is given back when it closes.
        upgraded.connection_lost = connection_lost  # type: ignore[method-assign]

    def send_400_response(self, msg: str) -> None:
        """h11 refused the request (malformed, or a head over MAX_HEAD): Mailpit's JSON error shape."""
        if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            self.transport.write(_response(400, "Bad Request", msg))
        self.transport.close()

    def _head_over_limit(self, data: bytes) -> bool:
        """Whether the head being received passes MAX_HEAD with these bytes (h11 takes any size at once)."""
        end = (self._tail + data).find(b"\r\n\r\n")
        if end >= 0:
            size, self._head_bytes, self._tail = self._head_bytes + end - len(self._tail), 0, b""
            return size > MAX_HEAD
        self._head_bytes += len(data)
        self._tail = (self._tail + data)[-3:]
        return self._head_bytes > MAX_HEAD

    # -- the request-head timer ---------------------------------------------------------------------

    def _watch_head(self) -> None:
        """Run the timer while a request head is awaited (h11's IDLE), stop it once one has arrived."""
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)
        else:
            self._stop_head_timer()

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


class _Throttle(logging.Filter):
    """uvicorn warns once per malformed request ("Invalid HTTP request received."): a flood of garbage
    would be a flood of log lines. Each of its per-request warnings passes at most once per interval."""

    PER_REQUEST = frozenset({"Invalid HTTP request received.", "Unsupported upgrade request."})

    def __init__(self, interval: float = 60.0) -> None:
        super().__init__()
        self.interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if text not in self.PER_REQUEST:
            return True
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(text, -self.interval) < self.interval:
                self._suppressed[text] = self._suppressed.get(text, 0) + 1
                return False
            self._last[text] = now
            skipped = self._suppressed.pop(text, 0)
        if skipped:
            record.msg, record.args = f"{text} ({skipped} similar messages suppressed)", ()
        return True


def _throttle_uvicorn_warnings() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _Throttle) for f in logger.filters):
        logger.addFilter(_Throttle())


def bounded_protocol(limiter: ConnectionLimiter | None, header_timeout: float = HEADER_TIMEOUT) -> type[H11Protocol]:
    """The protocol class to give uvicorn's `Config(http=...)` for one listener."""
    _throttle_uvicorn_warnings()
    attrs = {"limiter": limiter, "header_timeout": header_timeout}
    return type("SandboxHttpProtocol", (BoundedH11Protocol,), attrs)
