"""The authentication results contract (AuthStore): results kept with each message, the sweep's list of
what is still unchecked, and which copy of a message reached a mailbox."""

from __future__ import annotations

from typing import Any, cast

import pytest

from mailsandbox.models import Envelope
from mailsandbox.store import AuthStore, Store

RAW = b"From: a@sender.test\r\nTo: bob@example.test\r\nSubject: checked\r\n\r\nbody\r\n"
BOB = "bob@example.test"


def auth(store: Store) -> AuthStore:
    return cast(AuthStore, store)  # every backend implements both


async def capture(store: Store, n: int = 0) -> str:
    return (await store.add_message(RAW.replace(b"checked", b"checked %d" % n), Envelope("a@sender.test", (BOB,)))).id


@pytest.mark.asyncio
async def test_results_are_kept_replaced_and_gone_with_the_message(store: Store) -> None:
    mid = await capture(store)
    results = auth(store)
    assert results.auth_report(mid) is None
    report: dict[str, Any] = {"spf": {"result": "pass"}, "note": "é"}
    assert await results.save_auth(mid, {"spf": "pass", "dkim": "fail"}, report)
    assert results.auth_report(mid) == report
    assert await results.save_auth(mid, {"spf": "softfail"}, {"again": True})  # checked again: replaced
    assert results.auth_report(mid) == {"again": True}
    assert await store.delete([mid]) == 1
    assert not await results.save_auth(mid, {"spf": "pass"}, report)
    assert results.auth_report(mid) is None


@pytest.mark.asyncio
async def test_save_auths_counts_the_messages_that_still_exist(store: Store) -> None:
    ids = [await capture(store, n) for n in range(3)]
    await store.delete([ids[1]])
    items = [(mid, {"spf": "pass"}, {"n": n}) for n, mid in enumerate(ids)]
    assert await auth(store).save_auths(items) == 2
    assert auth(store).auth_report(ids[2]) == {"n": 2}
    assert await auth(store).save_auths([]) == 0


@pytest.mark.asyncio
async def test_unchecked_lists_originals_newest_first_and_picks_up_later_arrivals(store: Store) -> None:
    results = auth(store)
    assert results.unchecked_auth(10) == []
    ids = [await capture(store, n) for n in range(4)]
    assert results.unchecked_auth(10) == ids[::-1]
    assert results.unchecked_auth(2) == [ids[3], ids[2]]
    await results.save_auths([(mid, {"spf": "pass"}, {}) for mid in ids])
    for _ in range(3):  # the sweep finds nothing, several times over
        assert results.unchecked_auth(10) == []
    late = await capture(store, 9)
    assert results.unchecked_auth(10) == [late]
    await results.save_auth(late, {}, {})
    assert results.unchecked_auth(10) == []
    await store.delete(None)  # everything gone: what comes next is unchecked again
    again = await capture(store, 10)
    assert results.unchecked_auth(10) == [again]


@pytest.mark.asyncio
async def test_relay_copies_are_not_unchecked_and_delivered_copy_names_the_one_in_the_mailbox(store: Store) -> None:
    results = auth(store)
    direct = await capture(store)
    assert results.delivered_copy(direct, "Bob@Example.TEST") == direct
    assert results.delivered_copy(direct, "carol@example.test") is None
    queued = await store.add_message(RAW, Envelope("a@sender.test", ("far@remote.test",)), deliver_to=[],
                                     queue=["far@remote.test"])  # fmt: skip
    entry = await store.record_delivery(queued.id, "far@remote.test", [], b"Received: by mx1\r\n")
    assert entry is not None and entry.message_id != queued.id
    assert results.delivered_copy(queued.id, "far@remote.test") == entry.message_id
    assert sorted(results.unchecked_auth(10)) == sorted([direct, queued.id])  # the copy is not listed
