"""Parsed IMAP commands (RFC 3501 §6): frozen dataclasses, one per argument shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mailsandbox.protocols.imap.fetch import Item
from mailsandbox.protocols.imap.grammar import SeqSet
from mailsandbox.protocols.imap.search import Key

StoreMode = Literal["set", "add", "remove"]


@dataclass(frozen=True)
class Command:
    tag: str
    name: str  # upper case; UID variants are "UID FETCH" and so on


@dataclass(frozen=True)
class Bare(Command):
    """A command without arguments: CAPABILITY, NOOP, LOGOUT, STARTTLS, CHECK, CLOSE, EXPUNGE, IDLE, ..."""


@dataclass(frozen=True)
class Login(Command):
    user: str
    password: str


@dataclass(frozen=True)
class Authenticate(Command):
    mechanism: str
    initial: bytes | None  # SASL-IR (RFC 4959), already base64-decoded


@dataclass(frozen=True)
class MailboxCommand(Command):
    """SELECT, EXAMINE, CREATE, DELETE, SUBSCRIBE, UNSUBSCRIBE."""

    mailbox: str


@dataclass(frozen=True)
class Rename(Command):
    old: str
    new: str


@dataclass(frozen=True)
class ListCommand(Command):
    """LIST and LSUB."""

    reference: str
    pattern: str


@dataclass(frozen=True)
class Status(Command):
    mailbox: str
    items: tuple[str, ...]


@dataclass(frozen=True)
class Append(Command):
    mailbox: str
    flags: tuple[str, ...]
    date: float | None
    message: bytes


@dataclass(frozen=True)
class Search(Command):
    charset: str | None
    key: Key
    uid: bool


@dataclass(frozen=True)
class Fetch(Command):
    numbers: SeqSet
    items: tuple[Item, ...]
    uid: bool


@dataclass(frozen=True)
class Store(Command):
    numbers: SeqSet
    mode: StoreMode
    silent: bool
    flags: tuple[str, ...]
    uid: bool


@dataclass(frozen=True)
class Copy(Command):
    """COPY and MOVE (RFC 6851), by sequence number or UID."""

    numbers: SeqSet
    mailbox: str
    uid: bool


@dataclass(frozen=True)
class UidExpunge(Command):
    numbers: SeqSet


@dataclass(frozen=True)
class Id(Command):
    params: tuple[tuple[str, str | None], ...] | None


@dataclass(frozen=True)
class Enable(Command):
    capabilities: tuple[str, ...]
