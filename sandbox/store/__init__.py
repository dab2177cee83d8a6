"""Store: the only storage API the rest of the sandbox imports.

Writes are durable when they return: `add_message` resolves only after the
transaction that holds the message has been committed (group commit batches
concurrent writers into one transaction). Reads are synchronous and cheap.

Users (mailbox owners) are lower-cased addresses; every user has an INBOX.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from mailsandbox.models import Attempt, Envelope, FolderInfo, MailEntry, StoredMessage


class StoreError(Exception):
    """Base for storage errors the protocol layers turn into replies."""


class NoSuchFolder(StoreError):
    pass


class FolderExists(StoreError):
    pass


class NoSuchMessage(StoreError):
    pass


class StoreClosed(StoreError, RuntimeError):
    """The store was closed: background work that meets it (a sweep after stop) ends quietly."""

    def __init__(self) -> None:
        super().__init__("store is closed")


class StoreUnavailable(StoreError):
    """The database cannot be reached (a PostgreSQL server that stopped or went away): the web answers
    503, SMTP a temporary 451; the store reconnects by itself once the server is back."""


class DuplicateMessage(StoreError):
    """add_message on a store that ignores duplicate Message-IDs: one with this Message-ID is stored."""

    def __init__(self, message_id: str) -> None:
        super().__init__(f"a message with Message-ID {message_id} is already stored")
        self.message_id = message_id


FlagMode = Literal["set", "add", "remove"]


@dataclass(frozen=True)
class Page:
    """One page of a message listing, newest first."""

    messages: list[StoredMessage]
    total: int  # messages matching, before paging
    unread: int  # unread among all messages (Mailpit's meaning)
    start: int
    matching_unread: int = 0  # unread among the messages matching
    tags: tuple[str, ...] = ()  # every tag in the store, sorted


@dataclass(frozen=True)
class MailboxStat:
    """One recipient mailbox as the UI lists it."""

    user: str
    total: int
    unread: int


@dataclass(frozen=True)
class QueueItem:
    """One recipient of one message waiting in the relay's outbound queue."""

    message_id: str
    recipient: str
    attempts: int
    next_attempt: float
    first_attempt: float
    last_error: str
    warned: bool


def normalize_user(address: str) -> str:
    """Mailbox names compare case-insensitively: Bob@Example.TEST is bob@example.test."""
    return address.strip().strip("<>").lower()


class Messages(Protocol):
    """Captured messages: adding, listing, searching, reading, deleting."""

    # -- capture (SMTP, API, relay) ----------------------------------------
    async def add_message(
        self,
        raw: bytes | builtins.list[bytes],
        envelope: Envelope,
        deliver_to: Sequence[str] | None = None,
        received_at: float | None = None,
        queue: Sequence[str] = (),
    ) -> StoredMessage:
        """Store `raw` and put it in the INBOX of each of `deliver_to` (default: every envelope
        recipient). Returns after commit. `deliver_to=[]` stores without delivering (the relay
        delivers later with `deliver`); `queue` recipients enter the relay's queue in the same
        transaction, so a 250 never leaves a queued recipient behind. `raw` may come as its pieces in
        order, a list this call empties: a large message is joined once, off the loop, and not held twice.
        Raises DuplicateMessage, storing nothing, when the store ignores duplicate Message-IDs and one with
        the same Message-ID is already stored (or is in the same group commit)."""
        ...

    async def deliver(
        self, message_id: str, user: str, folder: str = "INBOX", prefix: bytes = b"", suffix: bytes = b""
    ) -> MailEntry:
        """Put a stored message into a user's folder. A non-empty `prefix` (the Received: lines the
        relay's hops stamped, and any header fields they added) makes the entry a hidden child copy whose
        raw() is prefix + the original + `suffix` (what a rewriting hop appended to the body); the copy
        keeps only those added bytes, the original's are read where they are. Listings show only
        originals, and a mailbox filter finds the original through its children."""
        ...

    # -- listing and reading (web API, plugin) -----------------------------
    def get(self, message_id: str) -> StoredMessage | None:
        """`message_id` may be "latest"."""
        ...

    def raw(self, message_id: str) -> bytes: ...

    def list(self, start: int = 0, limit: int = 50, user: str | None = None) -> Page: ...

    def search(
        self, query: str, start: int = 0, limit: int = 50, user: str | None = None, tz: str | None = None
    ) -> Page:
        """Mailpit's query language (from:, to:, subject:, is:unread, has:attachment, ...), dates read in
        the IANA zone `tz`. Raises ValueError for a query it cannot read, QueryTooSlow over its budget."""
        ...

    def search_ids(self, query: str, user: str | None = None, tz: str | None = None) -> builtins.list[str]: ...

    def count(self) -> tuple[int, int]:
        """(total, unread)."""
        ...

    def mailboxes(self) -> builtins.list[MailboxStat]: ...

    async def delete(self, ids: Sequence[str] | None) -> int:
        """Delete these messages everywhere (None: all). Returns how many went."""
        ...

    async def prune_before(self, cutoff: float, limit: int = 500) -> int:
        """Delete at most `limit` of the messages received before `cutoff`, in one transaction of its
        own; returns how many went (fewer than `limit`: none older are left)."""
        ...

    async def set_read(self, ids: Sequence[str] | None, read: bool) -> int:
        """Set or clear \\Seen on every folder entry of these messages (None: all); returns how many
        changed (only those are announced)."""
        ...

    # -- tags (Mailpit's: names unique whatever their case) -----------------
    def tags(self) -> tuple[str, ...]:
        """Every tag on a message, sorted case-insensitively."""
        ...

    def tag_counts(self) -> dict[str, int]:
        """Tag -> how many messages have it."""
        ...

    async def set_tags(self, ids: Sequence[str], tags: Sequence[str]) -> int:
        """Replace the tags of these messages; returns how many of them exist."""
        ...

    async def rename_tag(self, old: str, new: str) -> None:
        """ValueError (Mailpit's text) for an invalid new name, an unknown old one or a taken new one."""
        ...

    async def delete_tag(self, tag: str) -> None:
        """ValueError when no message has `tag`."""
        ...


class Mailboxes(Protocol):
    """Each user's folders and entries, with UIDs and flags (POP3, IMAP). The blocking writes are for IMAP's
    worker threads; `discard` is the awaitable one, durable on return."""

    # -- folders and entries (IMAP, POP3) ----------------------------------
    def folders(self, user: str) -> builtins.list[FolderInfo]: ...

    def folder(self, user: str, name: str) -> FolderInfo:
        """Raises NoSuchFolder. INBOX is created on first use."""
        ...

    def entries(self, user: str, folder: str) -> builtins.list[MailEntry]:
        """All entries of a folder in UID order."""
        ...

    def create_folder(self, user: str, name: str) -> None: ...

    def delete_folder(self, user: str, name: str) -> None: ...

    def rename_folder(self, user: str, old: str, new: str) -> None: ...

    def subscribe(self, user: str, name: str, subscribed: bool) -> None: ...

    def append(
        self, user: str, folder: str, raw: bytes, flags: Iterable[str] = (), internaldate: float | None = None
    ) -> MailEntry:
        """IMAP APPEND: store a new message straight into a folder."""
        ...

    def store_flags(
        self, user: str, folder: str, uids: Iterable[int], flags: Iterable[str], mode: FlagMode
    ) -> builtins.list[MailEntry]: ...

    def copy(self, user: str, folder: str, uids: Iterable[int], dest: str) -> builtins.list[tuple[int, int]]:
        """Returns (source uid, new uid) pairs; COPYUID in RFC 4315 terms."""
        ...

    def expunge(self, user: str, folder: str, uids: Iterable[int]) -> None:
        """Remove entries. A message left in no folder, and not waiting in the relay queue, is deleted."""
        ...

    async def discard(self, user: str, folder: str, uids: Iterable[int]) -> None:
        """expunge, awaited on the loop (POP3's UPDATE): resolves after COMMIT."""
        ...


class RelayQueue(Protocol):
    """The relay's outbound queue and its trace. Each outcome of an attempt is one domain operation in
    one transaction: its trace rows, the delivery (for a success) and the queue row's removal or new
    schedule, so a crash leaves all of it or none. An operation on a recipient no longer queued (done by
    another pass, dropped, or its message deleted) writes nothing and says so."""

    def queue(self) -> builtins.list[QueueItem]: ...

    def queue_count(self) -> int:
        """Recipients waiting in the relay queue (for /metrics: a count, not the rows)."""
        ...

    def due(self, now: float) -> builtins.list[QueueItem]: ...

    def trace(self, message_id: str) -> builtins.list[Attempt]: ...

    async def record_delivery(
        self, message_id: str, recipient: str, attempts: Sequence[Attempt], prefix: bytes = b"", suffix: bytes = b""
    ) -> MailEntry | None:
        """The recipient was delivered: record `attempts`, put the message (with the hops' `prefix` and
        `suffix`, see `deliver`) into the recipient's INBOX and dequeue it. None when it was not queued."""
        ...

    async def record_deferral(
        self, message_id: str, recipient: str, attempts: Sequence[Attempt], *, next_attempt: float, error: str,
        warned: bool,
    ) -> bool:  # fmt: skip
        """A temporary failure: record `attempts`, count the try and reschedule. False when not queued."""
        ...

    async def record_removal(self, message_id: str, recipient: str, attempts: Sequence[Attempt] = ()) -> bool:
        """The recipient leaves the queue undelivered (bounced, dropped, message gone): record `attempts`
        and dequeue it. False when it was not queued."""
        ...


class Store(Messages, Mailboxes, RelayQueue, Protocol):
    """Everything the sandbox keeps; every write resolves only once durable."""

    def close(self) -> None: ...


class AuthStore(Protocol):
    """Email authentication results kept with each message (sandbox/auth computes them)."""

    async def save_auth(self, message_id: str, summary: Mapping[str, str], report: Mapping[str, Any]) -> bool:
        """`summary`: method ("spf", "dkim", "dmarc", "arc") -> result word; `report`: the full JSON.
        False when the message no longer exists."""
        ...

    async def save_auths(self, items: Sequence[tuple[str, Mapping[str, str], Mapping[str, Any]]]) -> int:
        """Several (message_id, summary, report) in one transaction; how many messages still existed."""
        ...

    def auth_report(self, message_id: str) -> dict[str, Any] | None: ...

    def delivered_copy(self, message_id: str, user: str) -> str | None:
        """The id of the message as it reached `user`'s mailbox (a relay's copy, or itself)."""
        ...

    def unchecked_auth(self, limit: int) -> builtins.list[str]:
        """Ids of up to `limit` original messages without results, newest first."""
        ...
