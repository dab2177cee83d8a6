"""What every store backend does the same way above its SQL: reading an arriving message into what its
write request needs (`Arrival`), bulk loads, the summary threads and the tag reads. A backend mixes
`StoreCommon` in and gives it `_add_fn` (which builds its write request from an Arrival), `_write_sync`,
`_writer` (with `submit`), `_db` and `_compile_rule` (its search compiler, for tagging rules)."""

from __future__ import annotations

import builtins
import collections
import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mailsandbox import mime
from mailsandbox.clock import Clock
from mailsandbox.models import Envelope, StoredMessage, Summary
from mailsandbox.store import DuplicateMessage, normalize_user
from mailsandbox.store._tags import Tagging, arrival_tags, unique_tags

SUMMARY_THREADS = 2
# A compiled tagging rule: (where, params, tags), the where in the backend's own SQL.
Rule = tuple[str, list[object], tuple[str, ...]]


@dataclasses.dataclass
class Arrival:
    """A message on its way in, read once: its bytes joined, summary parsed, mailboxes, queue and tags."""

    raw: bytes
    summary: Summary
    envelope: Envelope
    created: float
    users: tuple[str, ...]  # normalized, each once
    queue: tuple[str, ...]
    tags: list[str]  # cleaned arrival tags
    rules: list[Rule]
    dedupe: bool  # skip it if its Message-ID is already stored


def stored(message: StoredMessage | None, message_id: str) -> StoredMessage:
    """The add's result, or DuplicateMessage for an add the store skipped (`message_id`: its header's)."""
    if message is None:
        raise DuplicateMessage(message_id)
    return message


class StoreCommon:
    clock: Clock
    tagging: Tagging
    ignore_duplicate_ids: bool
    _summarizer: ThreadPoolExecutor | None = None

    # -- given by the backend ---------------------------------------------------
    def _add_fn(
        self, raw: bytes | builtins.list[bytes], envelope: Envelope, deliver_to: Sequence[str] | None,
        received_at: float | None, queue: Sequence[str] = (), from_headers: bool = False,
    ) -> Any:  # fmt: skip
        raise NotImplementedError

    def _write_sync(self, fn: Any) -> Any:
        raise NotImplementedError

    def _compile_rule(self, query: str, now: float) -> tuple[str, list[object]]:
        raise NotImplementedError

    @property
    def _db(self) -> Any:
        raise NotImplementedError

    _writer: Any

    # -- shared -------------------------------------------------------------------
    def _arrival(
        self, raw: bytes | builtins.list[bytes], envelope: Envelope, deliver_to: Sequence[str] | None,
        received_at: float | None, queue: Sequence[str] = (), from_headers: bool = False,
    ) -> Arrival:  # fmt: skip
        """Read an arriving message (milliseconds for a large one: the caller keeps it off the loop)."""
        if not isinstance(raw, bytes):  # pieces: joined once (a large join releases the GIL), then let go
            parts, raw = raw, b"".join(raw)
            parts.clear()
        created = received_at if received_at is not None else self.clock.now()
        summary = mime.summarize(raw)
        if from_headers:  # a bulk load: what the envelope leaves out, as the headers give it
            people = tuple(dict.fromkeys(a.address for a in (*summary.to, *summary.cc, *summary.bcc)))
            sender = envelope.mail_from or (summary.from_.address if summary.from_ else "")
            envelope = dataclasses.replace(envelope, mail_from=sender, rcpt_tos=envelope.rcpt_tos or people)
        users = (normalize_user(u) for u in (envelope.rcpt_tos if deliver_to is None else deliver_to))
        tags = unique_tags(arrival_tags(self.tagging, raw, summary, envelope))
        rules = [(*self._compile_rule(r.query, created), r.tags) for r in self.tagging.rules]
        return Arrival(raw, summary, envelope, created, tuple(dict.fromkeys(users)), tuple(queue), tags, rules,
                       self.ignore_duplicate_ids and bool(summary.message_id))  # fmt: skip

    def add_message_sync(
        self,
        raw: bytes | builtins.list[bytes],
        envelope: Envelope,
        deliver_to: Sequence[str] | None = None,
        received_at: float | None = None,
    ) -> StoredMessage:
        """For bulk loads and benchmarks outside a loop."""
        add = self._add_fn(raw, envelope, deliver_to, received_at)
        return stored(self._write_sync(add), add.summary.message_id)

    def add_messages_sync(
        self,
        items: Iterable[tuple[bytes, Envelope] | tuple[bytes, Envelope, float | None]],
        window: int = 256,
    ) -> Iterator[StoredMessage | None]:
        """For bulk loads outside a loop: (raw, envelope[, received_at]) items, up to `window` in flight so
        the writer commits them in groups; yields each message in order (None for an ignored duplicate).
        An envelope without sender or recipients takes them from the message's From, To, Cc and Bcc.
        `items` is read lazily, so a stream of messages is never all in memory."""
        pending: collections.deque[Any] = collections.deque()
        for raw, envelope, *when in items:
            received = when[0] if when else None
            pending.append(self._writer.submit(self._add_fn(raw, envelope, None, received, (), True)))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    def _summaries(self) -> ThreadPoolExecutor:
        """The store's threads for joining and parsing large messages (bounded by the listeners'
        connection limits: one message in flight per connection)."""
        if self._summarizer is None:
            self._summarizer = ThreadPoolExecutor(SUMMARY_THREADS, thread_name_prefix="store-summarize")
        return self._summarizer

    # -- tags (the same SQL on either backend) --------------------------------------
    _tagged = "tags != ''"  # which messages' tags count (SQLite's skips those a large delete hid)

    def tags(self) -> tuple[str, ...]:
        """Every tag on a message, sorted (an index holds only tagged messages)."""
        rows = self._db.execute(f"SELECT DISTINCT tags FROM messages WHERE {self._tagged}").fetchall()
        return tuple(sorted({t for (tags,) in rows for t in tags.split(",") if t}, key=str.lower))

    def tag_counts(self) -> dict[str, int]:
        """Tag -> how many messages have it (Mailpit's info `Tags`)."""
        counts: collections.Counter[str] = collections.Counter()
        for (tags,) in self._db.execute(f"SELECT tags FROM messages WHERE {self._tagged}").fetchall():
            counts.update(t for t in tags.split(",") if t)
        return dict(sorted(counts.items(), key=lambda kv: kv[0].lower()))

    async def rename_tag(self, old: str, new: str) -> None:
        """Rename a tag on every message that has it; ValueError with Mailpit's words when the new name is
        not a tag, the old one is on no message, or another tag already has the new name."""
        name = unique_tags([new])
        if not name:
            raise ValueError(f"invalid tag name: {new}")
        await self._retag(old, name[0])

    async def delete_tag(self, tag: str) -> None:
        """Take a tag off every message (the messages stay); ValueError when no message has it."""
        await self._retag(tag, "")

    async def _retag(self, old: str, new: str) -> None:
        raise NotImplementedError
