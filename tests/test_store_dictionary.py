"""Raw messages packed with zstd dictionaries trained on the store's own mail (store/_packing.RawPacker):
smaller rows, every row readable by a new process, dictionaries kept through a delete of everything."""

from __future__ import annotations

import hashlib
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zstandard

from mailsandbox.models import Envelope
from mailsandbox.store import _packing
from mailsandbox.store.sqlite import SqliteStore


def mail(count: int, seed: int) -> list[bytes]:
    """Messages like an application's: one template, varying names and words from a shared vocabulary."""
    rng = random.Random(seed)
    vocabulary = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(3, 9))) for _ in range(800)]
    out = []
    for n in range(count):
        words = " ".join(rng.choices(vocabulary, k=120))
        out.append(
            f"From: Shop <orders@shop.test>\r\nTo: Customer {n} <c{n}@example.test>\r\n"
            f"Subject: Your order {n} has shipped\r\nMessage-ID: <{n}.{seed}@shop.test>\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\nDear customer {n},\r\n\r\n{words}\r\n\r\n"
            "Thank you for shopping with us.\r\n".encode()
        )
    return out


def add(store: SqliteStore, raws: list[bytes]) -> list[str]:
    env = Envelope("orders@shop.test", ("c@example.test",))
    return [m.id for m in store.add_messages_sync((raw, env) for raw in raws) if m is not None]


def wait_trained(store: SqliteStore, count: int) -> None:
    deadline = time.monotonic() + 30
    while store.packer.trained < count:
        assert time.monotonic() < deadline, "no dictionary was trained"
        time.sleep(0.01)


def packed_sizes(path: str) -> dict[int, list[int]]:
    """Stored sizes of the raw rows, by the dictionary ID their frame names (0: none)."""
    conn = sqlite3.connect(path)
    try:
        out: dict[int, list[int]] = {}
        for (raw,) in conn.execute("SELECT raw FROM message_raw WHERE zstd = 1 AND chunks IS NULL"):
            out.setdefault(zstandard.get_frame_parameters(raw).dict_id, []).append(len(raw))
        return out
    finally:
        conn.close()


def digests_in_a_new_process(path: str, ids: list[str]) -> list[str]:
    """What another process, which has met no dictionary yet, reads back: through the store, then through
    the read-only export (`mailsandbox dump`'s reader)."""
    script = (
        "import sys, hashlib\n"
        "from mailsandbox.store.sqlite import SqliteStore\n"
        "from mailsandbox.store.export import read_only\n"
        "store = SqliteStore(sys.argv[1])\n"
        "print(' '.join(hashlib.sha256(store.raw(i)).hexdigest() for i in sys.argv[2:]))\n"
        "store.close()\n"
        "print(' '.join(hashlib.sha256(m.raw).hexdigest() for m in read_only(sys.argv[1])))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, path, *ids], capture_output=True, text=True, check=True)
    through_store, exported = done.stdout.splitlines()
    assert sorted(through_store.split()) == sorted(exported.split())
    return through_store.split()


def sha(raws: list[bytes]) -> list[str]:
    return [hashlib.sha256(r).hexdigest() for r in raws]


@pytest.fixture
def small_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_packing, "SAMPLE_MESSAGES", 300)
    monkeypatch.setattr(_packing, "RETRAIN_EVERY", 600)


@pytest.mark.usefixtures("small_samples")
def test_mail_after_the_first_sample_is_packed_smaller_and_reads_back(tmp_path: Path) -> None:
    path = str(tmp_path / "d.db")
    store = SqliteStore(path)
    first, later = mail(300, seed=1), mail(300, seed=2)
    ids = add(store, first)
    wait_trained(store, 1)
    ids += add(store, later)
    assert [store.raw(i) for i in ids] == first + later
    store.close()
    sizes = packed_sizes(path)
    assert sorted(sizes) == [0, next(k for k in sizes if k)] and len(sizes[0]) == 300
    plain = sum(sizes[0]) / len(sizes[0])
    with_dict = [len_ for k, v in sizes.items() if k for len_ in v]
    assert len(with_dict) == 300
    assert sum(with_dict) / len(with_dict) < 0.9 * plain, (plain, sum(with_dict) / len(with_dict))  # 0.82 here
    assert digests_in_a_new_process(path, ids) == sha(first + later)


@pytest.mark.usefixtures("small_samples")
def test_newer_mail_trains_another_dictionary_and_both_read_back(tmp_path: Path) -> None:
    path = str(tmp_path / "d.db")
    store = SqliteStore(path)
    raws = mail(300, seed=1)
    ids = add(store, raws)
    wait_trained(store, 1)
    more = mail(900, seed=3)  # 600 packed with the first dictionary, then a sample of 300 for the next
    ids += add(store, more)
    wait_trained(store, 2)
    last = mail(50, seed=4)
    ids += add(store, last)
    store.close()
    assert len([k for k in packed_sizes(path) if k]) == 2
    assert digests_in_a_new_process(path, ids) == sha(raws + more + last)


@pytest.mark.usefixtures("small_samples")
@pytest.mark.parametrize("set_aside", [False, True], ids=["truncated", "set aside"])
def test_a_delete_of_everything_keeps_the_dictionary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, set_aside: bool
) -> None:
    monkeypatch.setattr("mailsandbox.store.sqlite.TRUNCATE_BELOW", 0 if set_aside else 10**9)
    path = str(tmp_path / "d.db")
    store = SqliteStore(path)
    add(store, mail(300, seed=1))
    wait_trained(store, 1)
    asyncio_run_delete_all(store)
    after = mail(20, seed=5)
    ids = add(store, after)
    store.reaper.wait_idle()
    assert [store.raw(i) for i in ids] == after
    store.close()
    (dict_id,) = [k for k in packed_sizes(path) if k]
    assert digests_in_a_new_process(path, ids) == sha(after)
    assert sqlite3.connect(path).execute("SELECT count(*) FROM zstd_dicts WHERE id = ?", (dict_id,)).fetchone() == (1,)


def asyncio_run_delete_all(store: SqliteStore) -> None:
    import asyncio

    async def delete() -> None:
        await store.delete(None)

    asyncio.run(delete())


def test_large_messages_are_not_sampled(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(_packing, "SAMPLE_MESSAGES", 3)
    store = SqliteStore(str(tmp_path / "d.db"))
    big = b"Subject: big\r\n\r\n" + b"y" * (_packing.SAMPLE_LARGEST + 1) + b"\r\n"
    add(store, [big] * 5)
    assert store.packer._samples == [] and store.packer.trained == 0
    store.close()
