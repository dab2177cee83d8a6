"""Selected-state commands (RFC 3501 §6.4, RFC 4315, RFC 6851): FETCH, STORE, SEARCH, COPY, MOVE, EXPUNGE."""

from __future__ import annotations

from collections.abc import Iterable

from mailsandbox.protocols.imap import commands as c
from mailsandbox.protocols.imap import responses as r
from mailsandbox.protocols.imap.fetch import Attr, Item, compile_items, sets_seen
from mailsandbox.protocols.imap.mailbox import View
from mailsandbox.protocols.imap.responses import BAD, OK, flag_list, status, untagged
from mailsandbox.protocols.imap.search import Scope, compile_key
from mailsandbox.protocols.imap.session import Reply, Session, State

_CHARSETS = ("US-ASCII", "UTF-8")


def uid_set(uids: Iterable[int]) -> str:
    """Compact uid-set for COPYUID (RFC 4315 §4): 1:3,7."""
    ordered = sorted(uids)
    runs: list[list[int]] = []
    for uid in ordered:
        if runs and uid == runs[-1][1] + 1:
            runs[-1][1] = uid
        else:
            runs.append([uid, uid])
    return ",".join(str(a) if a == b else f"{a}:{b}" for a, b in runs)


class MessageCommands(Session):
    def _views(self, cmd: c.Fetch | c.Store | c.Copy | c.UidExpunge, uid: bool) -> list[View] | None:
        try:
            return self._selected().select(cmd.numbers, uid)
        except IndexError:
            return None

    def _cmd_check(self, cmd: c.Command) -> Reply:
        return [status(cmd.tag, OK, "CHECK completed")]  # writes are durable already; news follows

    def _cmd_close(self, cmd: c.Command) -> Reply:
        box = self._selected()
        if not box.readonly:  # RFC 3501 §6.4.2: silently expunge \Deleted messages
            doomed = [e.uid for e in self.backend.entries(box.user, box.name) if "\\Deleted" in e.flags]
            if doomed:
                self.backend.expunge(box.user, box.name, doomed)
        self.box, self.state = None, State.AUTHENTICATED
        return [status(cmd.tag, OK, "CLOSE completed")]

    def _cmd_unselect(self, cmd: c.Command) -> Reply:
        self.box, self.state = None, State.AUTHENTICATED  # RFC 3691: CLOSE without the expunge
        return [status(cmd.tag, OK, "UNSELECT completed")]

    def _expunge(self, tag: str, name: str, only: set[int] | None) -> Reply:
        box = self._selected()
        if box.readonly:
            return self._no(tag, "Mailbox is read-only", r.READ_ONLY)
        known = set(box.uids)
        doomed = [
            e.uid
            for e in self.backend.entries(box.user, box.name)
            if "\\Deleted" in e.flags and e.uid in known and (only is None or e.uid in only)
        ]
        if doomed:
            self.backend.expunge(box.user, box.name, doomed)
        return [*self.refresh(expunge=True), status(tag, OK, f"{name} completed")]

    def _cmd_expunge(self, cmd: c.Command) -> Reply:
        return self._expunge(cmd.tag, cmd.name, None)

    def _cmd_uid_expunge(self, cmd: c.UidExpunge) -> Reply:
        views = self._views(cmd, uid=True) or []
        return self._expunge(cmd.tag, cmd.name, {view.uid for view in views})

    def _cmd_search(self, cmd: c.Search) -> Reply:
        if cmd.charset is not None and cmd.charset not in _CHARSETS:
            return self._no(cmd.tag, "Unsupported charset", r.BADCHARSET)  # RFC 3501 §6.4.4
        box = self._selected()
        scope = Scope(largest_seq=box.exists, largest_uid=box.uids[-1] if box.uids else 0)
        test = compile_key(cmd.key, scope)
        found: list[int] = []
        for view in box.views():
            try:
                hit = test(view)
            except Exception as exc:  # a message deleted under us does not match
                self._report("search", exc)
                continue
            if hit:
                found.append(view.uid if cmd.uid else view.seq)
        line = b"SEARCH" + b"".join(b" %d" % number for number in found)
        return [untagged(line), status(cmd.tag, OK, f"{cmd.name} completed")]

    def _cmd_fetch(self, cmd: c.Fetch) -> Reply:
        views = self._views(cmd, cmd.uid)
        if views is None:
            return [status(cmd.tag, BAD, "Invalid message sequence number")]
        box = self._selected()
        items: tuple[Item, ...] = cmd.items
        if cmd.uid and Attr("UID") not in items:
            items = (Attr("UID"), *items)  # RFC 3501 §6.4.8: UID FETCH always reports the UID
        seen_now: set[int] = set()
        if not box.readonly and any(sets_seen(item) for item in items):
            unseen = [view.uid for view in views if "\\Seen" not in view.flags]
            if unseen:
                box.update(self.backend.store_flags(box.user, box.name, unseen, ["\\Seen"], "add"))
                seen_now = set(unseen)
        render = compile_items(items)
        render_with_flags = compile_items((*items, Attr("FLAGS"))) if Attr("FLAGS") not in items else render
        out: Reply = []
        for view in views:
            try:
                if view.uid in seen_now:
                    view = box.view(view.seq)  # pick up the \Seen just set, and report it
                    body = render_with_flags(view)
                else:
                    body = render(view)
            except Exception as exc:  # the message vanished from the store since we listed it
                self._report("fetch", exc)
                continue
            out.append(b"* %d FETCH (" % view.seq + body + b")\r\n")
        out.append(status(cmd.tag, OK, f"{cmd.name} completed"))
        return out

    def _cmd_store(self, cmd: c.Store) -> Reply:
        box = self._selected()
        if box.readonly:
            return self._no(cmd.tag, "Mailbox is read-only", r.READ_ONLY)
        views = self._views(cmd, cmd.uid)
        if views is None:
            return [status(cmd.tag, BAD, "Invalid message sequence number")]
        if views:
            uids = [view.uid for view in views]
            box.update(self.backend.store_flags(box.user, box.name, uids, cmd.flags, cmd.mode))
        out: Reply = []
        if not cmd.silent:  # RFC 3501 §6.4.6: the new flags, unless .SILENT
            for view in views:
                entry = box.entries[view.uid]
                flags = sorted(entry.flags) + (["\\Recent"] if view.uid in box.recent else [])
                uid_part = b"UID %d " % view.uid if cmd.uid else b""
                out.append(untagged(b"%d FETCH (%sFLAGS %s)" % (view.seq, uid_part, flag_list(flags))))
        out.append(status(cmd.tag, OK, f"{cmd.name} completed"))
        return out

    def _cmd_copy(self, cmd: c.Copy) -> Reply:
        box = self._selected()
        move = cmd.name.endswith("MOVE")
        if move and box.readonly:
            return self._no(cmd.tag, "Mailbox is read-only", r.READ_ONLY)
        views = self._views(cmd, cmd.uid)
        if views is None:
            return [status(cmd.tag, BAD, "Invalid message sequence number")]
        if not self._exists(cmd.mailbox):
            return self._no(cmd.tag, "No such mailbox", r.TRYCREATE)  # RFC 3501 §6.4.7
        if not views:
            return [status(cmd.tag, OK, f"{cmd.name} completed")]
        pairs = self.backend.copy(box.user, box.name, [view.uid for view in views], cmd.mailbox)
        validity = self.backend.folder(box.user, cmd.mailbox).uidvalidity
        code = f"COPYUID {validity} {uid_set(a for a, _ in pairs)} {uid_set(b for _, b in pairs)}"
        if cmd.mailbox == box.name:
            self._dirty = True
        if not move:
            return [status(cmd.tag, OK, f"{cmd.name} completed", code)]
        # RFC 6851 §4.3: COPYUID goes in an untagged OK before the EXPUNGE responses.
        self.backend.expunge(box.user, box.name, [view.uid for view in views])
        out = [status(None, OK, "Moved", code), *self.refresh(expunge=True)]
        out.append(status(cmd.tag, OK, f"{cmd.name} completed"))
        return out

    def _cmd_uid_copy(self, cmd: c.Copy) -> Reply:
        return self._cmd_copy(cmd)

    def _cmd_move(self, cmd: c.Copy) -> Reply:
        return self._cmd_copy(cmd)

    def _cmd_uid_move(self, cmd: c.Copy) -> Reply:
        return self._cmd_copy(cmd)

    def _cmd_uid_fetch(self, cmd: c.Fetch) -> Reply:
        return self._cmd_fetch(cmd)

    def _cmd_uid_search(self, cmd: c.Search) -> Reply:
        return self._cmd_search(cmd)

    def _cmd_uid_store(self, cmd: c.Store) -> Reply:
        return self._cmd_store(cmd)
