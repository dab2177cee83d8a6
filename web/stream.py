"""/api/events: the live event stream (a WebSocket carrying Mailpit-shaped JSON) fed from the EventBus.

Every frame is one JSON object `{"Type": str, "Data": ...}`:
    new       Data = MessageSummary (the same shape as one item of GET /api/v1/messages)
    delete    Data = {"ID": str}, one frame per message deleted (as Mailpit sends)
    update    Data = {"ID": str, "Read": bool}, one frame per message whose read state changed
    truncate  Data = null: every message was deleted
    prune     Data = null: more than MAX_IDS changed at once; reload
    stats     Data = {"Total": int, "Unread": int, "Version": str}, shortly after any change (coalesced)
    delivery  Data = {"ID", "Recipient", "Host", "Code", "Status"}: a relay attempt (our extra)
The server ignores what clients send. A client that falls behind by more than `queue_size` frames
is disconnected (close code 1013) rather than silently missing events; reconnect and reload.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import urlsplit

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from sandbox.events import (
    DeliveryAttempted,
    Event,
    EventBus,
    MessagesDeleted,
    MessageStored,
    MessagesUpdated,
)
from sandbox.models import StoredMessage
from sandbox.store import Store

Summarize = Callable[[StoredMessage], Mapping[str, Any]]

# Above this many IDs a change is announced as one "prune" (reload) instead of a frame per ID (Mailpit's 200).
MAX_IDS = 200
STATS_DELAY = 0.1  # seconds: many changes in a burst give one stats frame
CLOSE_TOO_SLOW = 1013  # RFC 6455 §7.4.1 registry: "Try Again Later"
CLOSE_POLICY = 1008  # RFC 6455 §7.4.1: policy violation (a cross-site page)


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
        return [_frame("update", {"ID": i, "Read": event.read}) for i in event.ids]
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


class EventHub:
    """Subscribes to the bus once (lazily, on the serving loop) and fans each frame out to clients.

    Frames are encoded once per event, not once per client.
    """

    def __init__(self, store: Store, bus: EventBus, summarize: Summarize, queue_size: int = 10_000) -> None:
        self._store = store
        self._bus = bus
        self._summarize = summarize
        self._queue_size = queue_size
        self._clients: set[asyncio.Queue[str | None]] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self._stats_pending = False
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
        for queue in list(self._clients):
            self._offer(queue, None)

    def _offer(self, queue: asyncio.Queue[str | None], frame: str | None) -> None:
        try:
            queue.put_nowait(frame)
        except asyncio.QueueFull:
            # A stalled client: drop its backlog and tell its sender to close.
            while not queue.empty():
                queue.get_nowait()
            queue.put_nowait(None)
            self._clients.discard(queue)

    def _broadcast(self, frame: str) -> None:
        for queue in list(self._clients):
            self._offer(queue, frame)

    def _on_event(self, event: Event) -> None:
        if not self._clients:
            return
        for frame in encode(event, self._summarize):
            self._broadcast(frame)
        if not isinstance(event, DeliveryAttempted) and not self._stats_pending:
            self._stats_pending = True
            asyncio.get_running_loop().call_later(STATS_DELAY, self._send_stats)

    def _send_stats(self) -> None:
        if not self._clients:
            self._stats_pending = False
            return
        task = asyncio.get_running_loop().create_task(self._stats())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _stats(self) -> None:
        try:
            # Counting a large store takes milliseconds: do it off the loop SMTP shares.
            total, unread = await asyncio.to_thread(self._store.count)
        except Exception:  # a store closing under us: skip this frame, the next change sends one
            return
        finally:
            self._stats_pending = False
        self._broadcast(_frame("stats", {"Total": total, "Unread": unread, "Version": VERSION}))

    def add(self) -> asyncio.Queue[str | None]:
        self._ensure_subscribed()
        queue: asyncio.Queue[str | None] = asyncio.Queue(self._queue_size)
        self._clients.add(queue)
        return queue

    def remove(self, queue: asyncio.Queue[str | None]) -> None:
        self._clients.discard(queue)

    async def endpoint(self, websocket: WebSocket) -> None:
        if not _same_origin(websocket.headers):
            # Browsers let any site open a WebSocket to localhost; only our own pages may read mail.
            await websocket.close(code=CLOSE_POLICY)
            return
        await websocket.accept()
        queue = self.add()
        reader = asyncio.create_task(_drain(websocket))
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if reader in done:
                    getter.cancel()
                    return
                frame = getter.result()
                if frame is None:
                    await websocket.close(code=CLOSE_TOO_SLOW)
                    return
                await websocket.send_text(frame)
        except (WebSocketDisconnect, RuntimeError, OSError):
            return  # the client went away mid-send
        finally:
            self.remove(queue)
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


def stream_routes(hub: EventHub) -> list[WebSocketRoute]:
    return [WebSocketRoute("/api/events", hub.endpoint, name="events")]
