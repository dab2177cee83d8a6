"""The HTTP listener's connection bounds, as a subclass of uvicorn's h11 protocol.

uvicorn has no per-client limit and no timeout for a request head: a connection that sends nothing, or
trickles one header byte a second, stays open forever. `bounded_protocol` adds both:

- a connection over the listener's limits (`ConnectionLimiter`) gets `503` + `Connection: close` before
  any request is read;
- a connection that has not sent a complete request head `header_timeout` seconds after it opened (or
  after its last response) is closed; idle keep-alive connections close after uvicorn's
  `timeout_keep_alive`, and a WebSocket (/api/events) is never timed out once upgraded;
- a response that leaves a request body unread closes the connection instead of draining the body.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from sandbox.servers._limits import ConnectionLimiter, Slot

HEADER_TIMEOUT = 10.0  # seconds to send a complete request head
KEEP_ALIVE_TIMEOUT = 5  # seconds an idle keep-alive connection stays open (uvicorn's default)
MAX_HEAD = 16 * 1024  # bytes of request line and headers (h11's default, stated here)


def _response(status: int, reason: str, text: str) -> bytes:
    body = json.dumps({"Error": text}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


_BUSY = _response(503, "Service Unavailable", "too many connections")


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the bounds above; `bounded_protocol` sets the class attributes."""

    limiter: ConnectionLimiter | None = None
    header_timeout: float = HEADER_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slot: Slot | None = None
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.limiter is not None:
            self._slot = self.limiter.admit(transport.get_extra_info("peername"))
            if self._slot is None:
                transport.write(_BUSY)
                transport.close()
                return
        self._watch_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        if self._slot is not None:
            self._slot.release()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.transport.get_protocol() is self:  # not upgraded to a WebSocket meanwhile
            self._watch_head()

    def on_response_complete(self) -> None:
        if self.conn.their_state is h11.SEND_BODY and not self.transport.is_closing():
            # The handler answered without reading the whole body: close rather than read it to the end.
            self.transport.close()
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


def bounded_protocol(limiter: ConnectionLimiter | None, header_timeout: float = HEADER_TIMEOUT) -> type[H11Protocol]:
    """The protocol class to give uvicorn's `Config(http=...)` for one listener."""
    attrs = {"limiter": limiter, "header_timeout": header_timeout}
    return type("SandboxHttpProtocol", (BoundedH11Protocol,), attrs)
