"""Time, injected: the relay queue and tests ask a Clock instead of the system."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class ManualClock:
    """Real time plus an offset that tests and the API advance; only reset() moves it back."""

    def __init__(self, base: Clock | None = None, offset: float = 0.0) -> None:
        self._base = base or SystemClock()
        self._offset = offset
        self._lock = threading.Lock()
        self._watchers: list[Callable[[], None]] = []

    def now(self) -> float:
        with self._lock:
            return self._base.now() + self._offset

    @property
    def offset(self) -> float:
        return self._offset

    def reset(self) -> None:
        """Back to real time: a test's skipped hours must not leak into the next test."""
        self.set_offset(0.0)

    def set_offset(self, offset: float) -> None:
        """Take another clock's offset (a frontend sharing the database advanced or reset it); watchers
        are told, as after an advance."""
        with self._lock:
            self._offset = offset
            watchers = list(self._watchers)
        for watcher in watchers:
            watcher()

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        with self._lock:
            self._offset += seconds
            watchers = list(self._watchers)
        for watcher in watchers:
            watcher()
        return self.now()

    def watch(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` (from the advancing thread) after each advance; returns the unwatch."""
        with self._lock:
            self._watchers.append(callback)

        def unwatch() -> None:
            with self._lock:
                if callback in self._watchers:
                    self._watchers.remove(callback)

        return unwatch
