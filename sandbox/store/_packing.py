"""zstd for what the store keeps: raw messages, their chunks and the text the full-text index was given.

`zstandard` (python-zstandard) is the maintained binding of the reference C library, with manylinux
wheels; it releases the GIL while it works. Level 3 (zstd's default) packs a 2 KB message in ~10 us and
unpacks it in ~3 us. Contexts are not thread-safe, so each thread keeps its own.
"""

from __future__ import annotations

import json
import threading

import zstandard

LEVEL = 3
_local = threading.local()


def pack(data: bytes | memoryview) -> bytes:
    compressor: zstandard.ZstdCompressor | None = getattr(_local, "c", None)
    if compressor is None:
        compressor = _local.c = zstandard.ZstdCompressor(level=LEVEL)
    return compressor.compress(data)


def unpack(data: bytes) -> bytes:
    decompressor: zstandard.ZstdDecompressor | None = getattr(_local, "d", None)
    if decompressor is None:
        decompressor = _local.d = zstandard.ZstdDecompressor()
    return decompressor.decompress(data)


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
