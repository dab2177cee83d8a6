"""What the IMAP core needs from storage, and the state its sessions share (message cache, \\Recent)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Literal, Protocol

from mailsandbox.mime.tree import Header, Message
from mailsandbox.models import FolderInfo, MailEntry


class Backend(Protocol):
    """The folder half of sandbox.store.Store, restated so the core imports no store (a Store satisfies it).

    Methods may raise: a failure becomes a NO reply for that command and the session goes on.
    """

    def folders(self, user: str) -> list[FolderInfo]: ...

    def folder(self, user: str, name: str) -> FolderInfo: ...

    def entries(self, user: str, folder: str) -> list[MailEntry]: ...

    def raw(self, message_id: str) -> bytes: ...

    def create_folder(self, user: str, name: str) -> None: ...

    def delete_folder(self, user: str, name: str) -> None: ...

    def rename_folder(self, user: str, old: str, new: str) -> None: ...

    def subscribe(self, user: str, name: str, subscribed: bool) -> None: ...

    def append(
        self, user: str, folder: str, raw: bytes, flags: Iterable[str] = (), internaldate: float | None = None
    ) -> MailEntry: ...

    def store_flags(
        self,
        user: str,
        folder: str,
        uids: Iterable[int],
        flags: Iterable[str],
        mode: Literal["set", "add", "remove"],
    ) -> list[MailEntry]: ...

    def copy(self, user: str, folder: str, uids: Iterable[int], dest: str) -> list[tuple[int, int]]: ...

    def expunge(self, user: str, folder: str, uids: Iterable[int]) -> None: ...


class MessageCache:
    """Parsed messages by store id. Stored messages never change, so one server's sessions share one cache.

    Headers stay cached far longer than whole messages: FETCH of header fields and SEARCH on
    header keys then need no store read at all after the first pass.
    """

    def __init__(self, max_bytes: int = 64 * 1024 * 1024, max_headers: int = 200_000) -> None:
        self._full: OrderedDict[str, Message] = OrderedDict()
        self._headers: OrderedDict[str, Header] = OrderedDict()
        self._bytes = 0
        self._max_bytes = max_bytes
        self._max_headers = max_headers
        self._lock = threading.Lock()  # the asyncio adapter runs sessions on worker threads

    def message(self, backend: Backend, message_id: str) -> Message:
        with self._lock:
            found = self._full.get(message_id)
            if found is not None:
                self._full.move_to_end(message_id)
                return found
        message = Message(backend.raw(message_id))  # served as stored, so sizes match the store's
        with self._lock:
            if message_id not in self._full:
                self._full[message_id] = message
                self._bytes += len(message.raw)
            while self._bytes > self._max_bytes and len(self._full) > 1:
                _, old = self._full.popitem(last=False)
                self._bytes -= len(old.raw)
            self._headers[message_id] = message.header
            if len(self._headers) > self._max_headers:
                self._headers.popitem(last=False)
        return message

    def header(self, backend: Backend, message_id: str) -> Header:
        found = self._headers.get(message_id)
        if found is not None:
            return found
        return self.message(backend, message_id).header


class RecentTracker:
    """\\Recent (RFC 3501 §2.3.2): the first session to see a new UID gets it; shared by a server."""

    def __init__(self) -> None:
        self._highest: dict[tuple[str, str], tuple[int, int]] = {}  # (user, folder) -> (uidvalidity, uid)
        self._lock = threading.Lock()

    def _seen(self, user: str, folder: str, uidvalidity: int) -> int:
        validity, highest = self._highest.get((user, folder), (uidvalidity, 0))
        return highest if validity == uidvalidity else 0

    def claim(self, user: str, folder: str, uidvalidity: int, uids: Iterable[int]) -> set[int]:
        """UIDs no session was told about yet; from now on they are this caller's \\Recent."""
        with self._lock:
            highest = self._seen(user, folder, uidvalidity)
            mine = {uid for uid in uids if uid > highest}
            if mine:
                self._highest[(user, folder)] = (uidvalidity, max(mine))
            return mine

    def unclaimed(self, user: str, folder: str, uidvalidity: int, uids: Iterable[int]) -> set[int]:
        """Which of `uids` no session has claimed yet (STATUS RECENT, EXAMINE), leaving them unclaimed."""
        highest = self._seen(user, folder, uidvalidity)
        return {uid for uid in uids if uid > highest}

    def forget(self, user: str, folder: str) -> None:
        self._highest.pop((user, folder), None)
