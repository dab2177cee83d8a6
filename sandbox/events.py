"""EventBus: the store and relay publish what happened; the web stream and IMAP IDLE listen."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from mailsandbox.models import StoredMessage


@dataclass(frozen=True)
class MessageStored:
    message: StoredMessage
    # Stored by another frontend on the same database (its listener heard of it): the web stream and IDLE
    # show it, but its webhook and its checks are that frontend's to do, not every frontend's.
    remote: bool = False


@dataclass(frozen=True)
class MessagesDeleted:
    ids: tuple[str, ...]  # empty with all=True
    all: bool = False


@dataclass(frozen=True)
class MessagesUpdated:
    """Read state, flags or tags changed for these messages (`tags`: what each of them now has)."""

    ids: tuple[str, ...]
    read: bool | None = None
    tags: tuple[str, ...] | None = None


@dataclass(frozen=True)
class TagRenamed:
    """A tag was renamed or deleted on every message that had it (`new` empty: deleted)."""

    old: str
    new: str
    ids: tuple[str, ...]


@dataclass(frozen=True)
class MailboxChanged:
    """A folder gained, lost or re-flagged entries: IMAP sessions and IDLE wake on it."""

    user: str
    folder: str


@dataclass(frozen=True)
class DeliveryAttempted:
    message_id: str
    recipient: str
    host: str
    code: int
    status: str  # "delivered" | "deferred" | "bounced" | "dropped"


Event = MessageStored | MessagesDeleted | MessagesUpdated | TagRenamed | MailboxChanged | DeliveryAttempted
Listener = Callable[[Event], None]
log = logging.getLogger("mailsandbox.events")


class _LoopListeners:
    """The listeners of one loop and the events published to them that the loop has not run yet."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.listeners: list[Listener] = []
        self.pending: list[Event] = []  # guarded by the bus lock
        self.scheduled = False

    def run(self, lock: threading.Lock) -> None:
        with lock:
            events, self.pending, self.scheduled = self.pending, [], False
            listeners = list(self.listeners)
        for event in events:
            for listener in listeners:
                try:
                    listener(event)
                except Exception:  # one broken listener must not cost the others their events
                    log.exception("event listener %r failed", listener)


class EventBus:
    """Thread-safe fan-out. Listeners run on the loop that subscribed them, never on the publisher's thread,
    in publication order.

    Events published to a loop that has not yet run the earlier ones join them: a burst (one group commit
    of the store) costs one wake-up per loop, not one per event and listener. A listener runs on the loop
    shared with capture, so it must return at once: one that has work to do (a socket to write, a store to
    read) queues it, bounded, with its own policy for a consumer that falls behind (web/stream.py closes
    the WebSocket, IMAP IDLE coalesces into one pending notification).
    """

    def __init__(self) -> None:
        self._loops: dict[asyncio.AbstractEventLoop, _LoopListeners] = {}
        self._direct: list[Listener] = []  # subscribed outside a loop: called in the publisher's thread
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        with self._lock:
            entry = None
            if loop is not None:
                entry = self._loops.get(loop)
                if entry is None:
                    entry = self._loops[loop] = _LoopListeners(loop)
            group = self._direct if entry is None else entry.listeners
            group.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in group:
                    group.remove(listener)
                if entry is not None and not entry.listeners and self._loops.get(entry.loop) is entry:
                    del self._loops[entry.loop]

        return unsubscribe

    def publish(self, event: Event) -> None:
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        wake: list[_LoopListeners] = []
        with self._lock:
            direct = list(self._direct)
            for entry in list(self._loops.values()):
                if entry.loop.is_closed():
                    del self._loops[entry.loop]
                    continue
                # Bounded by the publishers: the store's writer publishes what one batch committed and
                # waits for the loop to take the next batch's writes, the relay publishes on the loop.
                entry.pending.append(event)
                if not entry.scheduled:
                    entry.scheduled = True
                    wake.append(entry)
        for entry in wake:
            if entry.loop is running:
                entry.loop.call_soon(entry.run, self._lock)
            else:
                try:
                    entry.loop.call_soon_threadsafe(entry.run, self._lock)
                except RuntimeError:  # the loop closed meanwhile: nobody is left to hear it
                    pass
        for listener in direct:
            listener(event)
