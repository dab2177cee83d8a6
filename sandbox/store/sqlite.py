"""SqliteStore: WAL, one writer thread with group commit, thread-local readers."""

from __future__ import annotations

import asyncio
import base64
import builtins
import contextlib
import functools
import json
import secrets
import shutil
import sqlite3
import string
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailsandbox import mime
from mailsandbox.clock import Clock, SystemClock
from mailsandbox.events import (
    Event,
    EventBus,
    MailboxChanged,
    MessagesDeleted,
    MessageStored,
    MessagesUpdated,
    TagRenamed,
)
from mailsandbox.models import Address, Envelope, MailEntry, StoredMessage, Summary
from mailsandbox.store import MailboxStat, NoSuchMessage, Page, StoreClosed, normalize_user
from mailsandbox.store._auth import AuthMixin
from mailsandbox.store._clear import (
    TRUNCATE_BELOW,
    Reaper,
    fresh_schema,
    has_dead,
    has_hidden,
    merge_by_hand,
    resize,
    set_aside,
    truncate_all,
)
from mailsandbox.store._common import StoreCommon, stored
from mailsandbox.store._deadline import WATCHDOG
from mailsandbox.store._mailbox import MailboxMixin, deliver_entries, deliver_entry
from mailsandbox.store._packing import RawPacker, pack, pack_text, unpack, unpack_text
from mailsandbox.store._queue import QueueMixin
from mailsandbox.store._schema import HEADERS_TEXT, migrate, shown
from mailsandbox.store._search import SEARCH_SECONDS, QueryTooSlow, TrigramCounts, compile_query
from mailsandbox.store._tags import Tagging, canonical, forget, holding, store_spelling, unique_tags
from mailsandbox.store._writer import GroupWriter, WriteFn, insert_rows
from mailsandbox.store.query import time_zone

_COLUMNS = (
    "m.id, m.created, m.message_id, m.subject, m.from_name, m.from_addr, m.to_json, m.cc_json, "
    "m.bcc_json, m.reply_to_json, m.date, m.size, m.attachments, m.inline, m.snippet, m.read, m.envelope_json, "
    "m.tags, "
    "(SELECT group_concat(DISTINCT f.user) FROM entries e JOIN folders f ON f.id = e.folder_id "
    "WHERE e.root = m.rowid)"
)


# summarize costs about 18 ns an octet of ordinary mail, but up to ~300 ns of tag-dense hostile HTML: up to
# this size it stays under a millisecond of the loop, and is cheaper inline than a hop to a thread. Larger
# messages are joined and summarized on the store's own two threads (their queue is bounded by the
# listeners' connection limits: one message in flight per connection).
INLINE_SUMMARY = 3 * 1024
# A message this large keeps its bytes as rows of RAW_CHUNK octets (raw_chunks). add_message writes them in
# transactions of their own before the one that stores the message, so the single writer is never held for
# all of a 20 MB message at once: other sessions' commits pass in between, a few milliseconds apart.
LARGE_RAW = 1 << 20
RAW_CHUNK = 1 << 20
# Full-text indexing costs about 0.1 s a megabyte, inside the write transaction every capture waits on: a
# huge text body is searchable by its first MAX_INDEXED_TEXT characters (the raw message keeps all of it).
MAX_INDEXED_TEXT = 1 << 20


# Reading a match from an index look-up and sorting it costs about this many steps of the listing index.
SORT_COST = 4
# A search with an index look-up reads its matches once, and counts and pages them here, when there are at
# most this many (about 3 MB of rows); more are counted by SQLite and paged in a second pass.
FEW_MATCHES = 30_000


# Base64's digits in ASCII order, so that IDs sort (bytewise, as the id index compares) as their bits do.
_B64 = bytes(string.ascii_uppercase + string.ascii_lowercase + string.digits + "+/", "ascii")
_ORDERED = bytes.maketrans(_B64, bytes(sorted(b"-_" + _B64[:62])))


def new_id() -> str:
    """22 URL-safe characters, like Mailpit's IDs: 48 bits of the time in milliseconds, then 84 random bits.
    Random IDs put each insert on a random leaf of the id index: 1.2 of a capture's 11 WAL pages, and
    at a million messages a page read from disk each."""
    # The top bit set: an ID never starts with "-" (a command line would read it as an option).
    data = (time.time_ns() // 1_000_000 | 1 << 47).to_bytes(6, "big") + secrets.token_bytes(12)
    return base64.b64encode(data)[:22].translate(_ORDERED).decode("ascii")


_encode = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps(..., ensure_ascii=False) builds one per call


def _addrs(items: Sequence[Address]) -> str:
    return _encode([[a.name, a.address] for a in items]) if items else "[]"


def _unaddrs(text: str) -> tuple[Address, ...]:
    return tuple(Address(n, a) for n, a in json.loads(text))


def envelope_json(env: Envelope) -> str:
    return _encode(
        {
            "mail_from": env.mail_from,
            "rcpt_tos": list(env.rcpt_tos),
            "peer": env.peer,
            "helo": env.helo,
            "tls": env.tls,
            "auth_user": env.auth_user,
            "smtputf8": env.smtputf8,
            "body_8bit": env.body_8bit,
        }
    )


def _envelope(text: str) -> Envelope:
    d = json.loads(text)
    return Envelope(
        mail_from=d.get("mail_from", ""),
        rcpt_tos=tuple(d.get("rcpt_tos", ())),
        peer=d.get("peer", ""),
        helo=d.get("helo", ""),
        tls=bool(d.get("tls")),
        auth_user=d.get("auth_user"),
        smtputf8=bool(d.get("smtputf8")),
        body_8bit=bool(d.get("body_8bit")),
    )


def row_to_message(row: sqlite3.Row | tuple[Any, ...]) -> StoredMessage:
    (mid, created, message_id, subject, from_name, from_addr, to_j, cc_j, bcc_j, rt_j, date, size,
     attachments, inline, snippet, read, env_j, tags, users) = row  # fmt: skip
    summary = Summary(
        message_id=message_id,
        from_=Address(from_name, from_addr) if (from_name or from_addr) else None,
        to=_unaddrs(to_j),
        cc=_unaddrs(cc_j),
        bcc=_unaddrs(bcc_j),
        reply_to=_unaddrs(rt_j),
        subject=subject,
        date=date,
        size=size,
        attachments=attachments,
        snippet=snippet,
        text="",
        inline=inline,
    )
    return StoredMessage(
        id=mid,
        created=created,
        summary=summary,
        envelope=_envelope(env_j),
        read=bool(read),
        mailboxes=tuple(sorted(users.split(","))) if users else (),
        tags=tuple(t for t in tags.split(",") if t),
    )


def insert_message(
    conn: sqlite3.Connection,
    raw: bytes | Relayed,
    summary: Summary,
    envelope: Envelope,
    created: float,
    parent: int | None = None,
) -> tuple[int, str]:
    return insert_messages(conn, [(raw, summary, envelope, created, parent)])[0]


@dataclass(frozen=True)
class StagedRaw:
    """A large message's bytes, already committed as `chunks` raw_chunks rows of set `stage`."""

    stage: int
    size: int
    chunks: int

    def __len__(self) -> int:
        return self.size


@dataclass(frozen=True)
class Relayed:
    """A relay copy's bytes: the header lines its hops prepended and what a rewriting hop appended; the
    rest is its original's (table relayed, read as prefix + the original's raw + suffix)."""

    prefix: bytes
    suffix: bytes
    size: int  # of the whole copy

    def __len__(self) -> int:
        return self.size


# One message to insert: (raw, summary, envelope, created, parent rowid for a relay copy).
NewMessage = tuple["bytes | StagedRaw | Relayed", Summary, Envelope, float, "int | None"]


def insert_messages(conn: sqlite3.Connection, items: Sequence[NewMessage]) -> list[tuple[int, str]]:
    """Insert messages (raw bytes, full-text row) with one multi-row INSERT per table; returns (rowid, id)
    of each. The rowids are the ones SQLite would pick one insert at a time: the largest so far, plus one."""
    (top,) = conn.execute("SELECT coalesce(max(rowid), 0) FROM messages").fetchone()
    out: list[tuple[int, str]] = []
    rows: list[tuple[Any, ...]] = []
    raws: list[tuple[int, bytes | StagedRaw | Relayed]] = []
    texts: list[tuple[int, str, str, str, str]] = []
    kept: list[tuple[int, bytes]] = []
    for rowid, (raw, summary, envelope, created, parent) in enumerate(items, int(top) + 1):
        mid = new_id()
        out.append((rowid, mid))
        sender = summary.from_
        rows.append((
            rowid, mid, parent, created, summary.message_id, summary.subject,
            sender.name if sender else "", sender.address if sender else "",
            _addrs(summary.to), _addrs(summary.cc), _addrs(summary.bcc), _addrs(summary.reply_to),
            summary.date, len(raw), summary.attachments, summary.inline, summary.snippet, envelope_json(envelope),
            envelope.auth_user or "",
        ))  # fmt: skip
        raws.append((rowid, raw))
        if parent is None:
            people = " ".join(f"{a.name} {a.address}" for a in (*summary.to, *summary.cc, *summary.bcc))
            from_text = f"{sender.name} {sender.address}" if sender else ""
            text = (summary.subject, f"{from_text} {envelope.mail_from}", f"{people} {' '.join(envelope.rcpt_tos)}",
                    summary.text[:MAX_INDEXED_TEXT])  # fmt: skip
            texts.append((rowid, *text))
            kept.append((rowid, pack_text(text, raw if isinstance(raw, bytes) and len(raw) < LARGE_RAW else None)))
    insert_rows(
        conn,
        "INSERT INTO messages (rowid, id, parent, created, message_id, subject, from_name, from_addr, to_json,"
        " cc_json, bcc_json, reply_to_json, date, size, attachments, inline, snippet, envelope_json, username)"
        " VALUES ",
        rows,
    )
    packer: RawPacker | None = getattr(conn, "packer", None)  # a store's connection has its dictionaries
    pack_raw = pack if packer is None else packer.pack
    small = [(rowid, pack_raw(raw)) for rowid, raw in raws if isinstance(raw, bytes) and len(raw) < LARGE_RAW]
    insert_rows(conn, "INSERT INTO message_raw (rowid, raw, zstd) VALUES ", [(r, z, 1) for r, z in small])
    relayed = [(rowid, raw.prefix, raw.suffix) for rowid, raw in raws if isinstance(raw, Relayed)]
    insert_rows(conn, "INSERT INTO relayed (rowid, prefix, suffix) VALUES ", relayed)
    for rowid, raw in raws:
        if isinstance(raw, Relayed):
            continue
        if isinstance(raw, StagedRaw):
            adopt_chunks(conn, rowid, raw)
        elif len(raw) >= LARGE_RAW:  # a bulk load or an IMAP APPEND: all of it in this transaction
            stage, chunks = start_stage(conn), split_raw(raw)
            for seq, chunk in enumerate(chunks):
                write_chunk(conn, stage, seq, chunk)
            adopt_chunks(conn, rowid, StagedRaw(stage, len(raw), len(chunks)))
    insert_rows(conn, "INSERT INTO messages_fts (rowid, subject, sender, recipients, body) VALUES ", texts)
    insert_rows(conn, "INSERT INTO message_text (rowid, text) VALUES ", kept)
    conn.execute(
        f"INSERT INTO headers_tri (rowid, text) SELECT rowid, {HEADERS_TEXT} FROM messages"
        " WHERE rowid > ? AND +parent IS NULL",  # `+`: the new rows by rowid, not the listing index's every one
        (int(top),),
    )
    return out


def start_stage(conn: sqlite3.Connection) -> int:
    """Open a set of raw chunks; it stays pending until a message adopts it (or the next start drops it)."""
    stage = conn.execute("INSERT INTO raw_pending (started) VALUES (?)", (time.time(),)).lastrowid
    assert stage is not None
    return stage


def split_raw(raw: bytes) -> list[memoryview]:
    """A large message's bytes as RAW_CHUNK rows: slices, not copies (the writer binds each from the message)."""
    view = memoryview(raw)
    return [view[start : start + RAW_CHUNK] for start in range(0, len(raw), RAW_CHUNK)]


def write_chunk(conn: sqlite3.Connection, stage: int, seq: int, data: bytes | memoryview) -> None:
    conn.execute("INSERT INTO raw_chunks (stage, seq, data, zstd) VALUES (?, ?, ?, 1)", (stage, seq, pack(data)))


def adopt_chunks(conn: sqlite3.Connection, rowid: int, staged: StagedRaw) -> None:
    (count,) = conn.execute("SELECT count(*) FROM raw_chunks WHERE stage = ?", (staged.stage,)).fetchone()
    if count != staged.chunks:  # a delete of everything ran while the chunks were being written
        raise sqlite3.IntegrityError(f"raw chunk set {staged.stage} has {count} of {staged.chunks} chunks")
    conn.execute("INSERT INTO message_raw (rowid, raw, chunks) VALUES (?, x'', ?)", (rowid, staged.stage))
    conn.execute("DELETE FROM raw_pending WHERE stage = ?", (staged.stage,))


def discard_stage(conn: sqlite3.Connection, stage: int) -> None:
    conn.execute("DELETE FROM raw_chunks WHERE stage = ?", (stage,))
    conn.execute("DELETE FROM raw_pending WHERE stage = ?", (stage,))


def read_raw(conn: sqlite3.Connection, raw: bytes, chunks: int | None, zstd: int = 0) -> bytes:
    """A message's bytes from its message_raw row (raw, chunks, zstd); rows from before migration 9 are plain."""
    if chunks is None:
        return unpack(raw, conn) if zstd else bytes(raw)
    try:
        rows = conn.execute("SELECT data, zstd FROM raw_chunks WHERE stage = ? ORDER BY seq", (chunks,)).fetchall()
    except sqlite3.OperationalError:  # a read-only export of a database from before migration 9
        rows = [(d, 0) for (d,) in conn.execute("SELECT data FROM raw_chunks WHERE stage = ? ORDER BY seq", (chunks,))]
    return b"".join(unpack(data) if packed else data for data, packed in rows)


def unindex(conn: sqlite3.Connection, rowids: Sequence[int]) -> None:
    """Take messages out of the contentless full-text indexes: FTS5 needs the values each was given."""
    marks = ",".join("?" * len(rowids))
    conn.execute(
        f"INSERT INTO headers_tri (headers_tri, rowid, text) SELECT 'delete', rowid, {HEADERS_TEXT} FROM messages"
        f" WHERE rowid IN ({marks}) AND +parent IS NULL",  # `+`: as in insert_messages
        list(rowids),
    )
    rows = conn.execute(
        "SELECT t.rowid, t.text, r.raw, r.zstd FROM message_text t LEFT JOIN message_raw r ON r.rowid = t.rowid"
        f" WHERE t.rowid IN ({marks})",
        list(rowids),
    ).fetchall()
    if rows:
        values = [
            ("delete", rowid, *unpack_text(text, None if raw is None else read_raw(conn, raw, None, zstd)))
            for rowid, text, raw, zstd in rows
        ]
        insert_rows(
            conn, "INSERT INTO messages_fts (messages_fts, rowid, subject, sender, recipients, body) VALUES ", values
        )
        conn.execute(f"DELETE FROM message_text WHERE rowid IN ({marks})", list(rowids))


class _RawWrite:
    """One step of writing a large message's bytes: its own transaction."""

    __slots__ = ("_fn",)

    def __init__(self, fn: Callable[[sqlite3.Connection], Any]) -> None:
        self._fn = fn

    def __call__(self, conn: sqlite3.Connection) -> tuple[Any, list[Event]]:
        return self._fn(conn), []


# Messages a delete transaction takes out (each costs ~100 us, most of it the full-text index's deletes).
DELETE_BATCH = 200
# A delete of more messages than this hides them (hide_rows), at most HIDE_BATCH a transaction, and the
# reaper deletes them; a few (the UI deleting one) go at once.
DIRECT_DELETE = 25
HIDE_BATCH = 8192
# Messages over --max-messages one capture batch hides at most (~10 ms): a limit lowered on a full store
# is reached over the next batches.
PRUNE_HIDE = 1000
# What every read of messages m adds: not hidden by a large delete.
_SHOWN = shown("rowid")
_SHOWN_M = shown("m.rowid")


class StoreConnection(sqlite3.Connection):
    """A store's connection: what it writes packs raw messages with the store's zstd dictionaries."""

    packer: RawPacker | None = None


class _DeleteAll:
    """Delete every message, with foreign keys off (the writer turns them off around this request alone).
    A small store is truncated in place; a large one's tables are set aside for the reaper (_clear.py), so
    the writer is held for milliseconds, not for a pass over every page."""

    foreign_keys_off = True

    def __init__(self) -> None:
        self.set_aside = False

    def __call__(self, conn: sqlite3.Connection) -> tuple[int, list[Event]]:
        folders = conn.execute(  # a look-up per folder (entries' key starts with it), not a pass over entries
            "SELECT f.user, f.name FROM folders f WHERE EXISTS (SELECT 1 FROM entries e WHERE e.folder_id = f.id)"
            " ORDER BY f.user, f.name"
        ).fetchall()
        (n,) = conn.execute("SELECT total FROM tally").fetchone()
        # Rows with relay copies; two look-ups at the ends of the table (one expression of both would scan).
        (rows,) = conn.execute(
            "SELECT (SELECT max(rowid) FROM messages) - (SELECT min(rowid) FROM messages)"
        ).fetchone()
        if (rows or 0) < TRUNCATE_BELOW:
            truncate_all(conn)
        else:
            set_aside(conn)
            self.set_aside = True
        return int(n), [MessagesDeleted((), all=True), *(MailboxChanged(u, f) for u, f in folders)]


def delete_rows(conn: sqlite3.Connection, rowids: Sequence[int]) -> list[Event]:
    """Delete originals (with their relay copies) and say which folders lost entries."""
    return _gone(conn, rowids, purge)


def hide_rows(conn: sqlite3.Connection, rowids: Sequence[int]) -> list[Event]:
    """Hide originals (with their relay copies) at once, with the events of a delete: a `doomed` row each,
    which every read skips, the counts taken off the tally, the relay's queue and trace of them dropped
    (a look-up each). The reaper (_clear.py) deletes the rows later, a few milliseconds at a time."""
    return _gone(conn, rowids, _doom)


def _gone(
    conn: sqlite3.Connection, rowids: Sequence[int], how: Callable[[sqlite3.Connection, list[int], list[int]], None]
) -> list[Event]:
    rowids = list(dict.fromkeys(rowids))  # an id given twice is one message, counted off the tally once
    if not rowids:
        return []
    events: list[Event] = []
    ids: list[str] = []
    folders: set[tuple[str, str]] = set()
    for chunk_start in range(0, len(rowids), 500):
        chunk = list(rowids[chunk_start : chunk_start + 500])
        marks = ",".join("?" * len(chunk))
        folders.update(
            conn.execute(
                f"SELECT DISTINCT f.user, f.name FROM entries e JOIN folders f ON f.id = e.folder_id"
                f" WHERE e.root IN ({marks})",
                chunk,
            ).fetchall()
        )
        chunk_ids = [r[0] for r in conn.execute(f"SELECT id FROM messages WHERE rowid IN ({marks})", chunk)]
        ids.extend(chunk_ids)
        every = [
            r[0]
            for r in conn.execute(
                f"SELECT rowid FROM messages WHERE rowid IN ({marks}) OR parent IN ({marks})", chunk + chunk
            )
        ]
        how(conn, chunk, every)
        idmarks = ",".join("?" * len(chunk_ids))
        conn.execute(f"DELETE FROM queue WHERE message IN ({idmarks})", chunk_ids)
        conn.execute(f"DELETE FROM attempts WHERE message IN ({idmarks})", chunk_ids)
    events.append(MessagesDeleted(tuple(ids)))
    events.extend(MailboxChanged(u, f) for u, f in sorted(folders))
    return events


def _doom(conn: sqlite3.Connection, originals: list[int], every: list[int]) -> None:
    marks = ",".join("?" * len(originals))
    (unread,) = conn.execute(
        f"SELECT count(*) FROM messages WHERE rowid IN ({marks}) AND read = 0", originals
    ).fetchone()
    conn.execute("UPDATE tally SET total = total - ?, unread = unread - ?", (len(originals), unread))
    insert_rows(conn, "INSERT OR IGNORE INTO doomed (rowid) VALUES ", [(r,) for r in sorted(every)])


def purge(conn: sqlite3.Connection, originals: Sequence[int], every: Sequence[int]) -> None:
    """Delete the rows of messages (`every`: `originals` and their relay copies) and of what hangs off them;
    explicitly, not by cascade: the reaper runs with foreign keys off."""
    emarks = ",".join("?" * len(every))
    if originals:
        unindex(conn, originals)  # first: a message's index text is packed against its raw bytes
    conn.execute(f"DELETE FROM entries WHERE message IN ({emarks})", every)
    conn.execute(
        f"DELETE FROM raw_chunks WHERE stage IN (SELECT chunks FROM message_raw WHERE rowid IN ({emarks})"
        " AND chunks IS NOT NULL)",
        every,
    )
    for table in ("message_raw", "relayed", "message_auth", "messages", "doomed"):  # doomed last: tally_delete
        conn.execute(f"DELETE FROM {table} WHERE rowid IN ({emarks})", every)


class _Add:
    """One add_message request. The writer runs a batch's consecutive ones together (`group`)."""

    __slots__ = ("created", "dedupe", "envelope", "queue", "raw", "rules", "summary", "tags", "users")

    def __init__(
        self, raw: bytes, summary: Summary, envelope: Envelope, created: float, users: tuple[str, ...],
        queue: tuple[str, ...], dedupe: bool = False, tags: Sequence[str] = (),
        rules: Sequence[tuple[str, list[object], tuple[str, ...]]] = (),
    ) -> None:  # fmt: skip
        self.raw: bytes | StagedRaw = raw
        self.summary, self.envelope, self.created = summary, envelope, created
        self.users, self.queue = users, queue  # users: normalized, each once
        self.dedupe = dedupe and bool(summary.message_id)  # skip it if its Message-ID is already stored
        self.tags, self.rules = tags, rules  # cleaned arrival tags; compiled tagging rules (where, params, tags)

    def __call__(self, conn: sqlite3.Connection) -> tuple[StoredMessage | None, list[Event]]:
        return _write_adds(conn, [self])[0]

    @staticmethod
    def group(conn: sqlite3.Connection, adds: list[_Add]) -> list[tuple[StoredMessage | None, list[Event]]]:
        return _write_adds(conn, adds)


def _duplicates(conn: sqlite3.Connection, adds: list[_Add]) -> set[int]:
    """Which of `adds` (by index) carry a Message-ID already stored, or one an earlier add of the batch has."""
    wanted = [a.summary.message_id for a in adds if a.dedupe]
    if not wanted:
        return set()
    seen: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = conn.execute(
            # INDEXED BY: without it the planner walks the listing index's every `parent IS NULL` entry
            "SELECT message_id FROM messages INDEXED BY messages_message_id"
            " WHERE parent IS NULL AND message_id != '' AND message_id IN"
            f" ({','.join('?' * len(chunk))}) AND {_SHOWN}",
            chunk,
        )
        seen.update(r[0] for r in rows)
    skip: set[int] = set()
    for i, a in enumerate(adds):
        if a.dedupe:
            if a.summary.message_id in seen:
                skip.add(i)
            seen.add(a.summary.message_id)
    return skip


def _write_adds(conn: sqlite3.Connection, adds: list[_Add]) -> list[tuple[StoredMessage | None, list[Event]]]:
    skip = _duplicates(conn, adds)
    if skip:  # the duplicates answer None; the others are written as usual, in their order
        kept = [a for i, a in enumerate(adds) if i not in skip]
        written = iter(_write_adds(conn, kept) if kept else [])
        return [(None, []) if i in skip else next(written) for i in range(len(adds))]
    ids = insert_messages(conn, [(a.raw, a.summary, a.envelope, a.created, None) for a in adds])
    pairs = list(zip(adds, ids, strict=True))
    deliver_entries(conn, [(user, "INBOX", rowid, rowid, "", a.created) for a, (rowid, _) in pairs for user in a.users])
    queued = [(mid, r, a.created, a.created) for a, (_, mid) in pairs for r in a.queue]
    if queued:
        conn.executemany(
            "INSERT OR IGNORE INTO queue (message, recipient, next_attempt, first_attempt) VALUES (?,?,?,?)", queued
        )
    out: list[tuple[StoredMessage | None, list[Event]]] = []
    for a, (rowid, mid) in pairs:
        message = StoredMessage(
            id=mid, created=a.created, summary=a.summary, envelope=a.envelope, read=False,
            mailboxes=tuple(sorted(a.users)), tags=_tag_new(conn, rowid, a) if a.tags or a.rules else (),
        )  # fmt: skip
        out.append((message, [MessageStored(message), *(MailboxChanged(user, "INBOX") for user in a.users)]))
    return out


def _tag_new(conn: sqlite3.Connection, rowid: int, add: _Add) -> tuple[str, ...]:
    """Tag a message just inserted: its arrival tags and those of each rule whose query it matches (the
    message and its full-text row are in this transaction, so the query sees them)."""
    found = list(add.tags)
    for where, params, rule_tags in add.rules:
        sql = f"SELECT 1 FROM messages m WHERE m.rowid = ? AND ({where})"
        if conn.execute(sql, [rowid, *params]).fetchone():
            found += rule_tags
    tags = canonical(conn, unique_tags(found))
    if tags:
        conn.execute("UPDATE messages SET tags = ? WHERE rowid = ?", (",".join(tags), rowid))
    return tuple(tags)


class SqliteStore(StoreCommon, MailboxMixin, QueueMixin, AuthMixin):
    """The Store protocol over one SQLite file."""

    _tagged = f"tags != '' AND {_SHOWN}"

    def __init__(
        self,
        path: str,
        bus: EventBus | None = None,
        clock: Clock | None = None,
        max_messages: int = 0,
        durable: bool = False,
        ignore_duplicate_ids: bool = False,
        tagging: Tagging | None = None,
    ) -> None:
        self._tempdir: str | None = None
        self.tagging = tagging or Tagging()
        for rule in self.tagging.rules:  # a rule that cannot be read fails here, not on every message
            compile_query(rule.query, 0.0)
        # WAL + NORMAL: a commit has been written to the WAL file before COMMIT returns, so it survives
        # any crash of this process (kill -9); FULL also fsyncs each group commit, surviving power loss.
        synchronous = "FULL" if durable else "NORMAL"
        if path == ":memory:":
            # A throw-away store still needs several connections (writer + readers), so it lives in a
            # private temp file that close() removes.
            self._tempdir = tempfile.mkdtemp(prefix="mailsandbox-")
            path = str(Path(self._tempdir) / "mailsandbox.db")
            synchronous = "OFF"
        self.path = path  # its directory must exist: a mistyped --db must not make directories
        self._synchronous = synchronous
        self.bus = bus or EventBus()
        self.clock = clock or SystemClock()
        self.max_messages = max_messages
        self.ignore_duplicate_ids = ignore_duplicate_ids
        self._local = threading.local()
        self._readers: list[tuple[threading.Thread, sqlite3.Connection]] = []  # (the thread it serves, it)
        self._readers_lock = threading.Lock()
        # Built before the writer, whose connection carries it; it submits a new dictionary to the writer.
        self.packer = RawPacker(lambda write: self._writer.submit(write))
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            migrate(conn)
            # Chunks of messages that were still arriving when the last process stopped.
            conn.execute("DELETE FROM raw_chunks WHERE stage IN (SELECT stage FROM raw_pending)")
            conn.execute("DELETE FROM raw_pending")
            # A delete of everything, or a large one's hidden messages, the last process had not finished reaping.
            hidden = has_hidden(conn)
            unreaped = hidden or has_dead(conn)
            if not hidden:
                merge_by_hand(conn, False)  # a process stopped just as its reaper finished
            self.packer.load(conn)
        conn.close()
        self._writer = GroupWriter(self._connect, self.bus.publish, self._prune if max_messages > 0 else None)
        self.reaper = Reaper(self._writer.submit, self._settle_sync)
        fresh_schema()  # made once a process, before a delete of everything needs it inside the writer
        if unreaped:
            self.reaper.wake()
        self._summarizer: ThreadPoolExecutor | None = None  # made on the first large message
        # Messages a write of a delete by IDs takes, learnt from the last; the first is small (scattered
        # rows of a large store cost up to 0.4 ms each), doubling while writes stay short.
        self._delete_size = DELETE_BATCH // 8
        self._hide_size = HIDE_BATCH // 16  # the same for a delete that hides (about 20 us a message)
        self._gram_counts = TrigramCounts()
        self._closed = False

    # -- connections -----------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        # 256 cached statements: the writer's multi-row INSERTs take 72 shapes (_writer.insert_rows).
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30, cached_statements=256,
            factory=StoreConnection,
        )  # fmt: skip
        conn.packer = self.packer
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    @property
    def _db(self) -> sqlite3.Connection:
        if self._closed:  # also for a thread whose connection close() left open
            raise StoreClosed()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append((threading.current_thread(), conn))
        return conn

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._summarizer is not None:
            self._summarizer.shutdown()  # a message being summarized still reaches the writer
        self.reaper.close()
        self._writer.close()
        with self._readers_lock:
            # Only connections no other live thread can be using: closing one under a read another thread
            # has in flight (an executor's call still running at stop) crashed the process (SIGSEGV in
            # the sqlite3 module). The others close with their thread's end or this store's collection.
            me = threading.current_thread()
            for thread, conn in self._readers:
                if thread is me or not thread.is_alive():
                    try:
                        conn.close()
                    except sqlite3.Error:
                        pass
            self._readers.clear()
        if self._tempdir:
            shutil.rmtree(self._tempdir, ignore_errors=True)

    def _write_sync(self, fn: WriteFn) -> Any:
        return self._writer.submit(fn).result()

    async def _write(self, fn: WriteFn) -> Any:
        return await self._writer.submit_async(fn)

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
        else:  # milliseconds of joining and parsing: not on the loop
            loop = asyncio.get_running_loop()
            add = await loop.run_in_executor(self._summaries(), self._add_fn, raw, envelope, deliver_to,
                                             received_at, queue)  # fmt: skip
        if size < LARGE_RAW:
            message: StoredMessage | None = await self._write(add)
            return stored(message, add.summary.message_id)
        stage = await self._stage(add)
        try:
            message = await self._write(add)
        except BaseException:
            await self._discard(stage)
            raise
        if message is None:  # a duplicate: its chunks were never adopted
            await self._discard(stage)
        return stored(message, add.summary.message_id)

    async def _stage(self, add: _Add) -> int:
        """Commit a large message's bytes as chunks, one transaction each, and point `add` at them."""
        raw = add.raw
        assert isinstance(raw, bytes)
        stage: int = await self._write(_RawWrite(start_stage))
        try:
            chunks = split_raw(raw)
            for seq, chunk in enumerate(chunks):
                await self._write(_RawWrite(functools.partial(write_chunk, stage=stage, seq=seq, data=chunk)))
        except BaseException:
            await self._discard(stage)
            raise
        add.raw = StagedRaw(stage, len(raw), len(chunks))
        return stage

    async def _discard(self, stage: int) -> None:
        with contextlib.suppress(Exception):  # best effort: the next start drops pending sets anyway
            await asyncio.shield(self._write(_RawWrite(functools.partial(discard_stage, stage=stage))))

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
        return _Add(a.raw, a.summary, a.envelope, a.created, a.users, a.queue, a.dedupe, a.tags, a.rules)

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
    ) -> Callable[[sqlite3.Connection], tuple[MailEntry, builtins.list[Event]]]:
        """The write that delivers. A relay copy's summary is parsed first, off the loop and off the
        writer (milliseconds a megabyte, which every other commit would wait for)."""
        now = self.clock.now()
        copy: tuple[Relayed, Summary] | None = None
        if prefix or suffix:
            loop = asyncio.get_running_loop()
            copy = await loop.run_in_executor(self._summaries(), self._copy_summary, message_id, prefix, suffix)

        def write(conn: sqlite3.Connection) -> tuple[MailEntry, builtins.list[Event]]:
            row = conn.execute(
                f"SELECT rowid, envelope_json, size FROM messages WHERE id = ? AND {_SHOWN}", (message_id,)
            ).fetchone()
            if row is None:
                raise NoSuchMessage(message_id)
            root, env_j, size = row
            target, target_id = root, message_id
            if copy is not None:  # its own row and summary; only the added bytes stored
                relayed, summary = copy
                target, target_id = insert_message(conn, relayed, summary, _envelope(env_j), now, root)
                size = relayed.size
            uid = deliver_entry(conn, user, folder, target, root, (), now)
            entry = MailEntry(uid, target_id, frozenset(), now, size)
            return entry, [MailboxChanged(user, folder)]

        return write

    def _copy_summary(self, message_id: str, prefix: bytes, suffix: bytes) -> tuple[Relayed, Summary]:
        copy = prefix + self.raw(message_id) + suffix
        return Relayed(prefix, suffix, len(copy)), mime.summarize(copy)

    def _prune(self, conn: sqlite3.Connection) -> list[Event]:
        (count,) = conn.execute("SELECT total FROM tally").fetchone()  # kept by triggers, as count() reads
        excess = count - self.max_messages
        if excess <= 0:
            return []
        rows = conn.execute(  # at most PRUNE_HIDE: the rest after the next batches
            f"SELECT rowid FROM messages WHERE parent IS NULL AND {_SHOWN} ORDER BY created, rowid LIMIT ?",
            (min(excess, PRUNE_HIDE),),
        ).fetchall()
        return self._prune_rows(conn, [r[0] for r in rows])

    def _prune_rows(self, conn: sqlite3.Connection, rowids: list[int]) -> list[Event]:
        """A capture's few over --max-messages go at once; more (the limit lowered on a full store, a
        retention backlog) are hidden, and the reaper deletes them after the commit, in its short steps."""
        if len(rowids) <= DIRECT_DELETE:
            return delete_rows(conn, rowids)
        self.reaper.wake()  # its first step queues behind this write
        return hide_rows(conn, rowids)

    async def prune_before(self, cutoff: float, limit: int = DELETE_BATCH) -> int:
        def write(conn: sqlite3.Connection) -> tuple[int, list[Event]]:
            rows = conn.execute(
                f"SELECT rowid FROM messages WHERE parent IS NULL AND created < ? AND {_SHOWN}"
                " ORDER BY created, rowid LIMIT ?",
                (cutoff, limit),
            ).fetchall()
            return len(rows), self._prune_rows(conn, [r[0] for r in rows]) if rows else []

        result: int = await self._write(write)
        await self._settle()
        return result

    # Bulk deletes (by search, retention, the reaper) go in writes of about DELETE_SECONDS, sized from
    # the last one (`_clear.resize`), and let the checkpointer copy each one's pages before the next.
    DELETE_SECONDS = 0.010
    MAX_SETTLE = 1.0  # seconds a bulk write waits for the checkpointer at most (progress if it is stuck)

    def _settling(self) -> Iterator[float]:
        """Pauses (seconds) while the writer is not `settled` since now, for at most MAX_SETTLE."""
        mark = self._writer.checkpoint_mark()
        deadline = time.monotonic() + self.MAX_SETTLE
        while not self._writer.settled(mark) and time.monotonic() < deadline:
            yield 0.002

    async def _settle(self) -> None:
        for pause in self._settling():
            await asyncio.sleep(pause)

    def _settle_sync(self) -> None:  # the reaper's thread
        for pause in self._settling():
            time.sleep(pause)

    # -- reading ---------------------------------------------------------------
    def _rowid(self, message_id: str) -> int | None:
        if message_id == "latest":
            row = self._db.execute(
                f"SELECT rowid FROM messages WHERE parent IS NULL AND {_SHOWN}"
                " ORDER BY created DESC, rowid DESC LIMIT 1"
            ).fetchone()
        else:
            row = self._db.execute(f"SELECT rowid FROM messages WHERE id = ? AND {_SHOWN}", (message_id,)).fetchone()
        return int(row[0]) if row else None

    def get(self, message_id: str) -> StoredMessage | None:
        rowid = self._rowid(message_id)
        if rowid is None:
            return None
        row = self._db.execute(f"SELECT {_COLUMNS} FROM messages m WHERE m.rowid = ?", (rowid,)).fetchone()
        return row_to_message(row) if row else None

    def raw(self, message_id: str) -> bytes:
        if message_id == "latest":
            rowid = self._rowid(message_id)
            row = self._db.execute("SELECT raw, chunks, zstd FROM message_raw WHERE rowid = ?", (rowid,)).fetchone()
        else:  # one query: IMAP FETCH and SEARCH call this per message
            row = self._db.execute(
                "SELECT r.raw, r.chunks, r.zstd, d.prefix, d.suffix FROM messages m"
                " LEFT JOIN relayed d ON d.rowid = m.rowid"
                " JOIN message_raw r ON r.rowid = (CASE WHEN d.rowid IS NULL THEN m.rowid ELSE m.parent END)"
                f" WHERE m.id = ? AND {_SHOWN_M}",
                (message_id,),
            ).fetchone()
        if row is None:
            raise NoSuchMessage(message_id)
        raw = read_raw(self._db, row[0], row[1], row[2])
        return raw if len(row) < 5 or row[3] is None else row[3] + raw + row[4]

    def _page(self, where: str, params: list[Any], start: int, limit: int, user: str | None) -> Page:
        everything_listed = where == "1" and not user
        where = f"({where}) AND {_SHOWN_M}"
        if user:
            where += (
                " AND m.rowid IN (SELECT e.root FROM entries e JOIN folders f ON f.id = e.folder_id WHERE f.user = ?)"
            )
            params = [*params, normalize_user(user)]
        db = self._db
        everything, unread = self.count()
        # With an index look-up in the query ("MATCH"), the matches are counted from its rows (the unary +
        # keeps the planner off the listing index, which it would walk testing every row: 41 -> 3 ms for
        # 1,000 matches in 100,000). The page too, unless walking that index, newest first, finds its
        # start + limit matches sooner: after about (start + limit) * everything / total rows.
        looked_up = "MATCH" in where
        if looked_up and (few := self._few_matches(where, params, start, limit)) is not None:
            page, total, matching_unread = few
            return Page(page, total, unread, start, matching_unread, self.tags())
        if everything_listed:
            total, matching_unread = everything, unread
        else:
            total, matching_unread = db.execute(
                "SELECT count(*), coalesce(sum(m.read = 0), 0) FROM messages m"
                f" WHERE {'+' if looked_up else ''}m.parent IS NULL AND ({where})",
                params,
            ).fetchone()
        sort = looked_up and (start + limit) * everything >= SORT_COST * total * total
        # The page's rows are picked by rowid first: OFFSET then skips index entries only, where skipping
        # whole rows cost 23 ms for the middle page of a million messages (15 ms now).
        rows = db.execute(
            f"SELECT {_COLUMNS} FROM messages m WHERE m.rowid IN (SELECT m.rowid FROM messages m"
            f" WHERE {'+' if sort else ''}m.parent IS NULL AND ({where})"
            " ORDER BY m.created DESC, m.rowid DESC LIMIT ? OFFSET ?) ORDER BY m.created DESC, m.rowid DESC",
            [*params, max(0, limit), max(0, start)],
        ).fetchall()
        page = [row_to_message(r) for r in rows]
        return Page(page, int(total), unread, start, int(matching_unread), self.tags())

    def _few_matches(
        self, where: str, params: list[Any], start: int, limit: int
    ) -> tuple[builtins.list[StoredMessage], int, int] | None:
        """(page, matches, unread matches) from one pass over the matches when there are at most FEW_MATCHES,
        else None (and the count and the page each make their pass): a count and then a page read the index
        look-ups twice, which for a narrow search of a large store (a sender and a common word, 17,000 of a
        million) is most of its cost. One statement, one step: fetching the matches row by row gave up the
        interpreter lock at each, and beside a busy thread (the authentication sweep) that made it 500 ms."""
        total, unread, page = self._db.execute(
            "WITH hits (r, c, u) AS MATERIALIZED (SELECT m.rowid, m.created, m.read = 0 FROM messages m"
            f" WHERE +m.parent IS NULL AND ({where}) LIMIT ?)"
            " SELECT (SELECT count(*) FROM hits), (SELECT coalesce(sum(u), 0) FROM hits),"
            " (SELECT json_group_array(r) FROM (SELECT r FROM hits ORDER BY c DESC, r DESC LIMIT ? OFFSET ?))",
            [*params, FEW_MATCHES + 1, max(0, limit), max(0, start)],
        ).fetchone()
        if total > FEW_MATCHES:
            return None
        wanted = json.loads(page)
        if not wanted:
            return [], int(total), int(unread)
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM messages m WHERE m.rowid IN ({','.join('?' * len(wanted))})"
            " ORDER BY m.created DESC, m.rowid DESC",
            wanted,
        ).fetchall()
        return [row_to_message(r) for r in rows], int(total), int(unread)

    def list(self, start: int = 0, limit: int = 50, user: str | None = None) -> Page:
        return self._page("1", [], start, limit, user)

    search_seconds = SEARCH_SECONDS  # how long one search may run (a test may set it on the instance)

    @contextlib.contextmanager
    def _search_budget(self) -> Iterator[None]:
        """Interrupt this thread's reader once a search has run `search_seconds` (store/_deadline.py): the
        interrupt reaches FTS5's own lookups through the same connection too."""
        token = WATCHDOG.arm(self._db, self.search_seconds)
        try:
            yield
        except sqlite3.OperationalError as exc:
            if "interrupt" not in str(exc):
                raise
            raise QueryTooSlow(f"the search ran over its {self.search_seconds:g} s budget") from None
        finally:
            WATCHDOG.disarm(token)

    def search(
        self, query: str, start: int = 0, limit: int = 50, user: str | None = None, tz: str | None = None
    ) -> Page:
        with self._search_budget():
            where, params = compile_query(query, self.clock.now(), time_zone(tz), counts=self._counts())
            return self._page(where, list(params), start, limit, user)

    def search_ids(self, query: str, user: str | None = None, tz: str | None = None) -> builtins.list[str]:
        with self._search_budget():
            where, params = compile_query(query, self.clock.now(), time_zone(tz), counts=self._counts())
            params = list(params)
            if user:
                where += (
                    " AND m.rowid IN (SELECT e.root FROM entries e JOIN folders f ON f.id = e.folder_id"
                    " WHERE f.user = ?)"
                )
                params.append(normalize_user(user))
            rows = self._db.execute(
                f"SELECT m.id FROM messages m WHERE m.parent IS NULL AND ({where}) AND {_SHOWN_M}", params
            )
            return [r[0] for r in rows]

    def _counts(self) -> Callable[[str], int]:
        """The trigram counts the search compiler picks its look-ups by (in this thread's connection)."""
        return self._gram_counts.bound(self._db, self.count()[0])

    def count(self) -> tuple[int, int]:
        total, unread = self._db.execute("SELECT total, unread FROM tally").fetchone()  # kept by triggers
        return int(total), int(unread)

    def mailboxes(self) -> builtins.list[MailboxStat]:
        rows = self._db.execute(
            "SELECT f.user, count(DISTINCT e.root),"
            " count(DISTINCT CASE WHEN instr(' ' || e.flags || ' ', ' \\Seen ') = 0 THEN e.root END)"
            f" FROM folders f JOIN entries e ON e.folder_id = f.id WHERE {shown('e.root')}"
            " GROUP BY f.user ORDER BY f.user"
        ).fetchall()
        return [MailboxStat(u, int(t), int(n)) for u, t, n in rows]

    async def delete(self, ids: Sequence[str] | None) -> int:
        if ids is None:
            request = _DeleteAll()
            everything: int = await self._write(request)
            if request.set_aside:
                self.reaper.wake()
            return everything

        hide = len(ids) > DIRECT_DELETE
        took = [0.0]

        def write(conn: sqlite3.Connection, chunk: Sequence[str]) -> tuple[int, list[Event]]:
            began = time.perf_counter()
            rowids = []
            for mid in chunk:
                row = conn.execute(f"SELECT rowid FROM messages WHERE id = ? AND parent IS NULL AND {_SHOWN}",
                                   (mid,)).fetchone()  # fmt: skip
                if row:
                    rowids.append(int(row[0]))
            rowids = list(dict.fromkeys(rowids))
            events = (hide_rows if hide else delete_rows)(conn, rowids)
            took[0] = time.perf_counter() - began
            return len(rowids), events

        # A batch a transaction, so captures commit between them: a delete by search of 100,000 messages
        # never holds the writer for long (200 scattered messages of a million took 80 ms, 50 about 15).
        # More than a few are hidden (a look-up each), and the reaper deletes them after the answer.
        deleted = start = 0
        while start < len(ids):
            size = self._hide_size if hide else self._delete_size
            deleted += await self._write(functools.partial(write, chunk=ids[start : start + size]))
            start += size
            if hide:
                self._hide_size = resize(size, took[0], self.DELETE_SECONDS, HIDE_BATCH)
            else:
                self._delete_size = resize(size, took[0], self.DELETE_SECONDS, DELETE_BATCH * 5)
            if start < len(ids):
                await self._settle()
        if hide and deleted:
            self.reaper.wake()
        return deleted

    async def set_read(self, ids: Sequence[str] | None, read: bool) -> int:
        def write(conn: sqlite3.Connection) -> tuple[int, list[Event]]:
            if ids is None:
                found = conn.execute(
                    f"SELECT rowid, id FROM messages WHERE parent IS NULL AND read != ? AND {_SHOWN}", (read,)
                ).fetchall()
            else:  # only those that change: they alone are announced, as Mailpit does
                found = []
                for start in range(0, len(ids), 500):
                    chunk_ids = list(ids[start : start + 500])
                    marks = ",".join("?" * len(chunk_ids))
                    found += conn.execute(
                        f"SELECT rowid, id FROM messages WHERE parent IS NULL AND read != ? AND id IN ({marks})"
                        f" AND {_SHOWN}",
                        [read, *chunk_ids],
                    ).fetchall()
            rowids = [r[0] for r in found]
            events: list[Event] = []
            for start in range(0, len(rowids), 500):
                chunk = rowids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                conn.execute(f"UPDATE messages SET read = ? WHERE rowid IN ({marks})", [int(read), *chunk])
                events.extend(self._set_seen(conn, chunk, read))
            return len(found), [MessagesUpdated(tuple(r[1] for r in found), read=read), *events]

        result: int = await self._write(write)
        return result

    # -- tags ------------------------------------------------------------------
    async def set_tags(self, ids: Sequence[str], tags: Sequence[str]) -> int:
        """Replace the tags of these messages (Mailpit's PUT /api/v1/tags); names are cleaned, and one the
        store has in another case takes the stored spelling. Returns how many messages exist."""
        wanted = unique_tags(tags)

        def write(conn: sqlite3.Connection) -> tuple[int, list[Event]]:
            names = canonical(conn, wanted)
            column = ",".join(names)
            found: list[str] = []
            for start in range(0, len(ids), 500):
                chunk = list(ids[start : start + 500])
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT rowid, id, tags FROM messages WHERE parent IS NULL AND id IN ({marks}) AND {_SHOWN}", chunk
                ).fetchall()
                changed = [(r[0], r[1]) for r in rows if r[2] != column]
                found += [r[1] for r in rows]
                conn.executemany("UPDATE messages SET tags = ? WHERE rowid = ?", [(column, r) for r, _ in changed])
            return len(found), [MessagesUpdated(tuple(found), tags=tuple(names))] if found else []

        result: int = await self._write(write)
        return result

    async def _retag(self, old: str, new: str) -> None:
        def write(conn: sqlite3.Connection) -> tuple[None, list[Event]]:
            if old == new:  # Mailpit's order: a rename to the same name is fine, found or not
                return None, []
            spelling = store_spelling(conn, old)  # names compare case-insensitively (COLLATE NOCASE there)
            if spelling is None:
                raise ValueError(f"tag not found: {old}")
            if new and new.lower() != spelling.lower() and store_spelling(conn, new) is not None:
                raise ValueError(f"tag already exists: {new}")
            rows = holding(conn, spelling)
            updates = []
            for rowid, _, column in rows:
                kept = [t for t in column.split(",") if t and t.lower() != spelling.lower()]
                updates.append((",".join(unique_tags([*kept, new] if new else kept)), rowid))
            conn.executemany("UPDATE messages SET tags = ? WHERE rowid = ?", updates)
            forget(conn, spelling)
            if new:  # the new spelling is the store's, even over a name no message has any more
                forget(conn, new)
                canonical(conn, [new])
            return None, [TagRenamed(spelling, new, tuple(r[1] for r in rows))]

        await self._write(write)
