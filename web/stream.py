"""/api/events: the live event stream (a WebSocket carrying Mailpit-shaped JSON) fed from the EventBus.

Every frame is one JSON object `{"Type": str, "Data": ...}`:
    new       Data = MessageSummary (the same shape as one item of GET /api/v1/messages)
    delete    Data = {"ID": str}, one frame per message deleted (as Mailpit sends)
    update    Data = {"ID": str, "Read": bool}, one frame per message whose read state changed, or
              {"ID": str, "Tags": [str]} when its tags were set (as Mailpit sends both)
    truncate  Data = null: every message was deleted
    prune     Data = null: more than MAX_IDS changed at once, or a tag was renamed or deleted; reload
    stats     Data = {"Total": int, "Unread": int, "Version": str}, shortly after any change (coalesced)
    delivery  Data = {"ID", "Recipient", "Host", "Code", "Status"}: a relay attempt (our extra)
The server ignores what clients send. A client that keeps up gets every frame, in order; one whose
oldest unsent frame is more than MAX_LAG seconds old (or MAX_BACKLOG bytes behind) is closed with code
1013 and a reason rather than fed an ever older backlog: reconnect and reload.

Delivery is shared work: each event is encoded once, as JSON and as a WebSocket frame, and each client's
frames since the last loop pass go out in one transport write (through the server's FRAMES_EXTENSION,
sandbox/servers/websocket.py; under another ASGI server, one `send_text` per frame).
"""

from __future__ import annotations

import asyncio
import json
import struct
import time
from collections import deque
from collections.abc import Callable, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlsplit

from starlette.routing import BaseRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from mailsandbox.events import (
    DeliveryAttempted,
    Event,
    EventBus,
    MessagesDeleted,
    MessageStored,
    MessagesUpdated,
    TagRenamed,
)
from mailsandbox.models import StoredMessage
from mailsandbox.store import Store
from mailsandbox.web.routes import build

Summarize = Callable[[StoredMessage], Mapping[str, Any]]

# Above this many IDs a change is announced as one "prune" (reload) instead of a frame per ID (Mailpit's 200).
MAX_IDS = 200
STATS_DELAY = 0.1  # seconds: many changes in a burst give one stats frame, at most one per STATS_DELAY
MAX_LAG = 2.0  # seconds the oldest frame not yet handed to a client's connection may wait
MAX_BACKLOG = 4 * 1024 * 1024  # bytes of frames waiting for one client
HIGH_WATER = 256 * 1024  # bytes in a client's socket buffer over which its frames wait here (a close can overtake)
WATCH_INTERVAL = 0.25  # seconds between checks of the clients that have frames waiting
# Seconds between two writes to the same clients: during a burst each client gets one write per interval
# (a system call each, the main cost of a frame), at the price of at most this much added latency.
FLUSH_INTERVAL = 0.005
CLOSE_TOO_SLOW = 1013  # RFC 6455 §7.4.1 registry: "Try Again Later"
CLOSE_POLICY = 1008  # RFC 6455 §7.4.1: policy violation (a cross-site page)
CLOSE_GOING_AWAY = 1001  # RFC 6455 §7.4.1: the server is stopping
TOO_SLOW = f"too slow: events waited over {MAX_LAG:g} s; reconnect and reload"
# The ASGI scope extension of sandbox/servers/websocket.py (the same string there: web does not import servers).
FRAMES_EXTENSION = "mailsandbox.websocket.frames"


def _frame(kind: str, data: object) -> str:
    return json.dumps({"Type": kind, "Data": data}, separators=(",", ":"))


def _version() -> str:
    try:
        return version("mailsandbox")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return ""


VERSION = _version()


def encode(event: Event, summarize: Summarize) -> list[str]:
    """One bus event as its stream frames; none for events the stream does not carry."""
    if isinstance(event, MessageStored):
        return [_frame("new", dict(summarize(event.message)))]
    if isinstance(event, MessagesDeleted):
        if event.all:
            return [_frame("truncate", None)]
        if len(event.ids) > MAX_IDS:
            return [_frame("prune", None)]
        return [_frame("delete", {"ID": i}) for i in event.ids]
    if isinstance(event, MessagesUpdated):
        if len(event.ids) > MAX_IDS:
            return [_frame("prune", None)]
        if event.tags is not None:
            tags = list(event.tags)
            return [_frame("update", {"ID": i, "Tags": tags}) for i in event.ids]
        return [_frame("update", {"ID": i, "Read": event.read}) for i in event.ids]
    if isinstance(event, TagRenamed):
        return [_frame("prune", None)]  # as Mailpit: every listing reloads
    if isinstance(event, DeliveryAttempted):
        return [_frame(
            "delivery",
            {
                "ID": event.message_id,
                "Recipient": event.recipient,
                "Host": event.host,
                "Code": event.code,
                "Status": event.status,
            },
        )]
    return []


class FrameWriter(Protocol):
    """What the server's FRAMES_EXTENSION offers: write encoded frames to the connection directly."""

    def write_frames(self, data: bytes) -> bool: ...
    def buffered(self) -> int: ...
    def on_drain(self, callback: Callable[[], None] | None) -> None: ...
    def close_now(self, code: int, reason: str) -> None: ...


def text_frame(payload: bytes) -> bytes:
    """One unfragmented, unmasked text frame (RFC 6455 §5.2): the same bytes for every client."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


class _Frame(NamedTuple):
    """One event, encoded once and shared by every client's queue."""

    text: str
    wire: bytes  # text_frame(text)
    at: float  # when it was queued (time.monotonic)


class _Client:
    """One listener's frames that its connection has not taken yet (the oldest first)."""

    def __init__(self) -> None:
        self.pending: deque[_Frame] = deque()
        self.pending_bytes = 0
        self.closed = False

    def offer(self, frame: _Frame) -> None:
        self.pending.append(frame)
        self.pending_bytes += len(frame.wire)

    def behind(self, now: float) -> bool:
        return bool(self.pending) and (now - self.pending[0].at > MAX_LAG or self.pending_bytes > MAX_BACKLOG)

    def take(self) -> deque[_Frame]:
        frames, self.pending, self.pending_bytes = self.pending, deque(), 0
        return frames

    def flush(self) -> None:
        raise NotImplementedError

    def close(self, code: int, reason: str) -> None:
        raise NotImplementedError


class _DirectClient(_Client):
    """A connection of our own server: all pending frames in one write while its socket buffer has room."""

    def __init__(self, writer: FrameWriter, flush_soon: Callable[[], None]) -> None:
        super().__init__()
        self.writer = writer
        writer.on_drain(flush_soon)

    def flush(self) -> None:
        if self.pending and self.writer.buffered() < HIGH_WATER:
            frames = self.take()
            data = frames[0].wire if len(frames) == 1 else b"".join([f.wire for f in frames])
            if not self.writer.write_frames(data):
                self.closed = True

    def close(self, code: int, reason: str) -> None:
        self.closed = True
        self.take()  # never sent: the close frame goes next
        self.writer.on_drain(None)
        self.writer.close_now(code, reason)

    async def serve(self, reader: asyncio.Task[None]) -> None:
        await reader  # the hub writes; closing (by the client or by close_now) ends the reader


class _AsgiClient(_Client):
    """Any other ASGI server: one awaited `send_text` per frame, from a task of its own."""

    def __init__(self, websocket: WebSocket) -> None:
        super().__init__()
        self.websocket = websocket
        self.wake = asyncio.Event()
        self.close_code: tuple[int, str] | None = None

    def flush(self) -> None:
        self.wake.set()

    def close(self, code: int, reason: str) -> None:
        self.closed = True
        self.take()
        self.close_code = (code, reason)
        self.wake.set()

    async def serve(self, reader: asyncio.Task[None]) -> None:
        sender = asyncio.create_task(self._send())
        try:
            await asyncio.wait({reader, sender}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sender.cancel()

    async def _send(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            if self.close_code is not None:
                await self.websocket.close(*self.close_code)
                return
            # Taken one at a time: a close decided meanwhile overtakes what is still pending.
            while self.pending and self.close_code is None:
                frame = self.pending.popleft()
                self.pending_bytes -= len(frame.wire)
                await self.websocket.send_text(frame.text)


class EventHub:
    """Subscribes to the bus once (lazily, on the serving loop) and fans each frame out to clients.

    Frames are encoded once per event, not once per client; each client's frames of one loop pass are
    written together. A client that falls behind is closed with 1013 (see the module docstring).
    """

    def __init__(self, store: Store, bus: EventBus, summarize: Summarize) -> None:
        self._store = store
        self._bus = bus
        self._summarize = summarize
        self._clients: set[_DirectClient | _AsgiClient] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self._stats_dirty = False  # a change not yet counted in a stats frame
        self._stats_busy = False  # a stats frame is due, being counted, or was sent under STATS_DELAY ago
        self._flush_scheduled = False
        self._flushed_at = 0.0
        self._watching = False
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def clients(self) -> int:
        return len(self._clients)

    def _ensure_subscribed(self) -> None:
        if self._unsubscribe is None:
            # Subscribing from inside the loop makes the bus deliver events on this loop.
            self._unsubscribe = self._bus.subscribe(self._on_event)

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for client in list(self._clients):
            client.close(CLOSE_GOING_AWAY, "server stopping")
        self._clients.clear()

    def _broadcast(self, frame: str) -> None:
        shared = _Frame(frame, text_frame(frame.encode()), time.monotonic())
        for client in self._clients:
            client.offer(shared)
        self._flush_soon()

    def _flush_soon(self) -> None:
        if not self._flush_scheduled:
            # After the current loop pass (every event of one bus delivery, a group commit, in one write),
            # and no sooner than FLUSH_INTERVAL after the last flush.
            self._flush_scheduled = True
            loop = asyncio.get_running_loop()
            wait = self._flushed_at + FLUSH_INTERVAL - time.monotonic()
            if wait > 0:
                loop.call_later(wait, self._flush)
            else:
                loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        now = self._flushed_at = time.monotonic()
        waiting = False
        for client in list(self._clients):
            if client.behind(now):
                self._drop(client, TOO_SLOW)
                continue
            client.flush()
            if client.closed:
                self._clients.discard(client)
            waiting = waiting or bool(client.pending)
        if waiting and not self._watching:
            # Frames wait for a full socket buffer: check again even if no event comes to trigger it.
            self._watching = True
            asyncio.get_running_loop().call_later(WATCH_INTERVAL, self._watch)

    def _watch(self) -> None:
        self._watching = False
        self._flush()

    def _drop(self, client: _DirectClient | _AsgiClient, reason: str) -> None:
        self._clients.discard(client)
        client.close(CLOSE_TOO_SLOW, reason)

    def _on_event(self, event: Event) -> None:
        if not self._clients:
            return
        for frame in encode(event, self._summarize):
            self._broadcast(frame)
        if not isinstance(event, DeliveryAttempted):
            self._stats_due()

    def _stats_due(self) -> None:
        self._stats_dirty = True
        if not self._stats_busy:
            self._stats_busy = True
            asyncio.get_running_loop().call_later(STATS_DELAY, self._send_stats)

    def _send_stats(self) -> None:
        """At most one stats frame per STATS_DELAY, and one after the last change of a burst."""
        if not self._clients or not self._stats_dirty:
            self._stats_busy = False
            return
        self._stats_dirty = False
        task = asyncio.get_running_loop().create_task(self._stats())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _stats(self) -> None:
        try:
            # Counting a large store takes milliseconds: do it off the loop SMTP shares.
            total, unread = await asyncio.to_thread(self._store.count)
        except Exception:  # a store closing under us: skip this frame, the next change sends one
            self._stats_busy = False
            return
        self._broadcast(_frame("stats", {"Total": total, "Unread": unread, "Version": VERSION}))
        asyncio.get_running_loop().call_later(STATS_DELAY, self._send_stats)  # changes meanwhile: one more

    async def endpoint(self, websocket: WebSocket) -> None:
        if not _same_origin(websocket.headers):
            # Browsers let any site open a WebSocket to localhost; only our own pages may read mail.
            await websocket.close(code=CLOSE_POLICY)
            return
        await websocket.accept()
        writer = websocket.scope.get("extensions", {}).get(FRAMES_EXTENSION)
        client = _AsgiClient(websocket) if writer is None else _DirectClient(writer, self._flush_soon)
        self._ensure_subscribed()
        self._clients.add(client)
        self._stats_due()  # as Mailpit: a new client learns the counts without waiting for a change
        reader = asyncio.create_task(_drain(websocket))
        try:
            await client.serve(reader)
        except (WebSocketDisconnect, RuntimeError, OSError):
            return  # the client went away mid-send
        finally:
            self._clients.discard(client)
            client.closed = True
            reader.cancel()


async def _drain(websocket: WebSocket) -> None:
    """Read and ignore client frames until the client disconnects."""
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
    except (WebSocketDisconnect, RuntimeError):
        return


def _same_origin(headers: Mapping[str, str]) -> bool:
    """No Origin header: a non-browser client, allowed. Otherwise Origin's host:port must be Host."""
    origin = headers.get("origin")
    if not origin:
        return True
    host = headers.get("host", "")
    return urlsplit(origin).netloc.lower() == host.lower()


def stream_routes(hub: EventHub) -> list[BaseRoute]:
    return build({"events": hub})
