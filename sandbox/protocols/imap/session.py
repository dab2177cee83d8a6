"""Session state shared by the command mixins: who is logged in, what is selected, what the client knows."""

from __future__ import annotations

import enum
from collections.abc import Callable

from mailsandbox.protocols.imap.backend import Backend, MessageCache, RecentTracker
from mailsandbox.protocols.imap.mailbox import SelectedMailbox
from mailsandbox.protocols.imap.responses import NO, status

Reply = list[bytes]  # untagged lines first, the tagged completion last
Login = Callable[[str, str], "str | None"]  # (user name, password) -> mailbox owner, or None to refuse
ErrorLog = Callable[[str, BaseException], None]

SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
DELIMITER = "/"


class State(enum.Enum):
    """RFC 3501 §3."""

    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


def accept_any(user: str, password: str) -> str | None:
    """The sandbox default: every password opens the mailbox of the address given as user name."""
    return user.strip().strip("<>").lower() or None  # the same folding as sandbox.store.normalize_user


class Session:
    """Attributes and helpers every command handler uses."""

    def __init__(
        self,
        backend: Backend,
        *,
        login: Login = accept_any,
        cache: MessageCache | None = None,
        recent: RecentTracker | None = None,
        notified: bool = False,
        log: ErrorLog | None = None,
    ) -> None:
        self.backend = backend
        self._check_login = login
        self.cache = cache if cache is not None else MessageCache()
        self.recent_tracker = recent if recent is not None else RecentTracker()
        # With notified=False nobody tells us about other sessions' changes: re-read at every command.
        self._notified = notified
        self._log = log
        self.state = State.NOT_AUTHENTICATED
        self.user: str | None = None
        self.box: SelectedMailbox | None = None
        self._dirty = False

    def _owner(self) -> str:
        assert self.user is not None, "the state table admits this command only after login"
        return self.user

    def _selected(self) -> SelectedMailbox:
        assert self.box is not None, "the state table admits this command only in the selected state"
        return self.box

    def _report(self, what: str, exc: BaseException) -> None:
        if self._log is not None:
            self._log(what, exc)

    def _folder_names(self) -> dict[str, str]:
        """Existing folder names; keys upper-cased for INBOX only, since other names are case-sensitive."""
        names = {info.name: info.name for info in self.backend.folders(self._owner())}
        names["INBOX"] = "INBOX"  # RFC 3501 §5.1: INBOX always exists
        return names

    def _exists(self, name: str) -> bool:
        return name in self._folder_names()

    def refresh(self, expunge: bool) -> Reply:
        """Untagged news about the selected mailbox (RFC 3501 §7.3, §7.4)."""
        box = self.box
        if box is None:
            return []
        self._dirty = False
        try:
            current = self.backend.entries(box.user, box.name)
        except Exception as exc:  # a mailbox deleted under us: report nothing rather than fail the command
            self._report("refresh", exc)
            return []
        return box.refresh(current, expunge)

    def _no(self, tag: str, text: str, code: str | None = None) -> Reply:
        return [status(tag, NO, text, code)]
