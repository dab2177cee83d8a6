"""How the serving process keeps its memory: the C allocator's settings, and the garbage collector's.

glibc serves a freed block of a megabyte or more from its heap the next time, and raises its mmap threshold
each time one is freed (up to 32 MiB), so after a few large messages their buffers stay in the process's
per-thread arenas: ten 20 MB messages at once peaked at 617 MB RSS, 544 MB with the threshold fixed at
1 MiB (bench/large_bench.py). A fixed threshold gives every buffer of a megabyte or more its own mapping,
returned to the system when it is freed.

A full collection holds the interpreter lock while it walks every tracked object, so it stalls the event
loop whichever thread runs it. Parsing a message of 8,000 parts allocates enough survivors of the young
collections to set one off (27 ms in a small process, 40-50 ms in the server). What start-up built is
frozen out of collections, and young collections run every YOUNG allocations instead of 700: objects
of one request then die before they are promoted, and a full collection comes seldom (the same parse
then gave none, and took 88 ms instead of 129).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
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


YOUNG = 50_000  # allocations between young collections (CPython's default: 700)
THRESHOLDS = (YOUNG, 20, 20)


def settle() -> None:
    """After start-up: freeze what it built, and collect seldom (see the module docstring)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
