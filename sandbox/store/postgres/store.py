"""PostgresStore: the Store protocol on a PostgreSQL database that several frontends share.

Each frontend (a `mailsandbox serve --db postgresql://...` process) has one writer thread that commits
its sessions' writes in groups (`_writer.py`: a 250 only after COMMIT), a reading connection per thread,
and a listener that turns the other frontends' commits into events on its bus (`_notify.py`). Every row
the frontends share is allocated in the database: message rows by an identity column, UIDs and UIDVALIDITY
by row-locked counters (`_mailbox.py`), a relay recipient by the one transaction that takes its queue row.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dataclasses
import functools
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import psycopg.errors
from psycopg.abc import Buffer
from psycopg.adapt import Dumper
from psycopg.types import string

from mailsandbox import mime
from mailsandbox.clock import Clock, ManualClock, SystemClock
from mailsandbox.events import (
    Event,
    EventBus,
    MailboxChanged,
    MessagesDeleted,
    MessageStored,
    MessagesUpdated,
    TagRenamed,
)
from mailsandbox.models import Envelope, MailEntry, StoredMessage, Summary
from mailsandbox.store import (
    MailboxStat,
    NoSuchMessage,
    Page,
    StoreClosed,
    StoreUnavailable,
    normalize_user,
)
from mailsandbox.store._common import Rule, StoreCommon, stored
from mailsandbox.store._mailbox import canonical_folder
from mailsandbox.store._packing import pack, unpack
from mailsandbox.store._search import SEARCH_SECONDS, QueryTooSlow
from mailsandbox.store._tags import Tagging, unique_tags
from mailsandbox.store.postgres._auth import PgAuthMixin
from mailsandbox.store.postgres._mailbox import SEEN, PgMailboxMixin, deliver_entries, deliver_entry, folder_id
from mailsandbox.store.postgres._notify import CHANNEL, Listener, clock_payload
from mailsandbox.store.postgres._queue import PgQueueMixin
from mailsandbox.store.postgres._schema import migrate
from mailsandbox.store.postgres._search import compile_query
from mailsandbox.store.postgres._text import vector_text
from mailsandbox.store.postgres._writer import PgWriteFn, PgWriter
from mailsandbox.store.query import time_zone
from mailsandbox.store.sqlite import (
    FEW_MATCHES,
    INLINE_SUMMARY,
    MAX_INDEXED_TEXT,
    Relayed,
    _addrs,
    _envelope,
    envelope_json,
    new_id,
    row_to_message,
)

COLUMNS = (
    "m.id, m.created, m.message_id, m.subject, m.from_name, m.from_addr, m.to_json, m.cc_json, "
    "m.bcc_json, m.reply_to_json, m.date, m.size, m.attachments, m.inline, m.snippet, m.read, m.envelope_json, "
    "m.tags, "
    "(SELECT string_agg(DISTINCT f.username, ',') FROM entries e JOIN folders f ON f.id = e.folder_id "
    "WHERE e.root = m.rowid)"
)
# The first key of POP3's maildrop advisory locks (the second is the user's hashtext).
MAILDROP_LOCKS = 0x504F50
DELETE_BATCH = 500  # messages a delete transaction takes out (captures commit between them)
_DATA_TABLES = "messages, message_raw, relayed, entries, message_auth, queue, attempts, tag_names"


def _nul_safe(base: type[Dumper]) -> type[Dumper]:
    """`base` (a str dumper) with NUL as U+FFFD: PostgreSQL's text cannot hold NUL, which a header of a
    captured message or a query parameter may carry (SQLite keeps it; here it reads as a replacement)."""

    class NulSafe(base):  # type: ignore[valid-type, misc]
        def dump(self, obj: str) -> Buffer | None:
            return super().dump(obj.replace("\x00", "\ufffd") if "\x00" in obj else obj)  # type: ignore[no-any-return]

    return NulSafe


# The pure-Python dumpers: the C ones cannot be subclassed.
_NUL_SAFE = [_nul_safe(string.StrDumperUnknown), _nul_safe(string.StrBinaryDumper)]


class StoreConnection(psycopg.Connection[Any]):
    """A connection whose loss is StoreUnavailable (the web's 503, SMTP's 451), not a driver error."""

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().execute(*args, **kwargs)
        except psycopg.OperationalError as exc:
            if self.broken or self.closed:  # the connection went, not the statement
                raise StoreUnavailable(f"the database connection was lost: {exc}") from exc
            raise


@dataclasses.dataclass(frozen=True)
class Packed:
    """A message's bytes, already zstd-packed (off the loop and the writer, for a large one)."""

    data: bytes
    size: int

    def __len__(self) -> int:
        return self.size


def insert_message(
    conn: psycopg.Connection, raw: bytes | Packed | Relayed, summary: Summary, envelope: Envelope, created: float,
    parent: int | None = None,
) -> tuple[int, str]:  # fmt: skip
    """Insert a message (its row, raw bytes and, for an original, its full-text vector); (rowid, id)."""
    return insert_messages(conn, [(raw, summary, envelope, created, parent)])[0]


# One message to insert: (raw, summary, envelope, created, parent rowid for a relay copy).
NewMessage = tuple["bytes | Packed | Relayed", Summary, Envelope, float, "int | None"]
_ROW = "(" + ", ".join(["%s"] * 19) + (
    ", CASE WHEN %s THEN setweight(to_tsvector('simple', %s), 'A') || setweight(to_tsvector('simple', %s), 'B')"
    " || setweight(to_tsvector('simple', %s), 'C') || setweight(to_tsvector('simple', %s), 'D') END)"
)
_COLUMNS_IN = (
    "id, parent, created, message_id, subject, from_name, from_addr, to_json, cc_json, bcc_json, reply_to_json,"
    " date, size, attachments, inline, snippet, envelope_json, username, headers, fts"
)


def _row(mid: str, item: NewMessage) -> tuple[object, ...]:
    raw, summary, envelope, created, parent = item
    sender = summary.from_
    from_name, from_addr = (sender.name, sender.address) if sender else ("", "")
    to_json = _addrs(summary.to)
    people = " ".join(f"{a.name} {a.address}" for a in (*summary.to, *summary.cc, *summary.bcc))
    original = parent is None
    return (
        mid, parent, created, summary.message_id, summary.subject, from_name, from_addr, to_json,
        _addrs(summary.cc), _addrs(summary.bcc), _addrs(summary.reply_to), summary.date, len(raw),
        summary.attachments, summary.inline, summary.snippet, envelope_json(envelope), envelope.auth_user or "",
        f"{summary.subject}\n{from_name}\n{from_addr}\n{to_json}", original,
        vector_text(summary.subject) if original else "",
        vector_text(f"{from_name} {from_addr} {envelope.mail_from}") if original else "",
        vector_text(f"{people} {' '.join(envelope.rcpt_tos)}") if original else "",
        vector_text(summary.text[:MAX_INDEXED_TEXT]) if original else "",
    )  # fmt: skip


def insert_messages(conn: psycopg.Connection, items: Sequence[NewMessage]) -> list[tuple[int, str]]:
    """Insert messages with one multi-row INSERT per table (a round trip each, whatever their number);
    returns (rowid, id) of each, in order."""
    ids = [new_id() for _ in items]
    rows = conn.execute(
        f"INSERT INTO messages ({_COLUMNS_IN}) VALUES {', '.join([_ROW] * len(items))} RETURNING id, rowid",
        [value for mid, item in zip(ids, items, strict=True) for value in _row(mid, item)],
    ).fetchall()
    rowids = {str(mid): int(rowid) for mid, rowid in rows}
    raws: list[object] = []
    for mid, (raw, *_rest) in zip(ids, items, strict=True):
        if isinstance(raw, Relayed):
            conn.execute(
                "INSERT INTO relayed (rowid, prefix, suffix) VALUES (%s, %s, %s)", (rowids[mid], raw.prefix, raw.suffix)
            )
        else:
            raws += [rowids[mid], raw.data if isinstance(raw, Packed) else pack(raw)]
    if raws:
        marks = ", ".join(["(%s, %s)"] * (len(raws) // 2))
        conn.execute(f"INSERT INTO message_raw (rowid, raw) VALUES {marks}", raws)
    return [(rowids[mid], mid) for mid in ids]


def canonical(conn: psycopg.Connection, tags: Sequence[str]) -> list[str]:
    """Each tag in the spelling the store has for it (case-insensitively), else as given, which becomes
    the store's spelling (the first frontend to write it wins)."""
    out: list[str] = []
    for tag in tags:
        conn.execute(
            "INSERT INTO tag_names (folded, name) VALUES (lower(%s), %s) ON CONFLICT (folded) DO NOTHING", (tag, tag)
        )
        row = conn.execute("SELECT name FROM tag_names WHERE folded = lower(%s)", (tag,)).fetchone()
        out.append(row[0] if row else tag)
    return sorted(dict.fromkeys(out), key=str.lower)


def _holding(conn: psycopg.Connection, tag: str) -> list[tuple[int, str, str]]:
    """(rowid, id, tags) of every message that has `tag` (case-insensitively)."""
    rows = conn.execute(
        "SELECT rowid, id, tags FROM messages WHERE tags != '' AND strpos(',' || lower(tags) || ',', %s) > 0"
        " ORDER BY rowid FOR UPDATE",
        (f",{tag.lower()},",),
    ).fetchall()
    return [(int(r), str(i), str(t)) for r, i, t in rows]


def delete_rows(conn: psycopg.Connection, rowids: Sequence[int]) -> list[Event]:
    """Delete originals (their relay copies, raw bytes, entries and results go by cascade) and their queue
    rows and trace; say which folders lost entries."""
    if not rowids:
        return []
    ids = list(rowids)
    folders = conn.execute(
        "SELECT DISTINCT f.username, f.name FROM entries e JOIN folders f ON f.id = e.folder_id"
        " WHERE e.root = ANY(%s) ORDER BY 1, 2",
        (ids,),
    ).fetchall()
    gone = [str(r[0]) for r in conn.execute("DELETE FROM messages WHERE rowid = ANY(%s) RETURNING id", (ids,))]
    conn.execute("DELETE FROM queue WHERE message = ANY(%s)", (gone,))
    conn.execute("DELETE FROM attempts WHERE message = ANY(%s)", (gone,))
    return [MessagesDeleted(tuple(gone)), *(MailboxChanged(u, f) for u, f in folders)]


_QUEUE_INSERT = (
    "INSERT INTO queue (message, recipient, next_attempt, first_attempt) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING"
)


class _Add:
    """One add_message request: the write the writer runs."""

    def __init__(
        self, raw: bytes | Packed, summary: Summary, envelope: Envelope, created: float, users: tuple[str, ...],
        queue: tuple[str, ...], dedupe: bool, tags: Sequence[str], rules: Sequence[Rule],
    ) -> None:  # fmt: skip
        self.raw, self.summary, self.envelope, self.created = raw, summary, envelope, created
        self.users, self.queue, self.tags, self.rules = users, queue, tags, rules
        self.dedupe = dedupe and bool(summary.message_id)

    @staticmethod
    def group(conn: psycopg.Connection, adds: list[_Add]) -> list[tuple[StoredMessage | None, list[Event]]]:
        """A batch's consecutive adds in a few statements; one that needs look-ups of its own (duplicates,
        tags, rules) goes alone."""
        if any(a.dedupe or a.tags or a.rules for a in adds):
            return [a(conn) for a in adds]
        ids = insert_messages(conn, [(a.raw, a.summary, a.envelope, a.created, None) for a in adds])
        pairs = list(zip(adds, ids, strict=True))
        deliver_entries(conn, [(u, "INBOX", rowid, rowid, "", a.created) for a, (rowid, _) in pairs for u in a.users])
        queued = [(mid, r, a.created, a.created) for a, (_, mid) in pairs for r in a.queue]
        if queued:
            with conn.cursor() as cur:
                cur.executemany(_QUEUE_INSERT, queued)
        return [a._stored(mid, ()) for a, (_, mid) in pairs]

    def _stored(self, mid: str, tags: tuple[str, ...]) -> tuple[StoredMessage, list[Event]]:
        message = StoredMessage(
            id=mid, created=self.created, summary=self.summary, envelope=self.envelope, read=False,
            mailboxes=tuple(sorted(self.users)), tags=tags,
        )  # fmt: skip
        return message, [MessageStored(message), *(MailboxChanged(user, "INBOX") for user in self.users)]

    def __call__(self, conn: psycopg.Connection) -> tuple[StoredMessage | None, list[Event]]:
        if self.dedupe:
            # Serialized by Message-ID across frontends: a second add of one id waits for the first's commit.
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (self.summary.message_id,))
            if conn.execute(
                "SELECT 1 FROM messages WHERE parent IS NULL AND message_id = %s AND message_id != '' LIMIT 1",
                (self.summary.message_id,),
            ).fetchone():
                return None, []
        rowid, mid = insert_message(conn, self.raw, self.summary, self.envelope, self.created)
        deliver_entries(conn, [(user, "INBOX", rowid, rowid, "", self.created) for user in self.users])
        if self.queue:
            with conn.cursor() as cur:
                cur.executemany(_QUEUE_INSERT, [(mid, r, self.created, self.created) for r in self.queue])
        return self._stored(mid, self._tag(conn, rowid) if self.tags or self.rules else ())

    def _tag(self, conn: psycopg.Connection, rowid: int) -> tuple[str, ...]:
        found = list(self.tags)
        for where, params, rule_tags in self.rules:
            sql = f"SELECT 1 FROM messages m WHERE m.rowid = %s AND ({where})"
            if conn.execute(sql, [rowid, *params]).fetchone():
                found += rule_tags
        tags = canonical(conn, unique_tags(found))
        if tags:
            conn.execute("UPDATE messages SET tags = %s WHERE rowid = %s", (",".join(tags), rowid))
        return tuple(tags)


class PostgresStore(StoreCommon, PgMailboxMixin, PgQueueMixin, PgAuthMixin):
    """The Store protocol over a PostgreSQL database (`dsn`: postgresql://user@host/db)."""

    search_seconds = SEARCH_SECONDS  # how long one search may run (a test may set it on the instance)

    def __init__(
        self,
        dsn: str,
        bus: EventBus | None = None,
        clock: Clock | None = None,
        max_messages: int = 0,
        ignore_duplicate_ids: bool = False,
        tagging: Tagging | None = None,
    ) -> None:
        self.dsn = dsn
        self.bus = bus or EventBus()
        self.clock = clock or SystemClock()
        self.max_messages = max_messages
        self.ignore_duplicate_ids = ignore_duplicate_ids
        self.tagging = tagging or Tagging()
        for rule in self.tagging.rules:  # a rule that cannot be read fails here, not on every message
            compile_query(rule.query, 0.0)
        self._closed = False
        self._local = threading.local()
        self._readers: list[psycopg.Connection] = []
        self._readers_lock = threading.Lock()
        self._summarizer: ThreadPoolExecutor | None = None
        self._locks_conn: psycopg.Connection | None = None
        self._clock: ManualClock | None = None
        self._shared_offset = 0.0
        self._locks_mutex = threading.Lock()
        with self._connect() as conn:
            migrate(conn)
        self.origin = new_id()  # this frontend, in the events it sends the others
        self._writer = PgWriter(self._connect, self.bus.publish, self.origin, self._prune if max_messages > 0 else None)
        try:
            self._listener = Listener(self._connect, self.origin, self.get, self.bus.publish, self._clock_moved)
        except BaseException:
            self._writer.close()
            raise

    # -- connections -----------------------------------------------------------
    def _connect(self) -> psycopg.Connection:
        # UTF-8 whatever the database's encoding: on an SQL_ASCII database psycopg would return bytes for text.
        try:
            conn = StoreConnection.connect(
                self.dsn, autocommit=True, application_name="mailsandbox", connect_timeout=10,
                client_encoding="utf8",
            )  # fmt: skip
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"the database cannot be reached: {exc}") from exc
        for dumper in _NUL_SAFE:
            conn.adapters.register_dumper(str, dumper)
        return conn

    @property
    def _db(self) -> psycopg.Connection:
        if self._closed:
            raise StoreClosed()
        conn: psycopg.Connection | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            conn = self._connect()
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._summarizer is not None:
            self._summarizer.shutdown()
        self._listener.close()
        with contextlib.suppress(Exception):  # best effort: unreleased claims run out by themselves
            self._write_sync(lambda conn: (self.release_claims(conn), []))
        self._writer.close()
        if self._locks_conn is not None:
            self._locks_conn.close()
        with self._readers_lock:
            for conn in self._readers:
                with contextlib.suppress(psycopg.Error):
                    conn.close()
            self._readers.clear()

    def _write_sync(self, fn: PgWriteFn) -> Any:
        return self._writer.submit(fn).result()

    async def _write(self, fn: PgWriteFn) -> Any:
        return await self._writer.submit_async(fn)

    # -- the relay clock, shared -------------------------------------------------
    def share_clock(self, clock: ManualClock) -> None:
        """Keep `clock`'s offset (the relay clock the API advances) the same on every frontend: it starts
        at the database's, and an advance or reset anywhere reaches the others (the largest offset
        written stands, so two frontends advancing at once end at the larger of the two)."""
        row = self._db.execute("SELECT value FROM settings WHERE name = 'clock_offset'").fetchone()
        self._shared_offset = float(row[0]) if row else 0.0
        self._clock = clock
        clock.set_offset(self._shared_offset)
        clock.watch(self._clock_changed)

    def _clock_changed(self) -> None:
        clock = self._clock
        if clock is None or clock.offset == self._shared_offset:
            return  # a change that came from the database
        offset = self._shared_offset = clock.offset
        origin = self.origin

        def write(conn: psycopg.Connection) -> tuple[None, builtins.list[Event]]:
            reset = offset == 0.0
            conn.execute(
                "INSERT INTO settings (name, value) VALUES ('clock_offset', %s) ON CONFLICT (name) DO UPDATE"
                " SET value = CASE WHEN %s THEN excluded.value"
                " ELSE greatest(settings.value::float8, excluded.value::float8)::text END",
                (repr(offset), reset),
            )
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, clock_payload(origin, offset)))
            return None, []

        self._writer.submit(write)  # not waited for: the advancing caller goes on at once

    def _clock_moved(self, offset: float) -> None:
        """Another frontend moved the shared clock (the listener's thread)."""
        clock = self._clock
        if clock is not None and offset != clock.offset:
            self._shared_offset = offset
            clock.set_offset(offset)

    # -- POP3's maildrop locks (RFC 1939 §4) across frontends -----------------------
    def lock_maildrop(self, user: str) -> bool:
        """Take `user`'s maildrop for a POP3 session, unless a session on any frontend has it: a session-level
        advisory lock on a connection of this store's own, so a frontend killed with its sessions open
        lets go of their locks with its connection. Blocking (POP3 calls it on a worker thread)."""
        with self._locks_mutex:
            if self._locks_conn is None or self._locks_conn.closed or self._locks_conn.broken:
                self._locks_conn = self._connect()  # a lost connection lost its locks with it
            row = self._locks_conn.execute(
                "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (MAILDROP_LOCKS, user)
            ).fetchone()
            return bool(row and row[0])

    def unlock_maildrop(self, user: str) -> None:
        with self._locks_mutex:
            if self._locks_conn is not None and not self._locks_conn.closed and not self._locks_conn.broken:
                self._locks_conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (MAILDROP_LOCKS, user))

    # -- capture ---------------------------------------------------------------
    async def add_message(
        self,
        raw: bytes | builtins.list[bytes],
        envelope: Envelope,
        deliver_to: Sequence[str] | None = None,
        received_at: float | None = None,
        queue: Sequence[str] = (),
    ) -> StoredMessage:
        size = len(raw) if isinstance(raw, bytes) else sum(map(len, raw))
        if size <= INLINE_SUMMARY:
            add = self._add_fn(raw, envelope, deliver_to, received_at, queue)
        else:  # milliseconds of joining, parsing and packing: not on the loop
            loop = asyncio.get_running_loop()
            add = await loop.run_in_executor(self._summaries(), self._add_fn, raw, envelope, deliver_to,
                                             received_at, queue)  # fmt: skip
        return stored(await self._write(add), add.summary.message_id)

    def _add_fn(
        self,
        raw: bytes | builtins.list[bytes],
        envelope: Envelope,
        deliver_to: Sequence[str] | None,
        received_at: float | None,
        queue: Sequence[str] = (),
        from_headers: bool = False,
    ) -> _Add:
        a = self._arrival(raw, envelope, deliver_to, received_at, queue, from_headers)
        # A large message is packed here, on the summary threads, so the request holds the packed bytes
        # alone (the writer only sends them); a small one is packed by the writer, off the loop.
        packed = Packed(pack(a.raw), len(a.raw)) if len(a.raw) > INLINE_SUMMARY else a.raw
        return _Add(packed, a.summary, a.envelope, a.created, a.users, a.queue, a.dedupe, a.tags, a.rules)

    def _compile_rule(self, query: str, now: float) -> tuple[str, list[object]]:
        return compile_query(query, now, one_row=True)

    async def deliver(
        self, message_id: str, user: str, folder: str = "INBOX", prefix: bytes = b"", suffix: bytes = b""
    ) -> MailEntry:
        write = await self._deliver_fn(message_id, normalize_user(user), folder, prefix, suffix)
        result: MailEntry = await self._write(write)
        return result

    async def _deliver_fn(
        self, message_id: str, user: str, folder: str, prefix: bytes, suffix: bytes
    ) -> Callable[[psycopg.Connection], tuple[MailEntry, builtins.list[Event]]]:
        """The write that delivers; a relay copy's summary is parsed first, off the loop and the writer."""
        now = self.clock.now()
        copy: tuple[Relayed, Summary] | None = None
        if prefix or suffix:
            loop = asyncio.get_running_loop()
            copy = await loop.run_in_executor(self._summaries(), self._copy_summary, message_id, prefix, suffix)

        def write(conn: psycopg.Connection) -> tuple[MailEntry, builtins.list[Event]]:
            row = conn.execute(
                "SELECT rowid, envelope_json, size FROM messages WHERE id = %s", (message_id,)
            ).fetchone()
            if row is None:
                raise NoSuchMessage(message_id)
            root, env_j, size = row
            target, target_id = root, message_id
            if copy is not None:
                relayed, summary = copy
                target, target_id = insert_message(conn, relayed, summary, _envelope(env_j), now, root)
                size = relayed.size
            uid = deliver_entry(conn, user, folder, target, root, (), now)
            return MailEntry(uid, target_id, frozenset(), now, int(size)), [MailboxChanged(user, folder)]

        return write

    def _copy_summary(self, message_id: str, prefix: bytes, suffix: bytes) -> tuple[Relayed, Summary]:
        copy = prefix + self.raw(message_id) + suffix
        return Relayed(prefix, suffix, len(copy)), mime.summarize(copy)

    def _append_fn(
        self, user: str, folder: str, raw: bytes, flags: Iterable[str], internaldate: float | None
    ) -> Callable[[psycopg.Connection], tuple[MailEntry, builtins.list[Event]]]:
        """IMAP APPEND's write: a new message straight into a folder (INBOX is made on first use)."""
        user, folder = normalize_user(user), canonical_folder(folder)
        date = internaldate if internaldate is not None else self.clock.now()
        summary = mime.summarize(raw)
        flag_set = frozenset(f for f in flags if f != "\\Recent")
        created = self.clock.now()

        def write(conn: psycopg.Connection) -> tuple[MailEntry, builtins.list[Event]]:
            folder_id(conn, user, folder, create=(folder == "INBOX"), now=date)
            rowid, mid = insert_message(conn, raw, summary, Envelope("", (user,)), created)
            uid = deliver_entry(conn, user, folder, rowid, rowid, flag_set, date)
            if SEEN in flag_set:
                conn.execute("UPDATE messages SET read = TRUE WHERE rowid = %s", (rowid,))
            return MailEntry(uid, mid, flag_set, date, len(raw)), [MailboxChanged(user, folder)]

        return write

    # -- deleting --------------------------------------------------------------
    def _prune(self, conn: psycopg.Connection) -> builtins.list[Event]:
        row = conn.execute("SELECT coalesce(sum(total), 0) FROM tally").fetchone()
        excess = (int(row[0]) if row else 0) - self.max_messages
        if excess <= 0:
            return []
        rows = conn.execute(
            "SELECT rowid FROM messages WHERE parent IS NULL ORDER BY created, rowid LIMIT %s",
            (min(excess, DELETE_BATCH),),
        ).fetchall()
        return delete_rows(conn, [r[0] for r in rows])

    async def prune_before(self, cutoff: float, limit: int = DELETE_BATCH) -> int:
        def write(conn: psycopg.Connection) -> tuple[int, builtins.list[Event]]:
            rows = conn.execute(
                "SELECT rowid FROM messages WHERE parent IS NULL AND created < %s ORDER BY created, rowid LIMIT %s",
                (cutoff, limit),
            ).fetchall()
            return len(rows), delete_rows(conn, [r[0] for r in rows]) if rows else []

        result: int = await self._write(write)
        return result

    async def delete(self, ids: Sequence[str] | None) -> int:
        if ids is None:
            return int(await self._write(_delete_all))

        def write(conn: psycopg.Connection, chunk: builtins.list[str]) -> tuple[int, builtins.list[Event]]:
            rows = conn.execute("SELECT rowid FROM messages WHERE id = ANY(%s) AND parent IS NULL", (chunk,))
            rowids = [int(r[0]) for r in rows]
            return len(rowids), delete_rows(conn, rowids)

        # A batch a transaction, so captures commit between them.
        deleted = 0
        for start in range(0, len(ids), DELETE_BATCH):
            chunk = list(ids[start : start + DELETE_BATCH])
            deleted += await self._write(functools.partial(write, chunk=chunk))
        return deleted

    async def set_read(self, ids: Sequence[str] | None, read: bool) -> int:
        def write(conn: psycopg.Connection) -> tuple[int, builtins.list[Event]]:
            if ids is None:
                found = conn.execute(
                    "UPDATE messages SET read = %s WHERE parent IS NULL AND read != %s RETURNING rowid, id",
                    (read, read),
                ).fetchall()
            else:  # only those that change: they alone are announced, as Mailpit does
                found = conn.execute(
                    "UPDATE messages SET read = %s WHERE parent IS NULL AND read != %s AND id = ANY(%s)"
                    " RETURNING rowid, id",
                    (read, read, list(ids)),
                ).fetchall()
            found.sort()
            rowids = [int(r[0]) for r in found]
            events = self._set_seen(conn, rowids, read) if rowids else []
            return len(found), [MessagesUpdated(tuple(str(r[1]) for r in found), read=read), *events]

        result: int = await self._write(write)
        return result

    # -- reading ---------------------------------------------------------------
    def _rowid(self, message_id: str) -> int | None:
        if message_id == "latest":
            row = self._db.execute(
                "SELECT rowid FROM messages WHERE parent IS NULL ORDER BY created DESC, rowid DESC LIMIT 1"
            ).fetchone()
        else:
            row = self._db.execute("SELECT rowid FROM messages WHERE id = %s", (message_id,)).fetchone()
        return int(row[0]) if row else None

    def get(self, message_id: str) -> StoredMessage | None:
        params: tuple[object, ...]
        if message_id == "latest":
            where, params = "m.rowid = %s", (self._rowid(message_id),)
        else:
            where, params = "m.id = %s", (message_id,)
        row = self._db.execute(f"SELECT {COLUMNS} FROM messages m WHERE {where}", params).fetchone()
        return row_to_message(row) if row else None

    def raw(self, message_id: str) -> bytes:
        # One query (IMAP FETCH and SEARCH call this per message); "latest" is looked up first, as in get.
        key: object = self._rowid(message_id) if message_id == "latest" else message_id
        row = self._db.execute(
            "SELECT r.raw, d.prefix, d.suffix FROM messages m LEFT JOIN relayed d ON d.rowid = m.rowid"
            " JOIN message_raw r ON r.rowid = (CASE WHEN d.rowid IS NULL THEN m.rowid ELSE m.parent END)"
            f" WHERE {'m.rowid' if message_id == 'latest' else 'm.id'} = %s",
            (key,),
        ).fetchone()
        if row is None:
            raise NoSuchMessage(message_id)
        raw = unpack(bytes(row[0]))
        return raw if row[1] is None else bytes(row[1]) + raw + bytes(row[2])

    def database_size(self) -> int:
        """Bytes the database takes on its server (/api/v1/info, /metrics)."""
        row = self._db.execute("SELECT pg_database_size(current_database())").fetchone()
        return int(row[0]) if row else 0

    def count(self) -> tuple[int, int]:
        row = self._db.execute(  # kept by triggers, a row per writing connection
            "SELECT coalesce(sum(total), 0), coalesce(sum(unread), 0) FROM tally"
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def _page(self, where: str, params: builtins.list[Any], start: int, limit: int, user: str | None) -> Page:
        if user:
            where += (
                " AND m.rowid IN (SELECT e.root FROM entries e JOIN folders f ON f.id = e.folder_id"
                " WHERE f.username = %s)"
            )
            params = [*params, normalize_user(user)]
        everything, unread = self.count()
        db = self._db
        if where != "TRUE" and (few := self._few_matches(where, params, start, limit)) is not None:
            page, total, matching_unread = few
            return Page(page, total, unread, start, matching_unread, self.tags())
        if where == "TRUE":
            total, matching_unread = everything, unread
        else:
            row = db.execute(
                "SELECT count(*), count(*) FILTER (WHERE NOT m.read) FROM messages m"
                f" WHERE m.parent IS NULL AND ({where})",
                params,
            ).fetchone()
            assert row is not None
            total, matching_unread = row
        # The page's rows are picked first (an index walk that OFFSET skips along), and only its 50 read
        # whole: reading every skipped row's columns made the middle page of 100,000 messages 278 ms.
        rows = db.execute(
            f"SELECT {COLUMNS} FROM messages m WHERE m.rowid IN (SELECT m.rowid FROM messages m"
            f" WHERE m.parent IS NULL AND ({where}) ORDER BY m.created DESC, m.rowid DESC LIMIT %s OFFSET %s)"
            " ORDER BY m.created DESC, m.rowid DESC",
            [*params, max(0, limit), max(0, start)],
        ).fetchall()
        page = [row_to_message(r) for r in rows]
        return Page(page, int(total), unread, start, int(matching_unread), self.tags())

    def _few_matches(
        self, where: str, params: builtins.list[Any], start: int, limit: int
    ) -> tuple[builtins.list[StoredMessage], int, int] | None:
        """(page, matches, unread matches) from one pass over the matches when there are at most FEW_MATCHES,
        else None (a count, then a page: each its own pass). A narrow search of a large store (a sender
        and a common word: 4,845 of 100,000) read every match's row twice, once to count and once to page."""
        row = self._db.execute(
            "WITH hits AS MATERIALIZED (SELECT m.rowid, m.created, m.read FROM messages m"
            f" WHERE m.parent IS NULL AND ({where}) LIMIT %s)"
            " SELECT (SELECT count(*) FROM hits), (SELECT count(*) FROM hits WHERE NOT read),"
            " (SELECT array_agg(rowid) FROM (SELECT rowid FROM hits ORDER BY created DESC, rowid DESC"
            " LIMIT %s OFFSET %s) p)",
            [*params, FEW_MATCHES + 1, max(0, limit), max(0, start)],
        ).fetchone()
        assert row is not None
        total, unread, wanted = int(row[0]), int(row[1]), row[2] or []
        if total > FEW_MATCHES:
            return None
        if not wanted:
            return [], total, unread
        rows = self._db.execute(
            f"SELECT {COLUMNS} FROM messages m WHERE m.rowid = ANY(%s) ORDER BY m.created DESC, m.rowid DESC",
            (list(wanted),),
        ).fetchall()
        return [row_to_message(r) for r in rows], total, unread

    def list(self, start: int = 0, limit: int = 50, user: str | None = None) -> Page:
        return self._page("TRUE", [], start, limit, user)

    @contextlib.contextmanager
    def _search_budget(self) -> Iterator[None]:
        """A search's statements may run `search_seconds`: PostgreSQL cancels them past it."""
        db = self._db
        db.execute("SELECT set_config('statement_timeout', %s, false)", (f"{int(self.search_seconds * 1000)}ms",))
        try:
            yield
        except psycopg.errors.QueryCanceled:
            raise QueryTooSlow(f"the search ran over its {self.search_seconds:g} s budget") from None
        finally:
            with contextlib.suppress(psycopg.Error):
                db.execute("SET statement_timeout = 0")

    def search(
        self, query: str, start: int = 0, limit: int = 50, user: str | None = None, tz: str | None = None
    ) -> Page:
        where, params = compile_query(query, self.clock.now(), time_zone(tz))
        with self._search_budget():
            return self._page(where, builtins.list(params), start, limit, user)

    def search_ids(self, query: str, user: str | None = None, tz: str | None = None) -> builtins.list[str]:
        where, params = compile_query(query, self.clock.now(), time_zone(tz))
        params = builtins.list(params)
        if user:
            where += (
                " AND m.rowid IN (SELECT e.root FROM entries e JOIN folders f ON f.id = e.folder_id"
                " WHERE f.username = %s)"
            )
            params.append(normalize_user(user))
        with self._search_budget():
            rows = self._db.execute(
                f"SELECT m.id FROM messages m WHERE m.parent IS NULL AND ({where})"
                " ORDER BY m.created DESC, m.rowid DESC",
                params,
            )
            return [str(r[0]) for r in rows]

    def mailboxes(self) -> builtins.list[MailboxStat]:
        rows = self._db.execute(
            "SELECT f.username, count(DISTINCT e.root),"
            " count(DISTINCT CASE WHEN strpos(' ' || e.flags || ' ', ' \\Seen ') = 0 THEN e.root END)"
            " FROM folders f JOIN entries e ON e.folder_id = f.id GROUP BY f.username ORDER BY f.username"
        ).fetchall()
        return [MailboxStat(str(u), int(t), int(n)) for u, t, n in rows]

    # -- tags ------------------------------------------------------------------
    async def set_tags(self, ids: Sequence[str], tags: Sequence[str]) -> int:
        """Replace the tags of these messages; returns how many of them exist."""
        wanted = unique_tags(tags)

        def write(conn: psycopg.Connection) -> tuple[int, builtins.list[Event]]:
            column = ",".join(canonical(conn, wanted))
            found = conn.execute(
                "SELECT id FROM messages WHERE parent IS NULL AND id = ANY(%s) ORDER BY rowid", (list(ids),)
            ).fetchall()
            conn.execute(
                "UPDATE messages SET tags = %s WHERE parent IS NULL AND id = ANY(%s) AND tags != %s",
                (column, list(ids), column),
            )
            names = tuple(t for t in column.split(",") if t)
            found_ids = tuple(str(r[0]) for r in found)
            return len(found_ids), [MessagesUpdated(found_ids, tags=names)] if found_ids else []

        result: int = await self._write(write)
        return result

    async def _retag(self, old: str, new: str) -> None:
        def write(conn: psycopg.Connection) -> tuple[None, builtins.list[Event]]:
            if old == new:
                return None, []
            rows = _holding(conn, old)
            spelling = next(
                (t for _r, _i, column in rows[:1] for t in column.split(",") if t.lower() == old.lower()), None
            )
            if spelling is None:
                raise ValueError(f"tag not found: {old}")
            if new and new.lower() != spelling.lower() and _holding(conn, new):
                raise ValueError(f"tag already exists: {new}")
            updates = []
            for rowid, _, column in rows:
                kept = [t for t in column.split(",") if t and t.lower() != spelling.lower()]
                updates.append((",".join(unique_tags([*kept, new] if new else kept)), rowid))
            with conn.cursor() as cur:
                cur.executemany("UPDATE messages SET tags = %s WHERE rowid = %s", updates)
            conn.execute("DELETE FROM tag_names WHERE folded = lower(%s)", (spelling,))
            if new:  # the new spelling is the store's, even over a name no message has any more
                conn.execute("DELETE FROM tag_names WHERE folded = lower(%s)", (new,))
                canonical(conn, [new])
            return None, [TagRenamed(spelling, new, tuple(r[1] for r in rows))]

        await self._write(write)


def _delete_all(conn: psycopg.Connection) -> tuple[int, builtins.list[Event]]:
    """Empty every data table at once (TRUNCATE: no pass over the rows); folders keep their UIDVALIDITY
    and next UID, so a client never sees an old UID again."""
    folders = conn.execute(
        "SELECT f.username, f.name FROM folders f WHERE EXISTS (SELECT 1 FROM entries e WHERE e.folder_id = f.id)"
        " ORDER BY 1, 2"
    ).fetchall()
    row = conn.execute("SELECT coalesce(sum(total), 0) FROM tally").fetchone()
    conn.execute(f"TRUNCATE {_DATA_TABLES}")  # the trigger zeroes the tally
    return int(row[0]) if row else 0, [MessagesDeleted((), all=True), *(MailboxChanged(u, f) for u, f in folders)]
