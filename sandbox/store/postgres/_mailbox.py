"""Folders and entries on PostgreSQL: the per-user view IMAP and POP3 read, with UIDs and flags.

UIDs come from `folders.uidnext`, reserved by an UPDATE in the writing transaction: the row lock makes
frontends that deliver into one folder at once take turns, so a UID is never handed out twice, and one
that was handed out is never reused (RFC 3501 §2.3.1.1). UIDVALIDITY comes from one counter row the same way.

Several frontends write at once, each in READ COMMITTED transactions, so a write that reads before it
changes locks what it reads: flag changes lock their entries (FOR UPDATE), a folder that is renamed or
deleted is locked first (a delivery into it waits, then sees what is left), and a message is locked
before its read state is recomputed or before it is found to be in no folder (the other frontend's flag
change or copy of its entry commits first, and is then seen). Reads are single statements, so what one
returns is one snapshot (a folder's UIDNEXT and its message count agree).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import psycopg
import psycopg.errors

from mailsandbox.clock import Clock
from mailsandbox.events import Event, MailboxChanged, MessagesDeleted, MessagesUpdated
from mailsandbox.models import FolderInfo, MailEntry
from mailsandbox.store import FlagMode, FolderExists, NoSuchFolder, StoreError, normalize_user
from mailsandbox.store._mailbox import SEEN, _flag_text, _flags, canonical_folder
from mailsandbox.store.postgres._writer import PgWriteFn

# An entry's flags are one space-separated text; `strpos(' ' || flags || ' ', %s) > 0` with this finds \Seen
# (a bound parameter: no LIKE, whose default escape is the backslash).
_SEEN_WORD = f" {SEEN} "
_UNSEEN = "strpos(' ' || e.flags || ' ', %s) = 0"


def new_uidvalidity(conn: psycopg.Connection, now: float) -> int:
    # Strictly increasing, so a re-created folder never reuses an old UIDVALIDITY, whichever frontend made it.
    row = conn.execute(
        "UPDATE uidvalidity_counter SET last = greatest(last + 1, %s) RETURNING last", (int(now) & 0x7FFFFFFF,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def folder_id(conn: psycopg.Connection, user: str, name: str, create: bool, now: float = 0.0) -> int:
    name = canonical_folder(name)
    row = conn.execute("SELECT id FROM folders WHERE username = %s AND name = %s", (user, name)).fetchone()
    if row:
        return int(row[0])
    if not create:
        raise NoSuchFolder(name)
    # Another frontend may create it at the same moment: the unique key decides, and both use its row.
    row = conn.execute(
        "INSERT INTO folders (username, name, uidvalidity) VALUES (%s, %s, %s)"
        " ON CONFLICT (username, name) DO NOTHING RETURNING id",
        (user, name, new_uidvalidity(conn, now)),
    ).fetchone()
    if row is None:
        row = conn.execute("SELECT id FROM folders WHERE username = %s AND name = %s", (user, name)).fetchone()
        assert row is not None
    return int(row[0])


def _locked_folder(conn: psycopg.Connection, user: str, name: str) -> int:
    """The folder's id, its row locked until COMMIT (deliveries into it wait); NoSuchFolder without it."""
    row = conn.execute(
        "SELECT id FROM folders WHERE username = %s AND name = %s FOR UPDATE", (user, canonical_folder(name))
    ).fetchone()
    if row is None:
        raise NoSuchFolder(canonical_folder(name))
    return int(row[0])


# One entry to append: (user, folder, message rowid, root rowid, flag text, internaldate).
NewEntry = tuple[str, str, int, int, str, float]


def deliver_entries(conn: psycopg.Connection, entries: Sequence[NewEntry]) -> list[int]:
    """Append entries in order and return their UIDs: one UPDATE per folder reserves a run of UIDs.
    A folder is created on first use, and again if another frontend deleted it meanwhile (the UPDATE that
    waited for that delete's lock then finds no row), as a delivery into a missing folder creates it."""
    runs: dict[tuple[str, str], list[int]] = {}
    for i, entry in enumerate(entries):
        runs.setdefault((entry[0], canonical_folder(entry[1])), []).append(i)
    fids, uids = [0] * len(entries), [0] * len(entries)
    for (user, folder), indexes in runs.items():
        n = len(indexes)
        row = conn.execute(
            "UPDATE folders SET uidnext = uidnext + %s WHERE username = %s AND name = %s RETURNING id, uidnext - %s",
            (n, user, folder, n),
        ).fetchone()
        while row is None:
            fid = folder_id(conn, user, folder, create=True, now=entries[indexes[0]][5])
            row = conn.execute(
                "UPDATE folders SET uidnext = uidnext + %s WHERE id = %s RETURNING id, uidnext - %s", (n, fid, n)
            ).fetchone()
        for k, i in enumerate(indexes):
            fids[i], uids[i] = int(row[0]), int(row[1]) + k
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO entries (folder_id, uid, message, root, flags, internaldate) VALUES (%s,%s,%s,%s,%s,%s)",
            [(fid, uid, e[2], e[3], e[4], e[5]) for fid, uid, e in zip(fids, uids, entries, strict=True)],
        )
    return uids


def deliver_entry(
    conn: psycopg.Connection, user: str, folder: str, message: int, root: int, flags: Iterable[str], date: float
) -> int:
    """Append one entry with the folder's next UID; INBOX (or the folder) is created on first use."""
    return deliver_entries(conn, [(user, folder, message, root, _flag_text(flags), date)])[0]


def _lock_messages(conn: psycopg.Connection, rowids: Sequence[int]) -> None:
    """Lock these message rows until COMMIT, in rowid order (two frontends locking overlapping sets take
    them in the same order). Waiting here lets a transaction that changed their entries (or inserted one,
    which holds a key-share lock on its message) commit first; the next statement sees what it did."""
    conn.execute("SELECT rowid FROM messages WHERE rowid = ANY(%s::bigint[]) ORDER BY rowid FOR UPDATE", (rowids,))


def _sync_read(conn: psycopg.Connection, roots: Iterable[int]) -> list[Event]:
    """A message counts as read in the UI when any of its entries is \\Seen (flags are shared)."""
    ids = sorted(set(roots))
    if not ids:
        return []
    _lock_messages(conn, ids)
    rows = conn.execute(
        "UPDATE messages m SET read = s.seen FROM (SELECT r.root, EXISTS (SELECT 1 FROM entries e"
        " WHERE e.root = r.root AND strpos(' ' || e.flags || ' ', %s) > 0) AS seen"
        " FROM unnest(%s::bigint[]) AS r(root)) s"
        " WHERE m.rowid = s.root AND m.read IS DISTINCT FROM s.seen RETURNING m.id, m.read, m.rowid",
        (_SEEN_WORD, ids),
    ).fetchall()
    changed: dict[bool, list[tuple[int, str]]] = {True: [], False: []}
    for mid, read, rowid in rows:
        changed[bool(read)].append((int(rowid), str(mid)))
    return [MessagesUpdated(tuple(mid for _, mid in sorted(found)), read=r) for r, found in changed.items() if found]


def drop_orphans(conn: psycopg.Connection, roots: Iterable[int]) -> list[Event]:
    """A message in no folder and not waiting in the relay queue is gone for good (POP3 DELE, EXPUNGE).
    Only its MessagesDeleted is announced: the folders it left announce themselves."""
    from mailsandbox.store.postgres.store import delete_rows

    ids = sorted(set(roots))
    if not ids:
        return []
    # Locked first: another frontend's COPY of one of its entries, not yet committed, is waited for and
    # then seen below, so a message just copied elsewhere is not taken from under the copy.
    _lock_messages(conn, ids)
    orphans = [
        int(r[0])
        for r in conn.execute(
            "SELECT m.rowid FROM messages m WHERE m.rowid = ANY(%s::bigint[])"
            " AND NOT EXISTS (SELECT 1 FROM entries e WHERE e.root = m.rowid)"
            " AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.message = m.id) ORDER BY m.rowid",
            (ids,),
        )
    ]
    if not orphans:
        return []
    return [e for e in delete_rows(conn, orphans) if isinstance(e, MessagesDeleted)]


# A folder's FolderInfo columns, read in one statement (one snapshot: UIDNEXT and EXISTS agree).
_FOLDER_INFO = (
    "SELECT f.name, f.uidvalidity, f.uidnext, f.subscribed, c.n, c.unseen FROM folders f"
    f" CROSS JOIN LATERAL (SELECT count(*) AS n, count(*) FILTER (WHERE {_UNSEEN}) AS unseen"
    " FROM entries e WHERE e.folder_id = f.id) c WHERE f.username = %s"
)


class PgMailboxMixin:
    clock: Clock

    @property
    def _db(self) -> psycopg.Connection:
        raise NotImplementedError

    def _write_sync(self, fn: PgWriteFn) -> Any:
        raise NotImplementedError

    async def _write(self, fn: PgWriteFn) -> Any:
        raise NotImplementedError

    def _append_fn(
        self, user: str, folder: str, raw: bytes, flags: Iterable[str], internaldate: float | None
    ) -> Callable[[psycopg.Connection], tuple[MailEntry, list[Event]]]:
        """IMAP APPEND's write (the store inserts the message, its raw bytes and its vector)."""
        raise NotImplementedError

    def _set_seen(self, conn: psycopg.Connection, roots: Sequence[int], seen: bool) -> list[Event]:
        """Set or clear \\Seen on every entry of these messages (the UI's read state reaches the folders)."""
        rows = conn.execute(
            "SELECT e.folder_id, e.uid, e.flags, f.username, f.name FROM entries e JOIN folders f"
            " ON f.id = e.folder_id WHERE e.root = ANY(%s::bigint[]) ORDER BY e.folder_id, e.uid FOR UPDATE OF e",
            (list(roots),),
        ).fetchall()
        touched: set[tuple[str, str]] = set()
        updates: list[tuple[str, int, int]] = []
        for fid, uid, flags, user, name in rows:
            new = set(flags.split())
            if seen:
                new.add(SEEN)
            else:
                new.discard(SEEN)
            text = _flag_text(new)
            if text != flags:
                updates.append((text, fid, uid))
                touched.add((user, name))
        if updates:
            with conn.cursor() as cur:
                cur.executemany("UPDATE entries SET flags = %s WHERE folder_id = %s AND uid = %s", updates)
        return [MailboxChanged(u, n) for u, n in sorted(touched)]

    # -- folders -----------------------------------------------------------------
    def _info(self, user: str, name: str | None = None) -> list[FolderInfo]:
        """The user's folders in name order (bytewise, as SQLite sorts, whatever the database's locale),
        or the one named."""
        sql, params = _FOLDER_INFO, [_SEEN_WORD, user]
        if name is not None:
            sql, params = sql + " AND f.name = %s", [*params, name]
        rows = self._db.execute(sql + ' ORDER BY f.name COLLATE "C"', params).fetchall()
        return [FolderInfo(user, n, int(v), int(nxt), int(e), int(u), bool(s)) for n, v, nxt, s, e, u in rows]

    def _ensure_inbox(self, user: str) -> None:
        now = self.clock.now()
        if self._db.execute(
            "SELECT 1 FROM folders WHERE username = %s AND name = 'INBOX'", (user,)
        ).fetchone() is None:
            self._write_sync(lambda conn: (folder_id(conn, user, "INBOX", True, now), []))

    def folders(self, user: str) -> list[FolderInfo]:
        user = normalize_user(user)
        self._ensure_inbox(user)
        return self._info(user)

    def folder(self, user: str, name: str) -> FolderInfo:
        user, name = normalize_user(user), canonical_folder(name)
        if name == "INBOX":
            self._ensure_inbox(user)
        found = self._info(user, name)
        if not found:
            raise NoSuchFolder(name)
        return found[0]

    def entries(self, user: str, folder: str) -> list[MailEntry]:
        user, folder = normalize_user(user), canonical_folder(folder)
        if folder == "INBOX":
            self._ensure_inbox(user)
        elif self._db.execute(
            "SELECT 1 FROM folders WHERE username = %s AND name = %s", (user, folder)
        ).fetchone() is None:
            raise NoSuchFolder(folder)
        rows = self._db.execute(
            "SELECT e.uid, m.id, e.flags, e.internaldate, m.size FROM entries e"
            " JOIN folders f ON f.id = e.folder_id JOIN messages m ON m.rowid = e.message"
            " WHERE f.username = %s AND f.name = %s ORDER BY e.uid",
            (user, folder),
        ).fetchall()
        return [MailEntry(int(uid), mid, _flags(fl), date, int(size)) for uid, mid, fl, date, size in rows]

    def create_folder(self, user: str, name: str) -> None:
        user, name = normalize_user(user), canonical_folder(name.rstrip("/"))
        now = self.clock.now()

        def write(conn: psycopg.Connection) -> tuple[None, list[Event]]:
            if conn.execute("SELECT 1 FROM folders WHERE username = %s AND name = %s", (user, name)).fetchone():
                raise FolderExists(name)
            # Not folder_id's create: a folder another frontend made meanwhile is FolderExists here too.
            made = conn.execute(
                "INSERT INTO folders (username, name, uidvalidity) VALUES (%s, %s, %s)"
                " ON CONFLICT (username, name) DO NOTHING RETURNING id",
                (user, name, new_uidvalidity(conn, now)),
            ).fetchone()
            if made is None:
                raise FolderExists(name)
            return None, []

        self._write_sync(write)

    def delete_folder(self, user: str, name: str) -> None:
        user, name = normalize_user(user), canonical_folder(name)
        if name == "INBOX":
            raise StoreError("INBOX cannot be deleted")  # RFC 3501 §6.3.4

        def write(conn: psycopg.Connection) -> tuple[None, list[Event]]:
            fid = _locked_folder(conn, user, name)
            roots = [r[0] for r in conn.execute("DELETE FROM entries WHERE folder_id = %s RETURNING root", (fid,))]
            conn.execute("DELETE FROM folders WHERE id = %s", (fid,))
            return None, [*drop_orphans(conn, roots), MailboxChanged(user, name)]

        self._write_sync(write)

    def rename_folder(self, user: str, old: str, new: str) -> None:
        user, old, new = normalize_user(user), canonical_folder(old), canonical_folder(new)
        now = self.clock.now()

        def write(conn: psycopg.Connection) -> tuple[None, list[Event]]:
            fid = _locked_folder(conn, user, old)
            if conn.execute("SELECT 1 FROM folders WHERE username = %s AND name = %s", (user, new)).fetchone():
                raise FolderExists(new)
            try:
                if old == "INBOX":
                    # RFC 3501 §6.3.5: renaming INBOX moves its mail to the new name and leaves INBOX empty.
                    # INBOX is locked: a delivery into it waits, and lands in the emptied INBOX after COMMIT.
                    nid = folder_id(conn, user, new, True, now)
                    moved = conn.execute(
                        "INSERT INTO entries (folder_id, uid, message, root, flags, internaldate)"
                        " SELECT %s, row_number() OVER (ORDER BY uid), message, root, flags, internaldate"
                        " FROM entries WHERE folder_id = %s",
                        (nid, fid),
                    ).rowcount
                    conn.execute("UPDATE folders SET uidnext = %s WHERE id = %s", (moved + 1, nid))
                    conn.execute("DELETE FROM entries WHERE folder_id = %s", (fid,))
                else:
                    prefix = old + "/"  # children move with their parent (renamed first: A -> A/B keeps A/B)
                    conn.execute(
                        "UPDATE folders SET name = %s || substr(name, %s)"
                        " WHERE username = %s AND starts_with(name, %s)",
                        (new + "/", len(prefix) + 1, user, prefix),
                    )
                    conn.execute("UPDATE folders SET name = %s WHERE id = %s", (new, fid))
            except psycopg.errors.UniqueViolation:  # made meanwhile by another frontend, or a child's new name
                raise FolderExists(new) from None
            return None, [MailboxChanged(user, old), MailboxChanged(user, new)]

        self._write_sync(write)

    def subscribe(self, user: str, name: str, subscribed: bool) -> None:
        user, name = normalize_user(user), canonical_folder(name)

        def write(conn: psycopg.Connection) -> tuple[None, list[Event]]:
            if conn.execute(
                "UPDATE folders SET subscribed = %s WHERE username = %s AND name = %s RETURNING id",
                (subscribed, user, name),
            ).fetchone() is None:
                raise NoSuchFolder(name)
            return None, []

        self._write_sync(write)

    # -- entries -----------------------------------------------------------------
    def append(
        self, user: str, folder: str, raw: bytes, flags: Iterable[str] = (), internaldate: float | None = None
    ) -> MailEntry:
        # The store's write parses the message here, in the caller's (IMAP worker) thread, not the writer's;
        # it raises NoSuchFolder for a folder other than INBOX that does not exist.
        result: MailEntry = self._write_sync(self._append_fn(user, folder, raw, flags, internaldate))
        return result

    def store_flags(
        self, user: str, folder: str, uids: Iterable[int], flags: Iterable[str], mode: FlagMode
    ) -> list[MailEntry]:
        user, folder = normalize_user(user), canonical_folder(folder)
        wanted = {f for f in flags if f != "\\Recent"}
        uid_list = sorted(set(uids))

        def write(conn: psycopg.Connection) -> tuple[list[MailEntry], list[Event]]:
            fid = folder_id(conn, user, folder, False)
            rows = conn.execute(  # locked: two frontends adding flags to one entry both keep theirs
                "SELECT e.uid, m.id, e.flags, e.internaldate, m.size, e.root FROM entries e"
                " JOIN messages m ON m.rowid = e.message WHERE e.folder_id = %s AND e.uid = ANY(%s::bigint[])"
                " ORDER BY e.uid FOR UPDATE OF e",
                (fid, uid_list),
            ).fetchall()
            out: list[MailEntry] = []
            roots: list[int] = []
            updates: list[tuple[str, int, int]] = []
            for uid, mid, fl, date, size, root in rows:
                current = set(fl.split())
                new = wanted if mode == "set" else current | wanted if mode == "add" else current - wanted
                text = _flag_text(new)
                if text != fl:
                    updates.append((text, fid, uid))
                    roots.append(int(root))
                out.append(MailEntry(int(uid), mid, frozenset(new), date, int(size)))
            if updates:
                with conn.cursor() as cur:
                    cur.executemany("UPDATE entries SET flags = %s WHERE folder_id = %s AND uid = %s", updates)
            events: list[Event] = [MailboxChanged(user, folder)] if roots else []
            return out, [*events, *_sync_read(conn, roots)]

        result: list[MailEntry] = self._write_sync(write)
        return result

    def copy(self, user: str, folder: str, uids: Iterable[int], dest: str) -> list[tuple[int, int]]:
        user, folder, dest = normalize_user(user), canonical_folder(folder), canonical_folder(dest)
        uid_list = sorted(set(uids))
        now = self.clock.now()

        def write(conn: psycopg.Connection) -> tuple[list[tuple[int, int]], list[Event]]:
            fid = folder_id(conn, user, folder, False)
            folder_id(conn, user, dest, False)
            rows = conn.execute(
                "SELECT uid, message, root, flags, internaldate FROM entries"
                " WHERE folder_id = %s AND uid = ANY(%s::bigint[]) ORDER BY uid",
                (fid, uid_list),
            ).fetchall()
            if not rows:
                return [], []
            new_uids = deliver_entries(
                conn, [(user, dest, int(m), int(r), _flag_text(fl.split()), d or now) for _u, m, r, fl, d in rows]
            )
            return [(int(r[0]), n) for r, n in zip(rows, new_uids, strict=True)], [MailboxChanged(user, dest)]

        result: list[tuple[int, int]] = self._write_sync(write)
        return result

    def expunge(self, user: str, folder: str, uids: Iterable[int]) -> None:
        self._write_sync(self._expunge_fn(user, folder, uids))

    async def discard(self, user: str, folder: str, uids: Iterable[int]) -> None:
        await self._write(self._expunge_fn(user, folder, uids))

    def _expunge_fn(self, user: str, folder: str, uids: Iterable[int]) -> PgWriteFn:
        user, folder = normalize_user(user), canonical_folder(folder)
        uid_list = sorted(set(uids))

        def write(conn: psycopg.Connection) -> tuple[None, list[Event]]:
            fid = folder_id(conn, user, folder, False)
            roots = {
                int(r[0])
                for r in conn.execute(
                    "DELETE FROM entries WHERE folder_id = %s AND uid = ANY(%s::bigint[]) RETURNING root",
                    (fid, uid_list),
                )
            }
            if not roots:
                return None, []
            return None, [MailboxChanged(user, folder), *drop_orphans(conn, roots), *_sync_read(conn, roots)]

        return write


__all__ = [
    "SEEN",
    "NewEntry",
    "PgMailboxMixin",
    "canonical_folder",
    "deliver_entries",
    "deliver_entry",
    "drop_orphans",
    "folder_id",
    "new_uidvalidity",
]
