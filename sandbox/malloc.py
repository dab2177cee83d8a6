"""The C allocator's settings for the serving process (glibc only; elsewhere nothing changes).

glibc serves a freed block of a megabyte or more from its heap the next time, and raises its mmap threshold
each time one is freed (up to 32 MiB), so after a few large messages their buffers stay in the process's
per-thread arenas: ten 20 MB messages at once peaked at 617 MB RSS, 544 MB with the threshold fixed at
1 MiB (bench/large_bench.py). A fixed threshold gives every buffer of a megabyte or more its own mapping,
returned to the system when it is freed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
LARGE = 1 << 20


def map_large_buffers() -> bool:
    """Ask glibc to map every allocation of LARGE bytes or more on its own; False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl (Alpine) has no mallopt
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, LARGE))
