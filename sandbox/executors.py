"""Bounded thread pools, one per blocking subsystem (IMAP sessions, POP3 store calls, release), so a
subsystem stuck on a slow peer can use up its own threads and never another's (asyncio's default
executor is shared by everything that calls `asyncio.to_thread`)."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class ExecutorBusy(RuntimeError):
    """More calls are waiting than the executor admits; the caller answers "try again later"."""


class BoundedExecutor:
    """`workers` threads named mailsandbox-<name>; with `max_pending`, at most that many calls queued or
    running (more raise ExecutorBusy at once), else the callers' own limits bound the queue (one call at a
    time per connection, and connections are limited)."""

    def __init__(self, name: str, workers: int, max_pending: int = 0) -> None:
        self.name = name
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix=f"mailsandbox-{name}")
        self._slots = threading.BoundedSemaphore(max_pending) if max_pending > 0 else None

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        slots = self._slots
        if slots is not None and not slots.acquire(blocking=False):
            raise ExecutorBusy(f"too many {self.name} calls in progress")
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))
        finally:
            if slots is not None:
                slots.release()

    def shutdown(self) -> None:
        """Drop what has not started; running calls finish on their own (their sockets have timeouts)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
