"""Accounts: which mailbox a POP3 or IMAP login opens, and whether its password may open it.

Without credentials every login opens the mailbox it names (the sandbox default). With them, a login is
an account and its password; it opens its own mailbox (the account's name is an address), or, written
`mailbox*account` (Dovecot's master-user form), another mailbox, if one of the account's globs
allows it. A wrong password never opens anything.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping, Sequence

SEPARATOR = "*"  # Dovecot's auth_master_user_separator


def fold(name: str) -> str:
    # The store's normalize_user folding; protocols may not import the store.
    return name.strip().strip("<>").lower()


class Accounts:
    """`credentials`: account -> password (None: any login works); `access`: account -> mailbox globs
    (an account not listed may open only the mailbox of its own name)."""

    def __init__(
        self, credentials: Mapping[str, str] | None, access: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        self._secrets = None if credentials is None else {fold(k): v for k, v in credentials.items()}
        self._access = {fold(k): tuple(g.strip().lower() for g in v) for k, v in (access or {}).items()}

    @property
    def accept_any(self) -> bool:
        return self._secrets is None

    def may_open(self, account: str, mailbox: str) -> bool:
        globs = self._access.get(account)
        if globs is None:
            return mailbox == account
        return any(fnmatch.fnmatchcase(mailbox, glob) for glob in globs)

    def login(self, name: str, check: Callable[[str], bool]) -> str | None:
        """The mailbox `name` opens when `check(stored password)` holds, else None."""
        if self._secrets is None:
            return fold(name) or None
        mailbox, sep, account = name.rpartition(SEPARATOR)
        account, mailbox = fold(account), fold(mailbox) if sep else fold(account)
        secret = self._secrets.get(account)
        if not account or not mailbox or secret is None or not check(secret):
            return None
        return mailbox if self.may_open(account, mailbox) else None
