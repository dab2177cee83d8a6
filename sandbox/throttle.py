"""LoginThrottle: failed logins counted per client address, answered with a growing delay and then a cut-off.

Dovecot delays each failed authentication and Postfix's anvil disconnects a client over its error limit;
this does both, for every protocol at once (one counter per address across SMTP, POP3, IMAP and HTTP):
the first failure is answered at once (a typo), the next after `delay` seconds, doubling up to
`max_delay`; the `limit`-th disconnects, and the address is refused at connect until `forget_after`
seconds pass without a failure. No I/O and no timers: callers apply the verdict; time is injected.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("mailsandbox.auth")

MAX_DELAY = 15.0  # Dovecot's auth_failure_delay grows to the same ceiling
FORGET_AFTER = 600.0
MAX_CLIENTS = 10_000  # addresses remembered at once; the oldest are forgotten first


@dataclass(frozen=True)
class Verdict:
    """What to do after a failed login: answer after `delay` seconds; then hang up if `disconnect`."""

    delay: float
    disconnect: bool


@dataclass
class _Record:
    failures: int
    last: float


class LoginThrottle:
    """Thread-safe (IMAP checks logins on worker threads). `limit` 0 turns the cut-off off, `delay` 0
    the delay."""

    def __init__(
        self,
        limit: int = 10,
        delay: float = 1.0,
        *,
        max_delay: float = MAX_DELAY,
        forget_after: float = FORGET_AFTER,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        self.limit = limit
        self.delay = delay
        self.max_delay = max_delay
        self.forget_after = forget_after
        self._clock = clock
        self._max_clients = max_clients
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._lock = threading.Lock()

    def _current(self, client: str, now: float) -> _Record | None:
        record = self._records.get(client)
        if record is not None and now - record.last >= self.forget_after:
            del self._records[client]
            return None
        return record

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def failures(self, client: str) -> int:
        with self._lock:
            record = self._current(client, self._clock())
            return record.failures if record else 0

    def blocked(self, client: str) -> bool:
        """The address reached the limit recently: refuse it before it may try again."""
        return self.limit > 0 and self.failures(client) >= self.limit

    def failed(self, client: str, protocol: str) -> Verdict:
        """Count one failed login from `client` (an address, no port) and say how to answer it."""
        now = self._clock()
        with self._lock:
            record = self._current(client, now)
            if record is None:
                record = self._records[client] = _Record(0, now)
                while len(self._records) > self._max_clients:
                    self._records.popitem(last=False)
            record.failures += 1
            record.last = now
            self._records.move_to_end(client)
            failures = record.failures
        wait = 0.0 if failures == 1 or self.delay <= 0 else min(self.delay * 2 ** (failures - 2), self.max_delay)
        cut = self.limit > 0 and failures >= self.limit
        if cut and failures == self.limit:  # once per episode, not once per attempt
            log.warning(
                "%d failed logins from %s (the last over %s): disconnected, and refused for %.0f s",
                failures, client, protocol, self.forget_after,
            )  # fmt: skip
        return Verdict(wait, cut)
