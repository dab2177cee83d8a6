"""The HTTP listener's WebSocket protocol: uvicorn's websockets (sans-IO) implementation, plus a way for
the event stream to write frames it has already encoded straight to the connection.

Through ASGI every frame is one awaited `send` per client: an encode (and a permessage-deflate pass) per
client per frame, and one socket write each. A server's data frames are not masked (RFC 6455 §5.1), so
the bytes of a text frame are the same for every client; an uncompressed message is valid on a
connection that negotiated permessage-deflate (RFC 7692 §6: RSV1 clear). So `/api/events` builds each
frame once and hands every client's pending frames to its transport in one write, through the
`FRAMES_EXTENSION` object this protocol puts in the ASGI scope. Everything else (the handshake, pings,
closing, what the client sends) stays uvicorn's.
"""

from __future__ import annotations

import contextlib
import socket
from asyncio import BaseTransport
from collections.abc import Callable

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

FRAMES_EXTENSION = "mailsandbox.websocket.frames"
CLOSE_GRACE = 10.0  # seconds a connection closed for being too slow may take to read the close frame
# The socket's send buffer. Linux grows it to megabytes for a fast peer, and frames hidden there are frames
# the stream cannot see waiting: a client that stops reading would be seconds behind before its backlog
# showed. Kept small, the backlog shows in the transport's buffer, where the stream watches it.
SEND_BUFFER = 64 * 1024


class FramesWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's protocol with `write_frames`, `buffered`, `on_drain` and `close_now` for the app."""

    _drain: Callable[[], None] | None = None

    def connection_made(self, transport: BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        super().connection_made(transport)

    async def run_asgi(self) -> None:
        extensions: dict[str, object] = self.scope.setdefault("extensions", {})  # type: ignore[assignment]
        extensions[FRAMES_EXTENSION] = self
        await super().run_asgi()

    def open(self) -> bool:
        """Accepted, and neither side has started closing."""
        return self.handshake_complete and not self.close_sent and not self.disconnected and not (
            self.transport.is_closing()
        )

    def write_frames(self, data: bytes) -> bool:
        """Write complete, encoded frames; False when the connection is no longer open."""
        if not self.open():
            return False
        self.transport.write(data)
        return True

    def buffered(self) -> int:
        """Bytes written and not yet taken by the kernel."""
        return self.transport.get_write_buffer_size()

    def on_drain(self, callback: Callable[[], None] | None) -> None:
        """Call `callback` when the write buffer falls below its low-water mark again."""
        self._drain = callback

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._drain is not None:
            self._drain()

    def close_now(self, code: int, reason: str) -> None:
        """Send a close frame now, not after the app's earlier sends (which wait for a full buffer to
        drain), and abort if the client has not read it within CLOSE_GRACE: a stalled client's buffer
        is not kept."""
        if not self.open():
            return
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.conn.send_close(code, reason)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        self.close_timer = self.loop.call_later(CLOSE_GRACE, self.transport.abort)
