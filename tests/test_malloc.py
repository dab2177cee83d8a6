"""A freed buffer of a megabyte or more goes back to the system in the serving process (sandbox/malloc.py)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="the setting is glibc's"
)

_CHILD = """
import sys
if sys.argv[1] == "set":
    from mailsandbox import malloc
    assert malloc.map_large_buffers()

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


def test_a_freed_large_buffer_is_returned_to_the_system() -> None:
    assert _kept_mb("default") >= 15  # glibc's own behaviour, which the setting is for
    assert _kept_mb("set") <= 4
