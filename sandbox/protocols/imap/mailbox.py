"""The selected mailbox as one session sees it: sequence numbers, flags, \\Recent, and what changed since."""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from mailsandbox.mime.tree import Header, Message
from mailsandbox.models import MailEntry
from mailsandbox.protocols.imap.backend import Backend, MessageCache, RecentTracker
from mailsandbox.protocols.imap.grammar import SeqSet
from mailsandbox.protocols.imap.responses import flag_list, untagged


class View:
    """One message of the selected mailbox at one sequence number (a search.Candidate)."""

    __slots__ = ("_box", "entry", "seq")

    def __init__(self, box: SelectedMailbox, seq: int, entry: MailEntry) -> None:
        self._box = box
        self.seq = seq
        self.entry = entry

    @property
    def uid(self) -> int:
        return self.entry.uid

    @property
    def flags(self) -> frozenset[str]:
        return self.entry.flags

    @property
    def recent(self) -> bool:
        return self.entry.uid in self._box.recent

    @property
    def internaldate(self) -> float:
        return self.entry.internaldate

    @property
    def size(self) -> int:
        return self.entry.size

    def header(self) -> Header:
        return self._box.cache.header(self._box.backend, self.entry.message_id)

    def message(self) -> Message:
        return self._box.cache.message(self._box.backend, self.entry.message_id)


class SelectedMailbox:
    """The session's snapshot; it changes only when the session reports the change (RFC 3501 §5.2, §7.4.1)."""

    def __init__(
        self,
        backend: Backend,
        cache: MessageCache,
        recent_tracker: RecentTracker,
        user: str,
        name: str,
        readonly: bool,
        uidvalidity: int,
        entries: list[MailEntry],
    ) -> None:
        self.backend = backend
        self.cache = cache
        self.tracker = recent_tracker
        self.user = user
        self.name = name
        self.readonly = readonly
        self.uidvalidity = uidvalidity
        self.uids = [entry.uid for entry in entries]
        self.entries = {entry.uid: entry for entry in entries}
        self.message_ids = {entry.message_id for entry in entries}
        if readonly:  # EXAMINE peeks at \Recent without taking it from other sessions
            self.recent: set[int] = self.tracker.unclaimed(user, name, uidvalidity, self.uids)
        else:
            self.recent = self.tracker.claim(user, name, uidvalidity, self.uids)
        self.gone: set[int] = set()  # expunged by someone else, not yet reported to this client

    @property
    def exists(self) -> int:
        return len(self.uids)

    def seq_of(self, uid: int) -> int:
        return bisect.bisect_left(self.uids, uid) + 1

    def view(self, seq: int) -> View:
        return View(self, seq, self.entries[self.uids[seq - 1]])

    def views(self) -> list[View]:
        return [View(self, seq, self.entries[uid]) for seq, uid in enumerate(self.uids, start=1)]

    def select(self, numbers: SeqSet, uid: bool) -> list[View]:
        """The messages a sequence set names (RFC 3501 §9 sequence-set), in mailbox order.

        Raises IndexError for a message number that does not exist; UID sets simply skip missing UIDs.
        """
        if not self.uids:
            if uid or all(None in r for r in numbers.ranges):
                return []
            raise IndexError("the mailbox is empty")
        out: list[View] = []
        if uid:
            wanted = numbers.resolve(self.uids[-1])
            for low, high in _merge(wanted):
                start = bisect.bisect_left(self.uids, low)
                stop = bisect.bisect_right(self.uids, high)
                out.extend(self.view(seq) for seq in range(start + 1, stop + 1))
            return out
        for low, high in _merge(numbers.resolve(self.exists)):
            if high > self.exists:
                raise IndexError("no such message")
            out.extend(self.view(seq) for seq in range(low, high + 1))
        return out

    def unseen(self) -> int | None:
        """The first message without \\Seen, for the UNSEEN response code."""
        for seq, uid in enumerate(self.uids, start=1):
            if "\\Seen" not in self.entries[uid].flags:
                return seq
        return None

    def update(self, entries: Iterable[MailEntry]) -> None:
        """Take flags we changed ourselves, so the next refresh does not repeat them as news."""
        for entry in entries:
            if entry.uid in self.entries:
                self.entries[entry.uid] = entry

    def refresh(self, current: list[MailEntry], expunge: bool, with_uid: bool = True) -> list[bytes]:
        """Untagged EXPUNGE, EXISTS, RECENT and FETCH FLAGS bringing this session up to `current`.

        EXPUNGE may be withheld (`expunge=False`) while FETCH, STORE or SEARCH runs (RFC 3501 §7.4.1).
        """
        out: list[bytes] = []
        by_uid = {entry.uid: entry for entry in current}
        self.gone.update(uid for uid in self.uids if uid not in by_uid)
        if expunge and self.gone:
            # Highest first, so each reported number is still right after the previous removals.
            for uid in sorted(self.gone, reverse=True):
                seq = self.seq_of(uid)
                if seq <= len(self.uids) and self.uids[seq - 1] == uid:
                    del self.uids[seq - 1]
                    out.append(untagged(b"%d EXPUNGE" % seq))
                self.entries.pop(uid, None)
                self.recent.discard(uid)
            self.gone.clear()
            self.message_ids = {self.entries[uid].message_id for uid in self.uids}
        for seq, uid in enumerate(self.uids, start=1):
            entry = by_uid.get(uid)
            if entry is not None and entry.flags != self.entries[uid].flags:
                self.entries[uid] = entry
                flags = sorted(entry.flags) + (["\\Recent"] if uid in self.recent else [])
                uid_part = b"UID %d " % uid if with_uid else b""
                out.append(untagged(b"%d FETCH (%s" % (seq, uid_part) + b"FLAGS " + flag_list(flags) + b")"))
        highest = self.uids[-1] if self.uids else 0
        added = [entry for entry in current if entry.uid > highest]
        if added:
            for entry in added:
                self.uids.append(entry.uid)
                self.entries[entry.uid] = entry
                self.message_ids.add(entry.message_id)
            if not self.readonly:
                claimed = self.tracker.claim(self.user, self.name, self.uidvalidity, (e.uid for e in added))
                self.recent |= claimed
            out.append(untagged(b"%d EXISTS" % len(self.uids)))
            out.append(untagged(b"%d RECENT" % len(self.recent)))
        return out


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, non-overlapping ranges, so "1:3,2:4" lists each message once."""
    out: list[tuple[int, int]] = []
    for low, high in sorted(ranges):
        if out and low <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], high))
        else:
            out.append((low, high))
    return out
