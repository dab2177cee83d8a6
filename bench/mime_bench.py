"""Reading a large message: sandbox.mime (the part tree over the raw bytes) against the stdlib's parser,
which the API used before, on the same 20 MB message in the same run.

    .venv/bin/python bench/mime_bench.py [megabytes]
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import os
import sys
import time
from collections.abc import Callable

from mailsandbox import mime


def build(size: int) -> bytes:
    payload = base64.encodebytes(os.urandom(size * 3 // 4)).replace(b"\n", b"\r\n")
    return (
        b"From: a@example.test\r\nTo: b@example.test\r\nSubject: big\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nReport.\r\n"
        b"--b\r\nContent-Type: application/octet-stream; name=big.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + payload
        + b"\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: fwd\r\n\r\nforwarded\r\n--b--\r\n"
    )


def best(fn: Callable[[], object], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def tree_view(raw: bytes) -> None:
    parsed = mime.parse(raw)
    for item in parsed.attachments:  # what GET /api/v1/message/{ID} computes: sizes and checksums
        hashlib.sha256(item.content()).hexdigest()


def stdlib_view(raw: bytes) -> None:
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    for part in message.walk():
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            hashlib.sha256(payload).hexdigest()


def main() -> None:
    megabytes = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    raw = build(megabytes * 1024 * 1024)
    tree = best(lambda: tree_view(raw))
    stdlib = best(lambda: stdlib_view(raw))
    summary = best(lambda: mime.summarize(raw))
    print(f"{len(raw) / 1e6:.1f} MB message, best of 5")
    print(f"  sandbox.mime parse + checksums: {tree * 1000:7.1f} ms")
    print(f"  stdlib parse + decode + sha256: {stdlib * 1000:7.1f} ms  ({stdlib / tree:.1f}x the tree)")
    print(f"  listing summary (fast scanner): {summary * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
