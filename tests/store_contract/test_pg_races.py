"""PostgreSQL only: frontends that share a database race each other, and the store's transactions decide.

Each test holds "the other frontend's" transaction open on a connection of its own, at the point where it
has done its part and not committed, starts the store's write against it, checks that the write waits,
commits, and looks at what the write then did. (Two PostgresStores racing freely are tested at the end.)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import threading
import uuid
from collections.abc import Callable, Iterator

import psycopg  # the test extra has it
import pytest

from mailsandbox.clock import ManualClock
from mailsandbox.models import Attempt, Envelope, StoredMessage
from mailsandbox.store import FolderExists
from mailsandbox.store.postgres.store import PostgresStore
from tests.store_contract.pg import Cluster, postgresql  # noqa: F401  (the session's cluster)

USER = "ann@example.test"
FAR = "far@remote.test"
RAW = b"From: x@sender.test\r\nTo: ann@example.test\r\nSubject: race\r\n\r\nbody\r\n"
WAIT = 0.3  # long enough for a write that is not blocked to have finished


@pytest.fixture
def dsn(postgresql: Cluster) -> Iterator[str]:  # noqa: F811
    name = f"races_{uuid.uuid4().hex[:16]}"
    yield postgresql.create_database(name)
    postgresql.psql(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def stores(dsn: str) -> Iterator[list[PostgresStore]]:
    clock = ManualClock()
    made = [PostgresStore(dsn, clock=clock), PostgresStore(dsn, clock=clock)]
    try:
        yield made
    finally:
        for store in made:
            store.close()


def other(dsn: str) -> psycopg.Connection:
    """The other frontend's connection: its statements run in a transaction until commit()."""
    conn: psycopg.Connection = psycopg.connect(dsn)
    return conn


async def queued(store: PostgresStore) -> StoredMessage:
    return await store.add_message(RAW, Envelope("x@sender.test", (FAR,)), deliver_to=[], queue=[FAR])


def attempt(message: StoredMessage, code: int) -> Attempt:
    return Attempt(message.id, FAR, "mx1.example.test", 10, code, f"{code} reply", message.created)


@pytest.mark.asyncio
async def test_a_deferral_another_frontend_made_first_is_not_counted_again(
    stores: list[PostgresStore], dsn: str
) -> None:
    store = stores[0]
    message = await queued(store)
    with other(dsn) as conn:
        conn.execute(
            "UPDATE queue SET attempts = attempts + 1, next_attempt = %s WHERE message = %s",
            (message.created + 300, message.id),
        )
        deferral = store.record_deferral(
            message.id, FAR, [attempt(message, 451)], next_attempt=message.created + 300, error="451", warned=True
        )
        task = asyncio.create_task(deferral)
        await asyncio.sleep(WAIT)
        assert not task.done()  # waits on the row
        conn.commit()
    assert await task is False
    [item] = store.queue()
    assert (item.attempts, item.warned) == (1, False) and store.trace(message.id) == []


@pytest.mark.asyncio
async def test_a_recipient_another_frontend_took_is_not_delivered_again(stores: list[PostgresStore], dsn: str) -> None:
    store = stores[0]
    message = await queued(store)
    with other(dsn) as conn:
        conn.execute("DELETE FROM queue WHERE message = %s", (message.id,))
        task = asyncio.create_task(store.record_delivery(message.id, FAR, [attempt(message, 250)]))
        await asyncio.sleep(WAIT)
        assert not task.done()
        conn.commit()
    assert await task is None
    assert store.entries(FAR, "INBOX") == [] and store.trace(message.id) == []


@pytest.mark.asyncio
async def test_a_delivery_of_a_message_being_deleted_waits_and_writes_nothing(
    stores: list[PostgresStore], dsn: str
) -> None:
    store = stores[0]
    message = await queued(store)
    with other(dsn) as conn:
        conn.execute("DELETE FROM messages WHERE id = %s", (message.id,))
        conn.execute("DELETE FROM queue WHERE message = %s", (message.id,))
        task = asyncio.create_task(store.record_delivery(message.id, FAR, [attempt(message, 250)]))
        await asyncio.sleep(WAIT)
        assert not task.done()
        conn.commit()
    assert await task is None
    assert store.entries(FAR, "INBOX") == [] and store.trace(message.id) == []


@pytest.mark.asyncio
async def test_an_expunge_does_not_take_a_message_another_frontend_is_copying(
    stores: list[PostgresStore], dsn: str
) -> None:
    store = stores[0]
    mid = (await store.add_message(RAW, Envelope("x@sender.test", (USER,)))).id
    store.create_folder(USER, "Keep")
    with other(dsn) as conn:  # its COPY of INBOX 1 into Keep, not committed yet
        conn.execute(
            "INSERT INTO entries (folder_id, uid, message, root, flags, internaldate)"
            " SELECT k.id, 1, e.message, e.root, e.flags, e.internaldate FROM entries e"
            " JOIN folders i ON i.id = e.folder_id AND i.name = 'INBOX'"
            " JOIN folders k ON k.username = i.username AND k.name = 'Keep'"
        )
        done = threading.Event()

        def expunge() -> None:
            store.expunge(USER, "INBOX", [1])
            done.set()

        worker = threading.Thread(target=expunge)
        worker.start()
        assert not done.wait(WAIT)  # the expunge waits for the copy
        conn.commit()
    worker.join(10)
    assert done.is_set()
    assert store.get(mid) is not None  # still in Keep
    assert [e.message_id for e in store.entries(USER, "Keep")] == [mid] and store.entries(USER, "INBOX") == []


@pytest.mark.asyncio
async def test_a_message_committed_late_below_the_newest_is_still_unchecked(
    stores: list[PostgresStore], dsn: str
) -> None:
    store = stores[0]
    with other(dsn) as conn:  # another frontend's capture takes a rowid, and commits after a newer one
        row = conn.execute("SELECT nextval(pg_get_serial_sequence('messages', 'rowid'))").fetchone()
        assert row is not None
        newer = (await store.add_message(RAW, Envelope("x@sender.test", (USER,)))).id
        # its row, below the newer one, which has committed; it commits only after the sweeps below
        conn.execute(
            "INSERT INTO messages (rowid, id, created) OVERRIDING SYSTEM VALUE VALUES (%s, 'late', 0)", (row[0],)
        )
        assert store.unchecked_auth(10) == [newer]
        await store.save_auth(newer, {"spf": "pass"}, {})
        for _ in range(3):  # sweeps that find nothing while 'late' is not committed
            assert store.unchecked_auth(10) == []
        conn.commit()
    assert store.unchecked_auth(10) == ["late"]
    await store.save_auth("late", {}, {})
    for _ in range(3):
        assert store.unchecked_auth(10) == []
    last = (await store.add_message(RAW, Envelope("x@sender.test", (USER,)))).id
    assert store.unchecked_auth(10) == [last]


@pytest.mark.asyncio
async def test_two_frontends_racing_on_one_recipient_record_one_outcome(stores: list[PostgresStore]) -> None:
    a, b = stores
    for _ in range(10):
        message = await queued(a)
        tried = attempt(message, 451)
        later = message.created + 300
        deferred = await asyncio.gather(
            a.record_deferral(message.id, FAR, [tried], next_attempt=later, error="451", warned=False),
            b.record_deferral(message.id, FAR, [tried], next_attempt=later, error="451", warned=False),
        )
        assert sorted(deferred) == [False, True]
        [item] = [i for i in a.queue() if i.message_id == message.id]
        assert item.attempts == 1 and len(a.trace(message.id)) == 1
        await a.record_deferral(message.id, FAR, [], next_attempt=0, error="", warned=False)  # due again
        delivered = await asyncio.gather(
            a.record_delivery(message.id, FAR, [tried]), b.record_delivery(message.id, FAR, [tried], b"X-B: 1\r\n")
        )
        assert sum(entry is not None for entry in delivered) == 1
        assert len(a.trace(message.id)) == 2
    assert [e.uid for e in b.entries(FAR, "INBOX")] == list(range(1, 11)) and a.queue() == []


@pytest.mark.asyncio
async def test_two_frontends_setting_flags_and_making_folders_at_once_keep_both(stores: list[PostgresStore]) -> None:
    a, b = stores
    await a.add_message(RAW, Envelope("x@sender.test", (USER,)))
    errors: list[BaseException] = []

    def run(fn: Callable[[], object]) -> None:
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)

    for n in range(10):
        calls: list[Callable[[], object]] = [
            functools.partial(a.store_flags, USER, "INBOX", [1], [f"$A{n}"], "add"),
            functools.partial(b.store_flags, USER, "INBOX", [1], [f"$B{n}"], "add"),
            functools.partial(a.create_folder, USER, f"F{n}"),
            functools.partial(b.create_folder, USER, f"F{n}"),
        ]
        workers = [threading.Thread(target=run, args=(call,)) for call in calls]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(10)
    assert len(errors) == 10 and all(isinstance(e, FolderExists) for e in errors)  # one of each pair
    [entry] = a.entries(USER, "INBOX")
    assert entry.flags == {f"${side}{n}" for side in "AB" for n in range(10)}
    assert [f.name for f in b.folders(USER)] == ["F0", "F1", "F2", "F3", "F4", "F5", "F6", "F7", "F8", "F9", "INBOX"]


@pytest.mark.asyncio
async def test_due_hands_each_recipient_to_one_frontend_at_a_time(stores: list[PostgresStore]) -> None:
    a, b = stores
    recipients = [f"r{n}@remote.test" for n in range(20)]
    message = await a.add_message(RAW, Envelope("x@sender.test", tuple(recipients)), deliver_to=[], queue=recipients)
    now = a.clock.now()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        handed = list(pool.map(lambda store: store.due(now), [a, b]))
    mine, theirs = ({i.recipient for i in items} for items in handed)
    assert not mine & theirs and mine | theirs == set(recipients)
    assert a.due(now) == [] and b.due(now) == []  # all held by the passes that have them
    assert len(a.queue()) == 20  # listed as before
    [first, *_] = handed[0] or handed[1]
    assert await (a if handed[0] else b).record_deferral(message.id, first.recipient, [], next_attempt=now,
                                                         error="451", warned=False)  # fmt: skip
    assert [i.recipient for i in b.due(now)] == [first.recipient]  # a deferral gives its claim back
