"""AuthChecker: checks every captured message after its 250, on threads of its own, and keeps the results."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from sandbox.auth.checks import authenticate
from sandbox.events import Event, EventBus, MessageStored
from sandbox.executors import BoundedExecutor, ExecutorBusy
from sandbox.models import StoredMessage
from sandbox.store import AuthStore, NoSuchMessage
from sandbox.zone import Zone

log = logging.getLogger("mailsandbox.auth")
THREADS = 2
# Checks waiting or running at once; past that a message is checked when its results are first asked for.
MAX_PENDING = 256


class _Store(AuthStore, Protocol):
    def get(self, message_id: str) -> StoredMessage | None: ...
    def raw(self, message_id: str) -> bytes: ...


class AuthChecker:
    """Subscribes to MessageStored; `report()` answers from the store, checking on demand what is missing
    (a message that arrived while the checks were off or busy, or a relay's delivered copy)."""

    def __init__(self, store: _Store, zone: Zone, bus: EventBus, authserv_id: str, *, on_arrival: bool = True) -> None:
        self.store = store
        self.zone = zone
        self.bus = bus
        self.authserv_id = authserv_id
        self.on_arrival = on_arrival
        self._pool = BoundedExecutor("auth", THREADS, MAX_PENDING)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unsubscribe: Any = None
        self.checked = 0  # messages checked on arrival (tests and the benchmark wait on it)

    def start(self) -> None:
        """Call on the sandbox's loop: the bus runs the listener there."""
        if self.on_arrival:
            self._unsubscribe = self.bus.subscribe(self._on_event)

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._pool.shutdown()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, MessageStored):
            task = asyncio.get_running_loop().create_task(self._arrived(event.message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _arrived(self, message: StoredMessage) -> None:
        try:
            await self._check(message)
            self.checked += 1
        except ExecutorBusy:
            pass  # checked later, when someone asks for the results
        except NoSuchMessage:
            pass  # deleted before its turn
        except Exception:
            log.exception("checking the authentication of %s failed", message.id)

    def _compute(self, message: StoredMessage) -> dict[str, Any]:
        raw = self.store.raw(message.id)
        report = authenticate(self.zone, raw, message.envelope, self.authserv_id)
        return {"summary": report.summary(), "report": {**report.to_json(), "header": report.header_value()}}

    async def _check(self, message: StoredMessage) -> dict[str, Any]:
        done = await self._pool.run(self._compute, message)
        await self.store.save_auth(message.id, done["summary"], done["report"])
        report: dict[str, Any] = done["report"]
        return report

    async def report(self, message_id: str) -> dict[str, Any] | None:
        """The stored report (AuthReport.to_json()) of a message; None when there is no such message.
        Raises ExecutorBusy when it must be computed and the checks are saturated."""
        stored = await self._pool.run(self.store.auth_report, message_id)
        if stored is not None:
            return stored
        message = await self._pool.run(self.store.get, message_id)
        if message is None:
            return None
        try:
            return await self._check(message)
        except NoSuchMessage:
            return None
