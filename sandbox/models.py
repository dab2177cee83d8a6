"""Plain data shared by every layer: envelopes, stored messages, mailbox entries, relay hops."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Address:
    name: str
    address: str


@dataclass(frozen=True)
class Envelope:
    """What the SMTP dialogue said, apart from the headers (RFC 5321 §3.3)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    peer: str = ""  # client "host:port"
    helo: str = ""
    tls: bool = False
    auth_user: str | None = None
    smtputf8: bool = False
    body_8bit: bool = False


@dataclass(frozen=True)
class Summary:
    """The parsed headline of a message, kept in the store for fast listing."""

    message_id: str
    from_: Address | None
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    bcc: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    subject: str
    date: float | None  # the Date header, epoch seconds
    size: int
    attachments: int
    snippet: str
    text: str  # full plain-text body, for the full-text index
    inline: int = 0  # parts shown inside the HTML (cid: images), not counted in `attachments`


@dataclass(frozen=True)
class StoredMessage:
    """One captured message as listed: public id, summary, envelope and state."""

    id: str  # public, URL-safe, stable
    created: float  # epoch seconds when the 250 was sent
    summary: Summary
    envelope: Envelope
    read: bool
    mailboxes: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class FolderInfo:
    """One IMAP folder of one user (mailbox address); INBOX always exists."""

    user: str
    name: str
    uidvalidity: int
    uidnext: int
    exists: int
    unseen: int
    subscribed: bool


@dataclass(frozen=True)
class MailEntry:
    """One message as it sits in one folder: the unit IMAP and POP3 see."""

    uid: int
    message_id: str  # StoredMessage.id
    flags: frozenset[str]
    internaldate: float
    size: int


@dataclass(frozen=True)
class Attempt:
    """One try at one hop of the relay: who was asked, what they answered, when."""

    message_id: str
    recipient: str
    host: str
    preference: int | None
    code: int
    reply: str
    at: float
    dialogue: tuple[str, ...] = field(default_factory=tuple)
    hop: int = 0
