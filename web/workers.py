"""Workers: the HTTP layer's own threads for blocking work (store reads, MIME parses, big JSON bodies).

Not the loop's default executor (IMAP and release use that) and not anyio's 40-thread limiter: a few
named threads, so a burst of slow API requests cannot starve another subsystem. Searches may hold at
most all threads but one, so a slow query never locks out the listings and message reads the UI needs.
The queue in front of the threads is bounded by the HTTP listener's connection limit: each connection
has at most one request in progress.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

THREADS = 4


class Workers:
    def __init__(self, threads: int = THREADS, name: str = "mailsandbox-http") -> None:
        self.threads = max(2, threads)
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix=name)
        self._heavy: asyncio.Semaphore | None = None  # made on first use, on the loop that serves

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)` on a worker thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    async def run_heavy(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Like `run`, for work that may take seconds (searches): one thread always stays for the rest."""
        if self._heavy is None:
            self._heavy = asyncio.Semaphore(self.threads - 1)
        async with self._heavy:
            return await self.run(fn, *args, **kwargs)

    def close(self) -> None:
        """Drop queued work; a running store read ends by itself (searches have a time budget)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
