"""Retention: messages older than --max-age are deleted on the sandbox's clock, a few hundred per commit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from mailsandbox.clock import Clock
from mailsandbox.store import Store

log = logging.getLogger("mailsandbox.retention")

BATCH = 200  # rows per write request (~25 ms), each its own transaction: captures commit in between
INTERVAL = 60.0  # seconds between looks when nothing wakes it; the clock also moves in real time


class Retention:
    def __init__(self, store: Store, clock: Clock, max_age: float, batch: int = BATCH) -> None:
        self.store, self.clock, self.max_age, self.batch = store, clock, max_age, batch
        self.deleted = 0
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unwatch: Callable[[], None] | None = None

    async def prune(self) -> int:
        """Delete every message received more than max_age ago by the clock; returns how many went."""
        cutoff = self.clock.now() - self.max_age
        total = 0
        while True:
            n = await self.store.prune_before(cutoff, self.batch)
            total += n
            if n < self.batch:
                break
        if total:
            log.info("deleted %d message(s) older than %gs", total, self.max_age)
        self.deleted += total
        return total

    def kick(self) -> None:
        """Look now (the clock was moved); safe from any thread."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wakeup.set)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="mailsandbox-retention")
        watch = getattr(self.clock, "watch", None)  # a ManualClock: advancing it prunes at once
        self._unwatch = watch(self.kick) if watch is not None else None

    async def stop(self) -> None:
        if self._unwatch is not None:
            self._unwatch()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self.prune()
            except Exception:  # the store is closing, or a write failed: try again at the next look
                log.exception("pruning old messages failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), INTERVAL)
            self._wakeup.clear()
