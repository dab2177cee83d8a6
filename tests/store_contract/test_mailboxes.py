"""The mailbox contract (POP3, IMAP): folders, UIDs that never go back, flags shared with the listing."""

from __future__ import annotations

import pytest

from mailsandbox.models import Envelope
from mailsandbox.store import FolderExists, NoSuchFolder, Store, StoreError

USER = "ann@example.test"


def raw(n: int) -> bytes:
    return f"From: x@sender.test\r\nTo: {USER}\r\nSubject: m{n}\r\n\r\nbody {n}\r\n".encode()


async def deliver(store: Store, n: int) -> str:
    return (await store.add_message(raw(n), Envelope("x@sender.test", ("Ann@Example.TEST",)))).id


@pytest.mark.asyncio
async def test_inbox_exists_at_once_and_entries_come_in_uid_order(store: Store) -> None:
    assert [f.name for f in store.folders(USER)] == ["INBOX"]
    ids = [await deliver(store, n) for n in range(3)]
    inbox = store.folder(USER.upper(), "inbox")  # user and INBOX compare case-insensitively
    assert (inbox.exists, inbox.unseen, inbox.uidnext) == (3, 3, 4)
    entries = store.entries(USER, "INBOX")
    assert [(e.uid, e.message_id) for e in entries] == [(1, ids[0]), (2, ids[1]), (3, ids[2])]
    assert [e.size for e in entries] == [len(raw(n)) for n in range(3)]
    with pytest.raises(NoSuchFolder):
        store.entries(USER, "Nowhere")


@pytest.mark.asyncio
async def test_discard_removes_entries_uids_are_never_reused_and_orphans_go(store: Store) -> None:
    ids = [await deliver(store, n) for n in range(3)]
    await store.discard(USER, "INBOX", [2])  # POP3's UPDATE: durable when it returns
    assert [e.uid for e in store.entries(USER, "INBOX")] == [1, 3]
    assert store.get(ids[1]) is None  # in no folder and not queued: deleted
    new = await deliver(store, 9)
    assert store.entries(USER, "INBOX")[-1].uid == 4 and store.entries(USER, "INBOX")[-1].message_id == new
    store.expunge(USER, "INBOX", [1, 99])  # IMAP's blocking form; an unknown UID is no error
    assert [e.uid for e in store.entries(USER, "INBOX")] == [3, 4]


@pytest.mark.asyncio
async def test_flags_set_add_remove_and_seen_is_the_listing_read_state(store: Store) -> None:
    mid = await deliver(store, 1)
    [entry] = store.store_flags(USER, "INBOX", [1], ["\\Flagged", "\\Seen"], "add")
    assert entry.flags == {"\\Flagged", "\\Seen"}
    got = store.get(mid)
    assert got is not None and got.read and store.count() == (1, 0)
    [entry] = store.store_flags(USER, "INBOX", [1], ["\\Seen"], "remove")
    assert entry.flags == {"\\Flagged"}
    got = store.get(mid)
    assert got is not None and not got.read
    [entry] = store.store_flags(USER, "INBOX", [1], ["$Label"], "set")
    assert entry.flags == {"$Label"} and store.entries(USER, "INBOX")[0].flags == {"$Label"}
    assert await store.set_read([mid], True) == 1  # the UI's read state reaches the folder entry
    assert "\\Seen" in store.entries(USER, "INBOX")[0].flags


@pytest.mark.asyncio
async def test_folders_create_copy_rename_delete(store: Store) -> None:
    await deliver(store, 1)
    await deliver(store, 2)
    store.create_folder(USER, "Archive")
    with pytest.raises(FolderExists):
        store.create_folder(USER, "Archive")
    assert store.copy(USER, "INBOX", [1, 2, 7], "Archive") == [(1, 1), (2, 2)]
    assert store.folder(USER, "Archive").exists == 2
    store.rename_folder(USER, "Archive", "Old")
    assert [f.name for f in store.folders(USER)] == ["INBOX", "Old"]
    with pytest.raises(NoSuchFolder):
        store.folder(USER, "Archive")
    store.subscribe(USER, "Old", False)
    assert not store.folder(USER, "Old").subscribed
    store.delete_folder(USER, "Old")
    assert [f.name for f in store.folders(USER)] == ["INBOX"]
    with pytest.raises(StoreError):
        store.delete_folder(USER, "INBOX")
    assert len(store.entries(USER, "INBOX")) == 2  # the messages stay where else they are


@pytest.mark.asyncio
async def test_a_recreated_folder_gets_a_new_uidvalidity(store: Store) -> None:
    store.create_folder(USER, "A")
    first = store.folder(USER, "A").uidvalidity
    store.delete_folder(USER, "A")
    store.create_folder(USER, "A")
    assert store.folder(USER, "A").uidvalidity > first


@pytest.mark.asyncio
async def test_append_stores_straight_into_a_folder(store: Store) -> None:
    store.create_folder(USER, "Sent")
    entry = store.append(USER, "Sent", raw(5), ["\\Seen"], internaldate=1_600_000_000.0)
    assert (entry.uid, entry.flags, entry.internaldate, entry.size) == (
        1,
        frozenset({"\\Seen"}),
        1_600_000_000.0,
        len(raw(5)),
    )
    assert store.raw(entry.message_id) == raw(5)
    with pytest.raises(NoSuchFolder):
        store.append(USER, "Nowhere", raw(6))
