"""EventBus: the store and relay publish what happened; the web stream and IMAP IDLE listen."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sandbox.models import StoredMessage


@dataclass(frozen=True)
class MessageStored:
    message: StoredMessage


@dataclass(frozen=True)
class MessagesDeleted:
    ids: tuple[str, ...]  # empty with all=True
    all: bool = False


@dataclass(frozen=True)
class MessagesUpdated:
    """Read state or flags changed for these messages."""

    ids: tuple[str, ...]
    read: bool | None = None


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


Event = MessageStored | MessagesDeleted | MessagesUpdated | MailboxChanged | DeliveryAttempted
Listener = Callable[[Event], None]


class EventBus:
    """Thread-safe fan-out. Listeners run on the loop that subscribed them, never on the publisher's thread."""

    def __init__(self) -> None:
        self._listeners: list[tuple[asyncio.AbstractEventLoop | None, Listener]] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        entry = (loop, listener)
        with self._lock:
            self._listeners.append(entry)

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._listeners:
                    self._listeners.remove(entry)

        return unsubscribe

    def publish(self, event: Event) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for loop, listener in listeners:
            if loop is None:
                listener(event)
                continue
            if loop.is_closed():
                continue
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                loop.call_soon(listener, event)
            else:
                loop.call_soon_threadsafe(listener, event)
