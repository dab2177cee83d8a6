"""The relay queue contract: each outcome of an attempt is one transaction, and happens at most once."""

from __future__ import annotations

import asyncio

import pytest

from mailsandbox.models import Attempt, Envelope, StoredMessage
from mailsandbox.store import Store

RAW = b"From: a@sender.test\r\nTo: Bob@Example.TEST\r\nSubject: queued\r\n\r\nbody\r\n"
BOB = "Bob@Example.TEST"  # as the envelope spelt it; the mailbox is bob@example.test


async def queued(store: Store, *recipients: str) -> StoredMessage:
    return await store.add_message(RAW, Envelope("a@sender.test", recipients), deliver_to=[], queue=recipients)


def attempt(message: StoredMessage, recipient: str, code: int, at: float, hop: int = 0) -> Attempt:
    return Attempt(message.id, recipient, "mx1.example.test", 10, code, f"{code} reply", at, ("C: EHLO",), hop)


@pytest.mark.asyncio
async def test_queue_entry_is_committed_with_the_message_and_listed_when_due(store: Store) -> None:
    message = await queued(store, BOB, "carol@example.test")
    [first, second] = store.queue()
    assert {first.recipient, second.recipient} == {BOB, "carol@example.test"}
    assert first.message_id == message.id and first.attempts == 0 and not first.warned
    assert first.next_attempt == first.first_attempt == message.created
    assert len(store.due(message.created)) == 2
    assert store.due(message.created - 1) == []
    assert store.entries("bob@example.test", "INBOX") == []  # queued, not delivered


@pytest.mark.asyncio
async def test_a_delivery_records_its_attempts_fills_the_mailbox_and_dequeues_at_once(store: Store) -> None:
    message = await queued(store, BOB, "carol@example.test")
    hops = [attempt(message, BOB, 250, message.created, 0), attempt(message, BOB, 250, message.created, 1)]
    entry = await store.record_delivery(message.id, BOB, hops)
    assert entry is not None and entry.message_id == message.id and entry.uid == 1
    assert [e.message_id for e in store.entries("bob@example.test", "INBOX")] == [message.id]
    assert [i.recipient for i in store.queue()] == ["carol@example.test"]
    assert store.trace(message.id) == hops
    # Exactly once: the same outcome again (another pass, another frontend) writes nothing.
    assert await store.record_delivery(message.id, BOB, hops) is None
    assert len(store.entries("bob@example.test", "INBOX")) == 1
    assert store.trace(message.id) == hops


@pytest.mark.asyncio
async def test_a_delivered_copy_reads_as_prefix_original_suffix(store: Store) -> None:
    message = await queued(store, BOB)
    prefix, suffix = b"Received: from hop by mx1.example.test; now\r\n", b"-- footer\r\n"
    entry = await store.record_delivery(message.id, BOB, [], prefix, suffix)
    assert entry is not None and entry.message_id != message.id
    assert store.raw(entry.message_id) == prefix + RAW + suffix
    assert entry.size == len(prefix + RAW + suffix)
    assert store.entries("bob@example.test", "INBOX")[0].size == entry.size
    assert store.raw(message.id) == RAW
    assert [m.id for m in store.list().messages] == [message.id]  # copies are not listed
    assert [m.id for m in store.list(user="bob@example.test").messages] == [message.id]


@pytest.mark.asyncio
async def test_a_deferral_counts_the_try_and_reschedules(store: Store) -> None:
    message = await queued(store, BOB)
    tried = attempt(message, BOB, 451, message.created)
    later = message.created + 300
    assert await store.record_deferral(message.id, BOB, [tried], next_attempt=later, error="451 busy", warned=True)
    [item] = store.queue()
    assert (item.attempts, item.next_attempt, item.last_error, item.warned) == (1, later, "451 busy", True)
    assert item.first_attempt == message.created
    assert store.due(later - 1) == [] and store.due(later) == [item]
    assert store.trace(message.id) == [tried]


@pytest.mark.asyncio
async def test_a_removal_dequeues_once_and_an_unqueued_recipient_writes_nothing(store: Store) -> None:
    message = await queued(store, BOB)
    bounced = attempt(message, BOB, 550, message.created)
    assert await store.record_removal(message.id, BOB, [bounced])
    assert store.queue() == [] and store.trace(message.id) == [bounced]
    assert not await store.record_removal(message.id, BOB, [bounced])
    assert not await store.record_deferral(message.id, BOB, [bounced], next_attempt=0, error="", warned=False)
    assert await store.record_delivery(message.id, BOB, [bounced]) is None
    assert store.trace(message.id) == [bounced]
    assert store.entries("bob@example.test", "INBOX") == [] and store.queue() == []


@pytest.mark.asyncio
async def test_deleting_the_message_takes_its_queue_and_trace_with_it(store: Store) -> None:
    message = await queued(store, BOB)
    assert await store.record_deferral(message.id, BOB, [attempt(message, BOB, 451, 0)], next_attempt=0,
                                       error="451", warned=False)  # fmt: skip
    assert await store.delete([message.id]) == 1
    assert store.queue() == [] and store.trace(message.id) == []
    assert await store.record_delivery(message.id, BOB, []) is None
    assert store.entries("bob@example.test", "INBOX") == []


@pytest.mark.asyncio
async def test_concurrent_outcomes_for_one_recipient_land_once(store: Store) -> None:
    # Two passes (or two frontends) finishing the same recipient at once: exactly one wins.
    message = await queued(store, BOB)
    tried = attempt(message, BOB, 250, message.created)
    results = await asyncio.gather(
        store.record_delivery(message.id, BOB, [tried]),
        store.record_delivery(message.id, BOB, [tried], b"Received: by another pass\r\n"),
        store.record_removal(message.id, BOB, [tried]),
    )
    assert sum(r is not None and r is not False for r in results) == 1
    assert len(store.trace(message.id)) == 1 and store.queue() == []
    assert len(store.entries("bob@example.test", "INBOX")) == (0 if results[2] else 1)
