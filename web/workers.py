"""Workers: the HTTP layer's own threads for blocking work (store reads, MIME parses, big JSON bodies).

A `BoundedExecutor` of its own, like IMAP's, POP3's and release's: not the loop's default executor and
not anyio's 40-thread limiter, so a burst of slow API requests cannot starve another subsystem. Searches may hold at
most all threads but one, so a slow query never locks out the listings and message reads the UI needs.
The queue in front of the threads is bounded by the HTTP listener's connection limit: each connection
has at most one request in progress.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from mailsandbox.executors import BoundedExecutor

P = ParamSpec("P")
T = TypeVar("T")

THREADS = 4


class Workers:
    def __init__(self, threads: int = THREADS, name: str = "http") -> None:
        self.threads = max(2, threads)
        self._pool = BoundedExecutor(name, self.threads)  # threads named mailsandbox-http_N
        self._heavy: asyncio.Semaphore | None = None  # made on first use, on the loop that serves

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)` on a worker thread."""
        return await self._pool.run(fn, *args, **kwargs)

    async def run_heavy(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Like `run`, for work that may take seconds (searches): one thread always stays for the rest."""
        if self._heavy is None:
            self._heavy = asyncio.Semaphore(self.threads - 1)
        async with self._heavy:
            return await self.run(fn, *args, **kwargs)

    def close(self) -> None:
        """Drop queued work; a running store read ends by itself (searches have a time budget)."""
        self._pool.shutdown()
