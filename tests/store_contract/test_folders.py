"""More of the mailbox contract: renames (INBOX's and a parent's), copies that keep flags, read state kept
in step with \\Seen on every entry, and messages that go when their last entry does."""

from __future__ import annotations

import pytest

from mailsandbox.models import Envelope
from mailsandbox.store import FolderExists, NoSuchFolder, Store

USER = "ann@example.test"


def raw(n: int) -> bytes:
    return f"From: x@sender.test\r\nTo: {USER}\r\nSubject: m{n}\r\n\r\nbody {n}\r\n".encode()


async def deliver(store: Store, n: int) -> str:
    return (await store.add_message(raw(n), Envelope("x@sender.test", (USER,)))).id


@pytest.mark.asyncio
async def test_renaming_inbox_moves_its_mail_and_leaves_it_empty(store: Store) -> None:
    ids = [await deliver(store, n) for n in range(3)]
    store.expunge(USER, "INBOX", [1])  # the moved entries are numbered afresh from 1
    store.store_flags(USER, "INBOX", [3], ["\\Flagged"], "add")
    before = store.folder(USER, "INBOX")
    store.rename_folder(USER, "inbox", "Old Mail")
    moved = store.entries(USER, "Old Mail")
    assert [(e.uid, e.message_id, e.flags) for e in moved] == [
        (1, ids[1], frozenset()),
        (2, ids[2], frozenset({"\\Flagged"})),
    ]
    assert store.folder(USER, "Old Mail").uidnext == 3
    inbox = store.folder(USER, "INBOX")
    assert inbox.exists == 0 and inbox.uidvalidity == before.uidvalidity and inbox.uidnext == before.uidnext
    new = await deliver(store, 9)  # INBOX goes on from its own UIDNEXT: no UID is seen twice in it
    assert [(e.uid, e.message_id) for e in store.entries(USER, "INBOX")] == [(before.uidnext, new)]


@pytest.mark.asyncio
async def test_a_rename_takes_the_children_and_refuses_a_taken_name(store: Store) -> None:
    for name in ("Work", "Work/2023", "Work/2023/Q1", "Workshop", "Play"):
        store.create_folder(USER, name)
    store.rename_folder(USER, "Work", "Job")
    assert [f.name for f in store.folders(USER)] == ["INBOX", "Job", "Job/2023", "Job/2023/Q1", "Play", "Workshop"]
    with pytest.raises(FolderExists):
        store.rename_folder(USER, "Play", "Job")
    with pytest.raises(NoSuchFolder):
        store.rename_folder(USER, "Work", "Elsewhere")
    with pytest.raises(FolderExists):
        store.create_folder(USER, "Job/")  # a trailing hierarchy separator names the same folder
    with pytest.raises(NoSuchFolder):
        store.subscribe(USER, "Nowhere", True)


@pytest.mark.asyncio
async def test_folders_are_listed_bytewise_and_users_apart(store: Store) -> None:
    for name in ("b", "INBOX.x", "A", "a", "Zeta"):
        store.create_folder(USER, name)
    assert [f.name for f in store.folders(USER)] == ["A", "INBOX", "INBOX.x", "Zeta", "a", "b"]
    assert [f.name for f in store.folders("bob@example.test")] == ["INBOX"]
    assert store.folder(USER, "A").uidvalidity != store.folder("bob@example.test", "INBOX").uidvalidity
    with pytest.raises(NoSuchFolder):
        store.folder("bob@example.test", "A")


@pytest.mark.asyncio
async def test_a_copy_keeps_flags_and_date_and_shares_the_read_state(store: Store) -> None:
    mid = await deliver(store, 1)
    store.create_folder(USER, "Keep")
    store.store_flags(USER, "INBOX", [1], ["\\Flagged", "$Work"], "add")
    [source] = store.entries(USER, "INBOX")
    assert store.copy(USER, "INBOX", [1], "Keep") == [(1, 1)]
    [copied] = store.entries(USER, "Keep")
    assert (copied.message_id, copied.flags, copied.internaldate, copied.size) == (
        mid, source.flags, source.internaldate, source.size,
    )  # fmt: skip
    assert store.folder(USER, "Keep").unseen == 1
    store.store_flags(USER, "Keep", [1], ["\\Seen"], "add")  # \Seen on either entry: the message is read
    got = store.get(mid)
    assert got is not None and got.read and store.count() == (1, 0)
    assert store.folder(USER, "INBOX").unseen == 1  # flags are per entry
    assert await store.set_read([mid], False) == 1  # the UI clears \Seen on every entry
    assert all("\\Seen" not in e.flags for f in ("INBOX", "Keep") for e in store.entries(USER, f))
    assert await store.set_read([mid], True) == 1
    assert [e.flags for e in store.entries(USER, "INBOX")] == [frozenset({"\\Flagged", "$Work", "\\Seen"})]
    assert store.folder(USER, "Keep").unseen == 0
    with pytest.raises(NoSuchFolder):
        store.copy(USER, "INBOX", [1], "Nowhere")


@pytest.mark.asyncio
async def test_expunging_the_seen_entry_leaves_the_message_unread(store: Store) -> None:
    mid = await deliver(store, 1)
    store.create_folder(USER, "Keep")
    store.copy(USER, "INBOX", [1], "Keep")
    store.store_flags(USER, "Keep", [1], ["\\Seen"], "add")
    store.expunge(USER, "Keep", [1])
    got = store.get(mid)
    assert got is not None and not got.read  # its one entry left is not \Seen
    assert store.count() == (1, 1)


@pytest.mark.asyncio
async def test_a_message_goes_with_its_last_entry_and_a_deleted_folder_takes_its_own(store: Store) -> None:
    kept, only = await deliver(store, 1), await deliver(store, 2)
    store.create_folder(USER, "Box")
    store.copy(USER, "INBOX", [1, 2], "Box")
    store.expunge(USER, "INBOX", [2])  # `only` is still in Box
    assert store.get(only) is not None
    store.delete_folder(USER, "Box")  # its last entry: `only` goes; `kept` is in INBOX
    assert store.get(only) is None and store.get(kept) is not None
    assert store.count() == (1, 1)
    with pytest.raises(NoSuchFolder):
        store.delete_folder(USER, "Box")
    with pytest.raises(NoSuchFolder):
        store.expunge(USER, "Box", [1])


@pytest.mark.asyncio
async def test_a_queued_message_stays_when_its_last_entry_goes(store: Store) -> None:
    message = await store.add_message(
        raw(1), Envelope("x@sender.test", (USER, "far@remote.test")), deliver_to=[USER], queue=["far@remote.test"]
    )
    store.expunge(USER, "INBOX", [1])
    assert store.get(message.id) is not None  # the relay still owes it to far@remote.test
    assert [i.recipient for i in store.queue()] == ["far@remote.test"]


@pytest.mark.asyncio
async def test_append_of_a_seen_message_is_read_and_inbox_is_made_on_first_use(store: Store) -> None:
    entry = store.append("Bob@Example.TEST", "inbox", raw(1), ["\\Seen", "\\Recent"], internaldate=1_500_000_000.0)
    assert entry.flags == {"\\Seen"} and entry.uid == 1
    got = store.get(entry.message_id)
    assert got is not None and got.read
    assert [e.message_id for e in store.entries("bob@example.test", "INBOX")] == [entry.message_id]
    second = store.append("bob@example.test", "INBOX", raw(2))
    got = store.get(second.message_id)
    assert second.uid == 2 and second.flags == frozenset() and got is not None and not got.read
    assert store.count() == (2, 1)
