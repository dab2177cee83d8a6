"""A freed buffer of a megabyte or more goes back to the system in the serving process (sandbox/heap.py)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

_GLIBC = pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="the setting is glibc's"
)

_CHILD = """
import sys
if sys.argv[1] == "set":
    from mailsandbox import heap
    assert heap.map_large_buffers()

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024

first = bytearray(30 << 20)
del first  # glibc raises its mmap threshold past a freed large block
before = rss_mb()
big = bytearray(20 << 20)  # a large message's buffer
pinned = bytearray(64)  # allocated after it: the heap cannot shrink back over it
del big
print(rss_mb() - before)
"""


def _kept_mb(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", _CHILD, mode], capture_output=True, text=True, timeout=60, check=True)
    return int(done.stdout)


@_GLIBC
def test_a_freed_large_buffer_is_returned_to_the_system() -> None:
    assert _kept_mb("default") >= 15  # glibc's own behaviour, which the setting is for
    assert _kept_mb("set") <= 4


_PARSE = """
import gc, sys
from mailsandbox import heap
from mailsandbox.web.preview import prepare
parts = "".join(
    f"--b\\r\\nContent-Type: application/octet-stream; name=p{i}.bin\\r\\n\\r\\n<b>{i}</b>\\r\\n" for i in range(8000)
)
raw = ("Subject: parts\\r\\nContent-Type: multipart/mixed; boundary=b\\r\\n\\r\\n" + parts + "--b--\\r\\n").encode()
if sys.argv[1] == "settled":
    heap.settle()
full = []
gc.callbacks.append(lambda phase, info: full.append(1) if phase == "start" and info["generation"] == 2 else None)
for _ in range(3):
    prepare(raw, "id", False, want_text=False)
print(len(full))
"""


def _full_collections(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", _PARSE, mode], capture_output=True, text=True, timeout=120, check=True)
    return int(done.stdout)


def test_a_large_parse_sets_off_no_full_collection_once_settled() -> None:
    # A full collection holds the interpreter lock for tens of milliseconds: every thread, the loop too, waits.
    assert _full_collections("default") >= 1  # CPython's own thresholds, which settle() is for
    assert _full_collections("settled") == 0
