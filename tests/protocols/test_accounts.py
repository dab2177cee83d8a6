"""Which mailbox a POP3/IMAP login opens (sandbox/protocols/accounts.py)."""

from __future__ import annotations

from collections.abc import Callable

from mailsandbox.protocols.accounts import Accounts


def _is(password: str) -> Callable[[str], bool]:
    return lambda secret: secret == password


def test_any_login_opens_the_mailbox_it_names_without_credentials() -> None:
    accounts = Accounts(None)
    assert accounts.login(" <Ann@X.test> ", _is("whatever")) == "ann@x.test"
    assert accounts.login("", _is("x")) is None


def test_accounts_open_their_own_or_their_allowed_mailboxes() -> None:
    accounts = Accounts({"Alice": "pw", "ops@x.test": "pw2"}, {"alice": ["*@team.example", "boss@x.test"]})
    login = accounts.login
    assert login("bob@team.example*alice", _is("pw")) == "bob@team.example"
    assert login("BOSS@x.test*ALICE", _is("pw")) == "boss@x.test"
    assert login("carol@other.example*alice", _is("pw")) is None
    assert login("alice", _is("pw")) is None  # its globs do not cover its own name
    assert login("bob@team.example*alice", _is("wrong")) is None
    assert login("ops@x.test", _is("pw2")) == "ops@x.test"  # no globs: its own only
    assert login("bob@team.example*ops@x.test", _is("pw2")) is None
    assert login("bob@team.example*eve", _is("pw")) is None
    assert login("*alice", _is("pw")) is None
