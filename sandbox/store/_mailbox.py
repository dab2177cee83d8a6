"""Folders and entries: the per-user view IMAP and POP3 read, with UIDs and flags (RFC 3501 §2.3.1)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from mailsandbox import mime
from mailsandbox.clock import Clock
from mailsandbox.events import Event, MailboxChanged, MessagesDeleted, MessagesUpdated
from mailsandbox.models import Envelope, FolderInfo, MailEntry
from mailsandbox.store import FlagMode, FolderExists, NoSuchFolder, NoSuchMessage, StoreError, normalize_user
from mailsandbox.store._schema import shown
from mailsandbox.store._writer import WriteFn, insert_rows

SEEN = "\\Seen"


def canonical_folder(name: str) -> str:
    # RFC 3501 §5.1: INBOX is case-insensitive; every other name is case-sensitive.
    return "INBOX" if name.upper() == "INBOX" else name


def _flags(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _flag_text(flags: Iterable[str]) -> str:
    return " ".join(sorted(set(flags)))


def _new_uidvalidity(conn: sqlite3.Connection, now: float) -> int:
    # Strictly increasing, so a re-created folder never reuses an old UIDVALIDITY (RFC 3501 §2.3.1.1),
    # even when the folder that held the highest one was deleted meanwhile.
    (value,) = conn.execute(
        "UPDATE uidvalidity_counter SET last = max(last + 1, ?) RETURNING last", (int(now) & 0x7FFFFFFF,)
    ).fetchone()
    return int(value)


def folder_id(conn: sqlite3.Connection, user: str, name: str, create: bool, now: float = 0.0) -> int:
    name = canonical_folder(name)
    row = conn.execute("SELECT id FROM folders WHERE user = ? AND name = ?", (user, name)).fetchone()
    if row:
        return int(row[0])
    if not create:
        raise NoSuchFolder(name)
    cur = conn.execute(
        "INSERT INTO folders (user, name, uidvalidity) VALUES (?, ?, ?)",
        (user, name, _new_uidvalidity(conn, now)),
    )
    return int(cur.lastrowid or 0)


def deliver_entry(
    conn: sqlite3.Connection, user: str, folder: str, message: int, root: int, flags: Iterable[str], date: float
) -> int:
    """Append one entry with the folder's next UID; INBOX (or the folder) is created on first use."""
    return deliver_entries(conn, [(user, folder, message, root, _flag_text(flags), date)])[0]


# One entry to append: (user, folder, message rowid, root rowid, flag text, internaldate).
NewEntry = tuple[str, str, int, int, str, float]


def deliver_entries(conn: sqlite3.Connection, entries: Sequence[NewEntry]) -> list[int]:
    """Append entries in order, as deliver_entry would one by one, and return their UIDs: one UPDATE per
    folder reserves a run of UIDs, one multi-row INSERT writes the entries."""
    runs: dict[tuple[str, str], list[int]] = {}
    for i, entry in enumerate(entries):
        runs.setdefault((entry[0], canonical_folder(entry[1])), []).append(i)
    fids, uids = [0] * len(entries), [0] * len(entries)
    for (user, folder), indexes in runs.items():
        n = len(indexes)
        row = conn.execute(
            "UPDATE folders SET uidnext = uidnext + ? WHERE user = ? AND name = ? RETURNING id, uidnext - ?",
            (n, user, folder, n),
        ).fetchall()
        if not row:
            fid = folder_id(conn, user, folder, create=True, now=entries[indexes[0]][5])
            row = conn.execute(
                "UPDATE folders SET uidnext = uidnext + ? WHERE id = ? RETURNING id, uidnext - ?", (n, fid, n)
            ).fetchall()
        fid, first = row[0]
        for k, i in enumerate(indexes):
            fids[i], uids[i] = fid, first + k
    insert_rows(
        conn,
        "INSERT INTO entries (folder_id, uid, message, root, flags, internaldate) VALUES ",
        [(fid, uid, e[2], e[3], e[4], e[5]) for fid, uid, e in zip(fids, uids, entries, strict=True)],
    )
    return uids


def _sync_read(conn: sqlite3.Connection, roots: Iterable[int]) -> list[Event]:
    """A message counts as read in the UI when any of its entries is \\Seen (flags are shared)."""
    changed: dict[bool, list[str]] = {True: [], False: []}
    for root in set(roots):
        row = conn.execute(f"SELECT id, read FROM messages WHERE rowid = ? AND {shown('rowid')}", (root,)).fetchone()
        if row is None:
            continue
        (seen,) = conn.execute(
            "SELECT count(*) FROM entries WHERE root = ? AND instr(' ' || flags || ' ', ' \\Seen ') > 0", (root,)
        ).fetchone()
        read = seen > 0
        if read != bool(row[1]):
            conn.execute("UPDATE messages SET read = ? WHERE rowid = ?", (int(read), root))
            changed[read].append(row[0])
    return [MessagesUpdated(tuple(ids), read=r) for r, ids in changed.items() if ids]


class MailboxMixin:
    clock: Clock

    @property
    def _db(self) -> sqlite3.Connection:
        raise NotImplementedError

    def _write_sync(self, fn: WriteFn) -> Any:
        raise NotImplementedError

    async def _write(self, fn: WriteFn) -> Any:
        raise NotImplementedError

    def _set_seen(self, conn: sqlite3.Connection, roots: Sequence[int], seen: bool) -> list[Event]:
        marks = ",".join("?" * len(roots))
        rows = conn.execute(
            f"SELECT e.folder_id, e.uid, e.flags, f.user, f.name FROM entries e JOIN folders f"
            f" ON f.id = e.folder_id WHERE e.root IN ({marks})",
            list(roots),
        ).fetchall()
        touched: set[tuple[str, str]] = set()
        for fid, uid, flags, user, name in rows:
            new = set(flags.split())
            if seen:
                new.add(SEEN)
            else:
                new.discard(SEEN)
            text = _flag_text(new)
            if text != flags:
                conn.execute("UPDATE entries SET flags = ? WHERE folder_id = ? AND uid = ?", (text, fid, uid))
                touched.add((user, name))
        return [MailboxChanged(u, n) for u, n in sorted(touched)]

    # -- folders -----------------------------------------------------------------
    def _info(self, user: str, fid: int, name: str, uidvalidity: int, uidnext: int, sub: int) -> FolderInfo:
        exists, unseen = self._db.execute(
            "SELECT count(*), coalesce(sum(instr(' ' || flags || ' ', ' \\Seen ') = 0), 0)"
            f" FROM entries WHERE folder_id = ? AND {shown('root')}",
            (fid,),
        ).fetchone()
        return FolderInfo(user, name, uidvalidity, uidnext, int(exists), int(unseen), bool(sub))

    def _ensure_inbox(self, user: str) -> None:
        now = self.clock.now()
        if self._db.execute(
            "SELECT 1 FROM folders WHERE user = ? AND name = 'INBOX'", (user,)
        ).fetchone() is None:
            self._write_sync(lambda conn: (folder_id(conn, user, "INBOX", True, now), []))

    def folders(self, user: str) -> list[FolderInfo]:
        user = normalize_user(user)
        self._ensure_inbox(user)
        rows = self._db.execute(
            "SELECT id, name, uidvalidity, uidnext, subscribed FROM folders WHERE user = ? ORDER BY name", (user,)
        ).fetchall()
        return [self._info(user, *r) for r in rows]

    def folder(self, user: str, name: str) -> FolderInfo:
        user, name = normalize_user(user), canonical_folder(name)
        if name == "INBOX":
            self._ensure_inbox(user)
        row = self._db.execute(
            "SELECT id, name, uidvalidity, uidnext, subscribed FROM folders WHERE user = ? AND name = ?",
            (user, name),
        ).fetchone()
        if row is None:
            raise NoSuchFolder(name)
        return self._info(user, *row)

    def entries(self, user: str, folder: str) -> list[MailEntry]:
        user, folder = normalize_user(user), canonical_folder(folder)
        if folder == "INBOX":
            self._ensure_inbox(user)
        elif self._db.execute(
            "SELECT 1 FROM folders WHERE user = ? AND name = ?", (user, folder)
        ).fetchone() is None:
            raise NoSuchFolder(folder)
        rows = self._db.execute(
            "SELECT e.uid, m.id, e.flags, e.internaldate, m.size FROM entries e"
            " JOIN folders f ON f.id = e.folder_id JOIN messages m ON m.rowid = e.message"
            f" WHERE f.user = ? AND f.name = ? AND {shown('e.root')} ORDER BY e.uid",
            (user, folder),
        ).fetchall()
        return [MailEntry(uid, mid, _flags(fl), date, size) for uid, mid, fl, date, size in rows]

    def create_folder(self, user: str, name: str) -> None:
        user, name = normalize_user(user), canonical_folder(name.rstrip("/"))
        now = self.clock.now()

        def write(conn: sqlite3.Connection) -> tuple[None, list[Event]]:
            if conn.execute("SELECT 1 FROM folders WHERE user = ? AND name = ?", (user, name)).fetchone():
                raise FolderExists(name)
            folder_id(conn, user, name, True, now)
            return None, []

        self._write_sync(write)

    def delete_folder(self, user: str, name: str) -> None:
        user, name = normalize_user(user), canonical_folder(name)
        if name == "INBOX":
            raise StoreError("INBOX cannot be deleted")  # RFC 3501 §6.3.4

        def write(conn: sqlite3.Connection) -> tuple[None, list[Event]]:
            fid = folder_id(conn, user, name, False)
            roots = [r[0] for r in conn.execute("SELECT DISTINCT root FROM entries WHERE folder_id = ?", (fid,))]
            conn.execute("DELETE FROM entries WHERE folder_id = ?", (fid,))
            conn.execute("DELETE FROM folders WHERE id = ?", (fid,))
            return None, [*_drop_orphans(conn, roots), MailboxChanged(user, name)]

        self._write_sync(write)

    def rename_folder(self, user: str, old: str, new: str) -> None:
        user, old, new = normalize_user(user), canonical_folder(old), canonical_folder(new)
        now = self.clock.now()

        def write(conn: sqlite3.Connection) -> tuple[None, list[Event]]:
            fid = folder_id(conn, user, old, False)
            if conn.execute("SELECT 1 FROM folders WHERE user = ? AND name = ?", (user, new)).fetchone():
                raise FolderExists(new)
            if old == "INBOX":
                # RFC 3501 §6.3.5: renaming INBOX moves its mail to the new name and leaves INBOX empty.
                nid = folder_id(conn, user, new, True, now)
                rows = conn.execute(
                    "SELECT uid, message, root, flags, internaldate FROM entries WHERE folder_id = ? ORDER BY uid",
                    (fid,),
                ).fetchall()
                for i, (_uid, message, root, flags, date) in enumerate(rows, 1):
                    conn.execute(
                        "INSERT INTO entries (folder_id, uid, message, root, flags, internaldate)"
                        " VALUES (?,?,?,?,?,?)",
                        (nid, i, message, root, flags, date),
                    )
                conn.execute("UPDATE folders SET uidnext = ? WHERE id = ?", (len(rows) + 1, nid))
                conn.execute("DELETE FROM entries WHERE folder_id = ?", (fid,))
            else:
                conn.execute("UPDATE folders SET name = ? WHERE id = ?", (new, fid))
                prefix = old + "/"  # children move with their parent
                for cid, cname in conn.execute(
                    "SELECT id, name FROM folders WHERE user = ? AND substr(name, 1, ?) = ?",
                    (user, len(prefix), prefix),
                ).fetchall():
                    conn.execute("UPDATE folders SET name = ? WHERE id = ?", (new + "/" + cname[len(prefix):], cid))
            return None, [MailboxChanged(user, old), MailboxChanged(user, new)]

        self._write_sync(write)

    def subscribe(self, user: str, name: str, subscribed: bool) -> None:
        user, name = normalize_user(user), canonical_folder(name)

        def write(conn: sqlite3.Connection) -> tuple[None, list[Event]]:
            fid = folder_id(conn, user, name, False)
            conn.execute("UPDATE folders SET subscribed = ? WHERE id = ?", (int(subscribed), fid))
            return None, []

        self._write_sync(write)

    # -- entries -----------------------------------------------------------------
    def append(
        self, user: str, folder: str, raw: bytes, flags: Iterable[str] = (), internaldate: float | None = None
    ) -> MailEntry:
        from mailsandbox.store.sqlite import insert_message

        user, folder = normalize_user(user), canonical_folder(folder)
        date = internaldate if internaldate is not None else self.clock.now()
        summary = mime.summarize(raw)
        flag_set = frozenset(f for f in flags if f != "\\Recent")

        def write(conn: sqlite3.Connection) -> tuple[MailEntry, list[Event]]:
            folder_id(conn, user, folder, create=(folder == "INBOX"), now=date)
            rowid, mid = insert_message(conn, raw, summary, Envelope("", (user,)), self.clock.now())
            uid = deliver_entry(conn, user, folder, rowid, rowid, flag_set, date)
            if SEEN in flag_set:
                conn.execute("UPDATE messages SET read = 1 WHERE rowid = ?", (rowid,))
            return MailEntry(uid, mid, flag_set, date, len(raw)), [MailboxChanged(user, folder)]

        result: MailEntry = self._write_sync(write)
        return result

    def store_flags(
        self, user: str, folder: str, uids: Iterable[int], flags: Iterable[str], mode: FlagMode
    ) -> list[MailEntry]:
        user, folder = normalize_user(user), canonical_folder(folder)
        wanted = {f for f in flags if f != "\\Recent"}
        uid_list = sorted(set(uids))

        def write(conn: sqlite3.Connection) -> tuple[list[MailEntry], list[Event]]:
            fid = folder_id(conn, user, folder, False)
            out: list[MailEntry] = []
            roots: list[int] = []
            for start in range(0, len(uid_list), 500):
                chunk = uid_list[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT e.uid, m.id, e.flags, e.internaldate, m.size, e.root FROM entries e"
                    f" JOIN messages m ON m.rowid = e.message WHERE e.folder_id = ? AND e.uid IN ({marks})"
                    f" AND {shown('e.root')} ORDER BY e.uid",
                    [fid, *chunk],
                ).fetchall()
                for uid, mid, fl, date, size, root in rows:
                    current = set(fl.split())
                    new = wanted if mode == "set" else current | wanted if mode == "add" else current - wanted
                    text = _flag_text(new)
                    if text != fl:
                        conn.execute("UPDATE entries SET flags = ? WHERE folder_id = ? AND uid = ?", (text, fid, uid))
                        roots.append(root)
                    out.append(MailEntry(uid, mid, frozenset(new), date, size))
            events: list[Event] = [MailboxChanged(user, folder)] if roots else []
            return out, [*events, *_sync_read(conn, roots)]

        result: list[MailEntry] = self._write_sync(write)
        return result

    def copy(self, user: str, folder: str, uids: Iterable[int], dest: str) -> list[tuple[int, int]]:
        user, folder, dest = normalize_user(user), canonical_folder(folder), canonical_folder(dest)
        uid_list = sorted(set(uids))
        now = self.clock.now()

        def write(conn: sqlite3.Connection) -> tuple[list[tuple[int, int]], list[Event]]:
            fid = folder_id(conn, user, folder, False)
            folder_id(conn, user, dest, False)
            pairs: list[tuple[int, int]] = []
            for uid in uid_list:
                row = conn.execute(
                    f"SELECT message, root, flags, internaldate FROM entries WHERE folder_id = ? AND uid = ?"
                    f" AND {shown('root')}",
                    (fid, uid),
                ).fetchone()
                if row is None:
                    continue
                message, root, flags, date = row
                new_uid = deliver_entry(conn, user, dest, message, root, flags.split(), date or now)
                pairs.append((uid, new_uid))
            return pairs, [MailboxChanged(user, dest)] if pairs else []

        result: list[tuple[int, int]] = self._write_sync(write)
        return result

    def expunge(self, user: str, folder: str, uids: Iterable[int]) -> None:
        self._write_sync(self._expunge_fn(user, folder, uids))

    async def discard(self, user: str, folder: str, uids: Iterable[int]) -> None:
        await self._write(self._expunge_fn(user, folder, uids))

    def _expunge_fn(self, user: str, folder: str, uids: Iterable[int]) -> WriteFn:
        user, folder = normalize_user(user), canonical_folder(folder)
        uid_list = sorted(set(uids))

        def write(conn: sqlite3.Connection) -> tuple[None, list[Event]]:
            fid = folder_id(conn, user, folder, False)
            roots: set[int] = set()
            for start in range(0, len(uid_list), 500):
                chunk = uid_list[start : start + 500]
                marks = ",".join("?" * len(chunk))
                roots.update(
                    r[0]
                    for r in conn.execute(
                        f"SELECT root FROM entries WHERE folder_id = ? AND uid IN ({marks})", [fid, *chunk]
                    )
                )
                conn.execute(f"DELETE FROM entries WHERE folder_id = ? AND uid IN ({marks})", [fid, *chunk])
            if not roots:
                return None, []
            return None, [MailboxChanged(user, folder), *_drop_orphans(conn, roots), *_sync_read(conn, roots)]

        return write


def _drop_orphans(conn: sqlite3.Connection, roots: Iterable[int]) -> list[Event]:
    """A message in no folder and not waiting in the relay queue is gone for good (POP3 DELE, EXPUNGE)."""
    from mailsandbox.store.sqlite import delete_rows

    orphans = []
    for root in set(roots):
        row = conn.execute(
            "SELECT m.rowid FROM messages m WHERE m.rowid = ? AND NOT EXISTS (SELECT 1 FROM entries e"
            " WHERE e.root = m.rowid) AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.message = m.id)"
            f" AND {shown('m.rowid')}",  # a hidden one is the reaper's
            (root,),
        ).fetchone()
        if row:
            orphans.append(int(row[0]))
    if not orphans:
        return []
    return [e for e in delete_rows(conn, orphans) if isinstance(e, MessagesDeleted)]


__all__ = ["MailboxMixin", "NoSuchMessage", "canonical_folder", "deliver_entries", "deliver_entry", "folder_id"]
