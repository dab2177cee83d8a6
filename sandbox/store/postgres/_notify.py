"""Live events across frontends: what one frontend's writer committed reaches every other frontend on the
same database through LISTEN/NOTIFY, and is published on its bus as if it were local (the web stream, IMAP
IDLE, webhooks and metrics listen there).

A payload is JSON `{"o": origin, "e": [[kind, ...fields], ...]}`, under PostgreSQL's 8,000-byte limit: a
large event (a delete of 10,000 ids) is split over several. A stored message travels whole when it is small
(its listing fields), else as its id, and the listening frontend reads it back from the database.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import psycopg

from mailsandbox.events import (
    DeliveryAttempted,
    Event,
    MailboxChanged,
    MessagesDeleted,
    MessageStored,
    MessagesUpdated,
    TagRenamed,
)
from mailsandbox.models import Address, Envelope, StoredMessage, Summary
from mailsandbox.store import StoreUnavailable

CHANNEL = "mailsandbox_events"
MAX_PAYLOAD = 7000  # bytes of JSON per NOTIFY (PostgreSQL's limit is 8,000)
_IDS_PER_EVENT = 150  # ids of 22 characters: about 4 KB
_MESSAGE_BYTES = 3000  # a stored message travels whole up to this much JSON
log = logging.getLogger("mailsandbox.store")


def _pair(a: Address) -> list[str]:
    return [a.name, a.address]


def _message(m: StoredMessage) -> list[object]:
    """A stored message as it is listed (its body text left out: the index has it)."""
    s, e = m.summary, m.envelope
    people = [[_pair(a) for a in group] for group in (s.to, s.cc, s.bcc, s.reply_to)]
    return [m.id, m.created, s.message_id, None if s.from_ is None else _pair(s.from_), people, s.subject,
            s.date, s.size, s.attachments, s.snippet, s.inline,
            [e.mail_from, list(e.rcpt_tos), e.peer, e.helo, e.tls, e.auth_user, e.smtputf8, e.body_8bit],
            m.read, list(m.mailboxes), list(m.tags)]  # fmt: skip


def _unmessage(d: list[Any]) -> StoredMessage:
    (mid, created, message_id, sender, people, subject, date, size, attachments, snippet, inline, env, read,
     mailboxes, tags) = d  # fmt: skip
    to, cc, bcc, reply_to = (tuple(Address(n, a) for n, a in group) for group in people)
    summary = Summary(message_id, None if sender is None else Address(*sender), to, cc, bcc, reply_to, subject,
                      date, size, attachments, snippet, "", inline)  # fmt: skip
    envelope = Envelope(env[0], tuple(env[1]), env[2], env[3], env[4], env[5], env[6], env[7])
    return StoredMessage(mid, created, summary, envelope, read, tuple(mailboxes), tuple(tags))


def _encode(event: Event) -> Iterator[list[object]]:
    if isinstance(event, MessageStored):
        # The message itself when it is small (most are), so that no other frontend reads it back; else
        # its id alone, and they do.
        whole = _message(event.message)
        small = len(json.dumps(whole)) < _MESSAGE_BYTES
        yield ["stored", event.message.id, whole] if small else ["stored", event.message.id]
    elif isinstance(event, MessagesDeleted):
        if event.all:
            yield ["deleted", [], True]
        for start in range(0, len(event.ids), _IDS_PER_EVENT):
            yield ["deleted", list(event.ids[start : start + _IDS_PER_EVENT]), False]
    elif isinstance(event, MessagesUpdated):
        for start in range(0, max(1, len(event.ids)), _IDS_PER_EVENT):
            tags = None if event.tags is None else list(event.tags)
            yield ["updated", list(event.ids[start : start + _IDS_PER_EVENT]), event.read, tags]
    elif isinstance(event, TagRenamed):
        for start in range(0, max(1, len(event.ids)), _IDS_PER_EVENT):
            yield ["renamed", event.old, event.new, list(event.ids[start : start + _IDS_PER_EVENT])]
    elif isinstance(event, MailboxChanged):
        yield ["mailbox", event.user, event.folder]
    elif isinstance(event, DeliveryAttempted):
        yield ["attempt", event.message_id, event.recipient, event.host, event.code, event.status]


def payloads(origin: str, events: list[Event]) -> Iterator[str]:
    """The NOTIFY payloads that carry `events`, in order, each under MAX_PAYLOAD bytes."""
    head = len(json.dumps({"o": origin, "e": []}))
    batch: list[str] = []
    size = head
    for event in events:
        for item in _encode(event):
            text = json.dumps(item, ensure_ascii=False)
            if batch and size + len(text.encode()) + 1 > MAX_PAYLOAD:
                yield _payload(origin, batch)
                batch, size = [], head
            batch.append(text)
            size += len(text.encode()) + 1
    if batch:
        yield _payload(origin, batch)


def _payload(origin: str, items: list[str]) -> str:
    return '{"o": ' + json.dumps(origin) + ', "e": [' + ",".join(items) + "]}"


def clock_payload(origin: str, offset: float) -> str:
    """The payload that tells the other frontends the relay clock's new offset."""
    return json.dumps({"o": origin, "e": [], "clock": offset})


def decode(
    payload: str, origin: str, get: Callable[[str], StoredMessage | None],
    on_clock: Callable[[float], None] = lambda offset: None,
) -> list[Event]:  # fmt: skip
    """The events of a payload from another frontend ([] for this frontend's own, or one it cannot read);
    a clock payload goes to `on_clock`."""
    try:
        data = json.loads(payload)
        if data.get("o") == origin:
            return []
        if "clock" in data:
            on_clock(float(data["clock"]))
        return [event for item in data["e"] if (event := _decode(item, get)) is not None]
    except (ValueError, KeyError, TypeError, IndexError):
        log.warning("store: an event payload that cannot be read: %.200r", payload)
        return []


def _decode(item: list[object], get: Callable[[str], StoredMessage | None]) -> Event | None:
    kind = item[0]
    if kind == "stored":
        if len(item) > 2:
            return MessageStored(_unmessage(item[2]), remote=True)  # type: ignore[arg-type]
        message = get(str(item[1]))
        return None if message is None else MessageStored(message, remote=True)  # None: deleted meanwhile
    if kind == "deleted":
        return MessagesDeleted(tuple(map(str, item[1])), all=bool(item[2]))  # type: ignore[call-overload]
    if kind == "updated":
        tags = item[3]
        return MessagesUpdated(
            tuple(map(str, item[1])),  # type: ignore[call-overload]
            read=None if item[2] is None else bool(item[2]),
            tags=None if tags is None else tuple(map(str, tags)),  # type: ignore[call-overload]
        )
    if kind == "renamed":
        return TagRenamed(str(item[1]), str(item[2]), tuple(map(str, item[3])))  # type: ignore[call-overload]
    if kind == "mailbox":
        return MailboxChanged(str(item[1]), str(item[2]))
    if kind == "attempt":
        return DeliveryAttempted(str(item[1]), str(item[2]), str(item[3]), int(item[4]), str(item[5]))  # type: ignore[call-overload]
    return None


class Listener:
    """A thread that LISTENs on its own connection and publishes the other frontends' events here.
    It reconnects when the connection drops (a server restart): events sent meanwhile are lost, as a
    browser's WebSocket reconnect would lose them; the next list shows the store as it is."""

    def __init__(
        self, connect: Callable[[], psycopg.Connection], origin: str, get: Callable[[str], StoredMessage | None],
        publish: Callable[[Event], None], on_clock: Callable[[float], None] = lambda offset: None,
    ) -> None:  # fmt: skip
        self._connect = connect
        self._origin, self._get, self._publish, self._on_clock = origin, get, publish, on_clock
        self._stop = threading.Event()
        self._conn: psycopg.Connection | None = None
        self._listening = threading.Event()
        self._thread = threading.Thread(target=self._run, name="store-listener", daemon=True)
        self._thread.start()
        self._listening.wait(10)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with self._connect() as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._listening.set()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.25):
                            for event in decode(note.payload, self._origin, self._get, self._on_clock):
                                self._publish(event)
            except (psycopg.Error, StoreUnavailable) as exc:
                if self._stop.is_set():
                    return
                log.warning("store: event listener lost its connection (%s); reconnecting", exc)
                self._stop.wait(1.0)
