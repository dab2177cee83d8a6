"""Mailbox-level commands (RFC 3501 §6.3): SELECT, EXAMINE, CREATE, DELETE, RENAME, (UN)SUBSCRIBE,
LIST, LSUB, STATUS, APPEND."""

from __future__ import annotations

import re

from mailsandbox.protocols.imap import commands as c
from mailsandbox.protocols.imap import responses as r
from mailsandbox.protocols.imap.mailbox import SelectedMailbox
from mailsandbox.protocols.imap.responses import BAD, OK, flag_list, mailbox, status, untagged
from mailsandbox.protocols.imap.session import DELIMITER, SYSTEM_FLAGS, Reply, Session, State


def _pattern(pattern: str) -> re.Pattern[str]:
    """list-mailbox wildcards (RFC 3501 §6.3.8): "*" matches anything, "%" anything but the delimiter."""
    parts = (".*" if ch == "*" else "[^/]*" if ch == "%" else re.escape(ch) for ch in pattern)
    return re.compile("".join(parts), re.DOTALL)


def _valid_name(name: str) -> bool:
    # Wildcards in a name would make it unlistable by pattern (RFC 3501 §5.1 discourages them).
    parts = name.split(DELIMITER)
    return bool(name) and all(parts) and len(name) <= 1024 and "*" not in name and "%" not in name


class FolderCommands(Session):
    def _cmd_select(self, cmd: c.MailboxCommand) -> Reply:
        return self._open(cmd, readonly=False)

    def _cmd_examine(self, cmd: c.MailboxCommand) -> Reply:
        return self._open(cmd, readonly=True)

    def _open(self, cmd: c.MailboxCommand, readonly: bool) -> Reply:
        # RFC 3501 §6.3.1: a SELECT, even a failing one, first leaves the selected mailbox (no expunge).
        self.box = None
        self.state = State.AUTHENTICATED
        user = self._owner()
        if not self._exists(cmd.mailbox):
            return self._no(cmd.tag, "No such mailbox", r.NONEXISTENT)
        info = self.backend.folder(user, cmd.mailbox)
        entries = self.backend.entries(user, cmd.mailbox)
        box = SelectedMailbox(
            self.backend,
            self.cache,
            self.recent_tracker,
            user,
            cmd.mailbox,
            readonly,
            info.uidvalidity,
            entries,
        )
        self.box, self.state, self._dirty = box, State.SELECTED, False
        keywords = sorted({flag for entry in entries for flag in entry.flags if not flag.startswith("\\")})
        flags = [*SYSTEM_FLAGS, *keywords]
        permanent = "()" if readonly else f"({' '.join(flags)} \\*)"  # "\*": clients may make new keywords
        out = [
            untagged(b"FLAGS " + flag_list(flags)),
            status(None, OK, "Flags permitted", "PERMANENTFLAGS " + permanent),
            untagged(b"%d EXISTS" % box.exists),
            untagged(b"%d RECENT" % len(box.recent)),
        ]
        first_unseen = box.unseen()
        if first_unseen is not None:
            out.append(status(None, OK, "First unseen", f"UNSEEN {first_unseen}"))
        out.append(status(None, OK, "UIDs valid", f"UIDVALIDITY {info.uidvalidity}"))
        out.append(status(None, OK, "Predicted next UID", f"UIDNEXT {info.uidnext}"))
        out.append(status(cmd.tag, OK, f"{cmd.name} completed", r.READ_ONLY if readonly else r.READ_WRITE))
        return out

    def _cmd_create(self, cmd: c.MailboxCommand) -> Reply:
        name = cmd.mailbox.rstrip(DELIMITER)  # RFC 3501 §6.3.3: a trailing delimiter only declares intent
        if not _valid_name(name):
            return [status(cmd.tag, BAD, "Invalid mailbox name")]
        names = self._folder_names()
        if name in names or name.upper() == "INBOX":
            return self._no(cmd.tag, "Mailbox already exists", r.ALREADYEXISTS)
        parts = name.split(DELIMITER)
        for depth in range(1, len(parts)):  # superiors are created too, so LIST shows them selectable
            parent = DELIMITER.join(parts[:depth])
            if parent not in names and parent.upper() != "INBOX":
                self.backend.create_folder(self._owner(), parent)
                names[parent] = parent
        self.backend.create_folder(self._owner(), name)
        return [status(cmd.tag, OK, "CREATE completed")]

    def _cmd_delete(self, cmd: c.MailboxCommand) -> Reply:
        if cmd.mailbox == "INBOX":
            return self._no(cmd.tag, "INBOX cannot be deleted", r.CANNOT)  # RFC 3501 §6.3.4
        if not self._exists(cmd.mailbox):
            return self._no(cmd.tag, "No such mailbox", r.NONEXISTENT)
        self.backend.delete_folder(self._owner(), cmd.mailbox)
        self.recent_tracker.forget(self._owner(), cmd.mailbox)
        return [status(cmd.tag, OK, "DELETE completed")]

    def _cmd_rename(self, cmd: c.Rename) -> Reply:
        user = self._owner()
        names = self._folder_names()
        new = cmd.new.rstrip(DELIMITER)
        if cmd.old not in names:
            return self._no(cmd.tag, "No such mailbox", r.NONEXISTENT)
        if not _valid_name(new):
            return [status(cmd.tag, BAD, "Invalid mailbox name")]
        if new in names or new.upper() == "INBOX":
            return self._no(cmd.tag, "Mailbox already exists", r.ALREADYEXISTS)
        if cmd.old == "INBOX":
            # RFC 3501 §6.3.5: renaming INBOX moves its messages to the new name and leaves INBOX empty.
            self.backend.create_folder(user, new)
            uids = [entry.uid for entry in self.backend.entries(user, "INBOX")]
            if uids:
                self.backend.copy(user, "INBOX", uids, new)
                self.backend.expunge(user, "INBOX", uids)
            self._dirty = True
            return [status(cmd.tag, OK, "RENAME completed")]
        prefix = cmd.old + DELIMITER
        self.backend.rename_folder(user, cmd.old, new)
        # Inferior names follow their superior (RFC 3501 §6.3.5), whether or not the store moved them.
        for name in sorted(self._folder_names()):
            if name.startswith(prefix):
                self.backend.rename_folder(user, name, new + DELIMITER + name[len(prefix) :])
        self.recent_tracker.forget(user, cmd.old)
        if self.box is not None and (self.box.name == cmd.old or self.box.name.startswith(prefix)):
            self.box.name = new + self.box.name[len(cmd.old) :]
        return [status(cmd.tag, OK, "RENAME completed")]

    def _cmd_subscribe(self, cmd: c.MailboxCommand) -> Reply:
        if not self._exists(cmd.mailbox):
            return self._no(cmd.tag, "No such mailbox", r.NONEXISTENT)
        self.backend.subscribe(self._owner(), cmd.mailbox, True)
        return [status(cmd.tag, OK, "SUBSCRIBE completed")]

    def _cmd_unsubscribe(self, cmd: c.MailboxCommand) -> Reply:
        if self._exists(cmd.mailbox):
            self.backend.subscribe(self._owner(), cmd.mailbox, False)
        return [status(cmd.tag, OK, "UNSUBSCRIBE completed")]

    def _cmd_list(self, cmd: c.ListCommand) -> Reply:
        return self._list(cmd, subscribed_only=False)

    def _cmd_lsub(self, cmd: c.ListCommand) -> Reply:
        return self._list(cmd, subscribed_only=True)

    def _list(self, cmd: c.ListCommand, subscribed_only: bool) -> Reply:
        kind = cmd.name.encode("ascii")
        if not cmd.pattern and not subscribed_only:
            # RFC 3501 §6.3.8: an empty pattern asks for the delimiter and the reference's root.
            root = cmd.reference.split(DELIMITER, 1)[0] + DELIMITER if DELIMITER in cmd.reference else ""
            line = untagged(b'LIST (\\Noselect) "/" ' + mailbox(root))
            return [line, status(cmd.tag, OK, "LIST completed")]
        infos = self.backend.folders(self._owner())
        real = {info.name for info in infos} | {"INBOX"}
        listed = {info.name for info in infos if info.subscribed} if subscribed_only else set(real)
        ancestors = {
            DELIMITER.join(name.split(DELIMITER)[:depth])
            for name in listed
            for depth in range(1, name.count(DELIMITER) + 1)
        }
        everything = real | ancestors
        matcher = _pattern(cmd.reference + cmd.pattern)
        inbox_matcher = re.compile(matcher.pattern, re.IGNORECASE | re.DOTALL)  # INBOX is case-insensitive
        out: Reply = []
        shown = listed | (ancestors if cmd.pattern.endswith("%") or not subscribed_only else set())
        for name in sorted(shown):
            if not (inbox_matcher if name == "INBOX" else matcher).fullmatch(name):
                continue
            attributes = []
            if name not in listed or name not in real:
                attributes.append("\\Noselect")
            prefix = name + DELIMITER
            has_children = any(other.startswith(prefix) for other in everything)
            if not subscribed_only:
                attributes.append("\\HasChildren" if has_children else "\\HasNoChildren")  # RFC 3348
            out.append(untagged(kind + b" " + flag_list(attributes) + b' "/" ' + mailbox(name)))
        out.append(status(cmd.tag, OK, f"{cmd.name} completed"))
        return out

    def _cmd_status(self, cmd: c.Status) -> Reply:
        user = self._owner()
        if not self._exists(cmd.mailbox):
            return self._no(cmd.tag, "No such mailbox", r.NONEXISTENT)
        info = self.backend.folder(user, cmd.mailbox)
        values: list[bytes] = []
        for item in cmd.items:
            if item == "MESSAGES":
                value = info.exists
            elif item == "RECENT":
                uids = [entry.uid for entry in self.backend.entries(user, cmd.mailbox)]
                value = len(self.recent_tracker.unclaimed(user, cmd.mailbox, info.uidvalidity, uids))
            elif item == "UIDNEXT":
                value = info.uidnext
            elif item == "UIDVALIDITY":
                value = info.uidvalidity
            else:
                value = info.unseen
            values.append(b"%s %d" % (item.encode("ascii"), value))
        line = b"STATUS " + mailbox(cmd.mailbox) + b" (" + b" ".join(values) + b")"
        return [untagged(line), status(cmd.tag, OK, "STATUS completed")]

    def _cmd_append(self, cmd: c.Append) -> Reply:
        user = self._owner()
        if not self._exists(cmd.mailbox):
            return self._no(cmd.tag, "No such mailbox", r.TRYCREATE)  # RFC 3501 §6.3.11
        flags = [flag for flag in cmd.flags if flag != "\\Recent"]
        entry = self.backend.append(user, cmd.mailbox, cmd.message, flags, cmd.date)
        info = self.backend.folder(user, cmd.mailbox)
        if self.box is not None and self.box.name == cmd.mailbox:
            self._dirty = True
        code = f"APPENDUID {info.uidvalidity} {entry.uid}"  # RFC 4315 §3
        return [status(cmd.tag, OK, "APPEND completed", code)]
