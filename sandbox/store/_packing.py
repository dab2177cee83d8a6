"""zstd for what the store keeps: raw messages, their chunks and the text the full-text index was given.

`zstandard` (python-zstandard) is the maintained binding of the reference C library, with manylinux
wheels; it releases the GIL while it works. Level 3 (zstd's default) packs a 2 KB message in ~10 us and
unpacks it in ~3 us. Contexts are not thread-safe, so each thread keeps its own.

A 2 KB message alone gives zstd too little to learn from (about 990 of its bytes stay), so raw messages
are packed with a dictionary trained on the store's own recent mail (`RawPacker`: about 600 bytes; mail
from one application's templates does better still). Every frame names its dictionary by zstd's
dictionary ID, and table zstd_dicts keeps each dictionary a row was packed with: any row reads back.
"""

from __future__ import annotations

import json
import logging
import random
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import zstandard

LEVEL = 3
_local = threading.local()
log = logging.getLogger("mailsandbox.store")
# A dictionary's size and what it is trained on: the next SAMPLE_MESSAGES small messages (at most
# SAMPLE_BYTES in all; larger messages are not sampled and gain little from one), once a store has none,
# and again after every RETRAIN_EVERY messages packed, on newer mail.
DICT_BYTES = 64 * 1024
SAMPLE_MESSAGES, SAMPLE_BYTES, SAMPLE_LARGEST = 1000, 4 * 1024 * 1024, 64 * 1024
RETRAIN_EVERY = 50_000
# Every dictionary this process has read or trained, by its ID: a frame's ID picks one (IDs are random
# 31-bit numbers, drawn so that none is taken in its store; two stores in one process may share this).
_dicts: dict[int, zstandard.ZstdCompressionDict] = {}
_dicts_lock = threading.Lock()


def pack(data: bytes | memoryview) -> bytes:
    compressor: zstandard.ZstdCompressor | None = getattr(_local, "c", None)
    if compressor is None:
        compressor = _local.c = zstandard.ZstdCompressor(level=LEVEL)
    return compressor.compress(data)


def unpack(data: bytes, conn: sqlite3.Connection | None = None) -> bytes:
    """A zstd frame's bytes; a frame packed with a dictionary finds it by its ID (read from `conn`'s
    zstd_dicts the first time this process meets it)."""
    dict_id = zstandard.get_frame_parameters(data).dict_id
    decompressors: dict[int, zstandard.ZstdDecompressor] | None = getattr(_local, "d", None)
    if decompressors is None:
        decompressors = _local.d = {0: zstandard.ZstdDecompressor()}
    decompressor = decompressors.get(dict_id)
    if decompressor is None:
        decompressor = decompressors[dict_id] = zstandard.ZstdDecompressor(dict_data=_dictionary(dict_id, conn))
    return decompressor.decompress(data)


def _dictionary(dict_id: int, conn: sqlite3.Connection | None) -> zstandard.ZstdCompressionDict:
    with _dicts_lock:
        found = _dicts.get(dict_id)
    if found is not None:
        return found
    row = None if conn is None else conn.execute("SELECT data FROM zstd_dicts WHERE id = ?", (dict_id,)).fetchone()
    if row is None:
        raise ValueError(f"zstd dictionary {dict_id} is not in the store")
    return _remember(dict_id, bytes(row[0]))


def _remember(dict_id: int, data: bytes) -> zstandard.ZstdCompressionDict:
    dictionary = zstandard.ZstdCompressionDict(data)
    with _dicts_lock:
        return _dicts.setdefault(dict_id, dictionary)


class RawPacker:
    """A store's packing of raw messages (on its writer thread): with its newest dictionary, while it
    samples the mail that trains the next one on a thread of its own. `submit` is the store writer's: a
    new dictionary is committed before anything is packed with it."""

    def __init__(self, submit: Callable[[Callable[[sqlite3.Connection], tuple[Any, list[Any]]]], Future[Any]]):
        self._submit = submit
        self._compressor = zstandard.ZstdCompressor(level=LEVEL)  # swapped whole for a newer dictionary
        self._packed = 0  # messages packed since the newest dictionary was trained (or tried), or loaded
        self._sample_after = 0  # packed messages before the next sample starts: none while there is no dictionary
        self._samples: list[bytes | bytearray | memoryview] = []
        self._sampled = 0  # bytes in _samples
        self._training = False
        self.trained = 0  # dictionaries trained by this process (for tests and benchmarks)

    def load(self, conn: sqlite3.Connection) -> None:
        """Pack with the store's newest dictionary, if it has one."""
        row = conn.execute("SELECT id, data FROM zstd_dicts ORDER BY rowid DESC LIMIT 1").fetchone()
        if row is not None:
            self._use(_remember(int(row[0]), bytes(row[1])))
            self._packed, self._sample_after = 0, RETRAIN_EVERY

    def pack(self, raw: bytes) -> bytes:
        self._packed += 1
        if not self._training and self._packed >= self._sample_after:
            self._sample(raw)
        return self._compressor.compress(raw)

    def _sample(self, raw: bytes) -> None:
        if len(raw) <= SAMPLE_LARGEST:
            self._samples.append(raw)
            self._sampled += len(raw)
        if len(self._samples) >= SAMPLE_MESSAGES or self._sampled >= SAMPLE_BYTES:
            samples, self._samples, self._sampled = self._samples, [], 0
            self._training = True
            threading.Thread(target=self._train, args=(samples,), name="store-zstd-dict", daemon=True).start()

    def _train(self, samples: list[bytes | bytearray | memoryview]) -> None:
        try:
            dict_id = random.randrange(1 << 15, 1 << 31)  # zstd reserves the IDs below 32,768
            dictionary = zstandard.train_dictionary(DICT_BYTES, list(samples), level=LEVEL, dict_id=dict_id)
            del samples
            data = dictionary.as_bytes()

            def record(conn: sqlite3.Connection) -> tuple[bool, list[Any]]:
                if conn.execute("SELECT 1 FROM zstd_dicts WHERE id = ?", (dict_id,)).fetchone():
                    return False, []  # the ID is taken: the next sample trains another
                conn.execute("INSERT INTO zstd_dicts (id, data) VALUES (?, ?)", (dict_id, data))
                return True, []

            if self._submit(record).result():
                self._use(_remember(dict_id, data))
                self.trained += 1
        except Exception as exc:  # too few or too alike samples, or the store closed meanwhile
            log.info("no zstd dictionary trained: %s", exc)
        finally:
            self._packed, self._sample_after = 0, RETRAIN_EVERY
            self._training = False

    def _use(self, dictionary: zstandard.ZstdCompressionDict) -> None:
        dictionary.precompute_compress(level=LEVEL)
        self._compressor = zstandard.ZstdCompressor(level=LEVEL, dict_data=dictionary)


def pack_text(columns: tuple[str, str, str, str], raw: bytes | None) -> bytes:
    """The four columns a message gave the full-text index, kept to take them out again. Packed with the
    message's own bytes as zstd's dictionary (`raw`, for a message kept in one row): the text is mostly a
    copy of the message, so this costs ~110 bytes for a 2 KB message where plain zstd needs ~750."""
    data = json.dumps(columns, ensure_ascii=False).encode()
    if raw is None:
        return b"p" + pack(data)
    compressor = zstandard.ZstdCompressor(level=LEVEL, dict_data=_raw_dict(raw))
    return b"d" + compressor.compress(data)


def unpack_text(stored: bytes | str, raw: bytes | None) -> list[str]:
    """A message_text value: packed JSON (with the message's bytes `raw` when it was packed against them),
    or plain JSON TEXT (rows that migration 9 copied)."""
    if isinstance(stored, str):
        text = stored
    elif stored[:1] == b"d":
        if raw is None:
            raise ValueError("index text packed against message bytes that are gone")
        text = zstandard.ZstdDecompressor(dict_data=_raw_dict(raw)).decompress(stored[1:]).decode()
    else:
        text = unpack(stored[1:]).decode()
    columns: list[str] = json.loads(text)
    return columns


def _raw_dict(raw: bytes) -> zstandard.ZstdCompressionDict:
    return zstandard.ZstdCompressionDict(raw, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
