"""AuthChecker: checks every captured message after its 250, on threads of its own, and keeps the results."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Protocol

from mailsandbox.auth._lookup import CachedZone
from mailsandbox.auth.checks import authenticate
from mailsandbox.auth.results import ArcResult, AuthReport, DmarcResult, SpfResult
from mailsandbox.events import Event, EventBus, MessageStored
from mailsandbox.executors import BoundedExecutor
from mailsandbox.models import StoredMessage
from mailsandbox.store import AuthStore, NoSuchMessage, StoreClosed
from mailsandbox.zone import Zone

log = logging.getLogger("mailsandbox.auth")
BATCH = 64  # unchecked messages fetched per sweep query, newest first; their results are one write
MAX_ASKED = 64  # on-demand checks waiting or running at once (API requests); more are told to retry
# The checks are pure Python and share the GIL with capture: a check running while a session waits for the
# loop delays it. So the sweep runs in the quiet between arrivals (none for QUIET seconds), hands back
# as soon as one arrives, and waits at most MAX_DEFER for quiet; a check it runs while mail keeps
# arriving is followed by a pause of YIELD times its length.
QUIET = 0.01
MAX_DEFER = 0.5
YIELD = 4.0


class _Store(AuthStore, Protocol):
    def get(self, message_id: str) -> StoredMessage | None: ...
    def raw(self, message_id: str) -> bytes: ...


class AuthChecker:
    """Checks what arrives: a MessageStored wakes a sweep over the messages that have no results yet (so a
    burst leaves no queue in memory, and nothing is skipped); `report()` answers from the store, checking
    on demand what is still missing (while the sweep catches up, with checks off, or a relay's copy)."""

    def __init__(self, store: _Store, zone: Zone, bus: EventBus, authserv_id: str, *, on_arrival: bool = True) -> None:
        self.store = store
        self.zone = zone
        self.bus = bus
        self.authserv_id = authserv_id
        self.on_arrival = on_arrival
        self._cache = CachedZone(zone)
        # One thread each: the checks are pure Python and share the GIL with capture. The sweep's pool is
        # used by the sweep alone; a request for results never waits behind it.
        self._sweeping = BoundedExecutor("auth", 1)
        self._asked = BoundedExecutor("auth-asked", 1, MAX_ASKED)
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Any = None
        self._last_arrival = 0.0
        self.checked = 0  # messages the sweep checked (the benchmark reads it)

    def start(self) -> None:
        """Call on the sandbox's loop: the bus runs the listener there, and the sweep is a task of it."""
        if not self.on_arrival:
            return
        self._wake = asyncio.Event()
        self._wake.set()  # messages stored before this start (an older database) are checked too
        self._unsubscribe = self.bus.subscribe(self._on_event)
        self._task = asyncio.get_running_loop().create_task(self._sweep())

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._sweeping.shutdown()
        self._asked.shutdown()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, MessageStored) and not event.remote and self._wake is not None:
            self._last_arrival = time.monotonic()
            self._wake.set()

    def _busy(self) -> bool:
        return time.monotonic() - self._last_arrival < QUIET

    async def _quiet(self) -> None:
        """Until no message arrived for QUIET seconds, or MAX_DEFER passed."""
        deadline = time.monotonic() + MAX_DEFER
        while self._busy() and time.monotonic() < deadline:
            await asyncio.sleep(QUIET)

    async def _sweep(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                while ids := await self._sweeping.run(self.store.unchecked_auth, BATCH):
                    await self._quiet()
                    done = await self._sweeping.run(self._compute_some, ids)
                    await self.store.save_auths(done)
                    self.checked += len(done)
            except StoreClosed:
                return  # the sandbox is stopping: nothing left to check
            except Exception:
                log.exception("the authentication sweep failed; it runs again with the next message")

    def _compute_some(self, ids: list[str]) -> list[tuple[str, dict[str, str], dict[str, Any]]]:
        """Check messages in order until capture gets busy again (at least one: the sweep moves on)."""
        out: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        for message_id in ids:
            if out and self._busy():
                break
            began = time.monotonic()
            message = self.store.get(message_id)
            if message is None:
                continue
            try:
                done = self._compute(message)
            except NoSuchMessage:
                continue  # deleted meanwhile
            out.append((message.id, done["summary"], done["report"]))
            if self._busy():
                time.sleep((time.monotonic() - began) * YIELD)  # capture is busy: give it the interpreter
        return out

    def _compute(self, message: StoredMessage) -> dict[str, Any]:
        try:
            report = authenticate(self._cache, self.store.raw(message.id), message.envelope, self.authserv_id)
        except (NoSuchMessage, StoreClosed):
            raise
        except Exception as exc:  # a bug or a library's surprise: recorded, so the sweep does not retry it forever
            log.exception("checking the authentication of %s failed", message.id)
            why = f"the check failed: {type(exc).__name__}"
            report = AuthReport(
                self.authserv_id, SpfResult("temperror", reason=why), (), DmarcResult("temperror", reason=why),
                ArcResult("temperror", why),
            )  # fmt: skip
        return {"summary": report.summary(), "report": {**report.to_json(), "header": report.header_value()}}

    async def _check(self, message_id: str, pool: BoundedExecutor) -> dict[str, Any] | None:
        message = await pool.run(self.store.get, message_id)
        if message is None:
            return None
        try:
            done = await pool.run(self._compute, message)
        except NoSuchMessage:
            return None  # deleted meanwhile
        await self.store.save_auth(message.id, done["summary"], done["report"])
        report: dict[str, Any] = done["report"]
        return report

    async def report(self, message_id: str, mailbox: str | None = None) -> dict[str, Any] | None:
        """The stored report (AuthReport.to_json() plus "header") of a message ("latest" works), or of the
        copy `mailbox` received (after the relay's hops); None when there is no such message or copy.
        Raises ExecutorBusy when it must be computed and too many requests already wait."""
        message = await self._asked.run(self.store.get, message_id)
        if message is None:
            return None
        target = message.id
        if mailbox:
            copy = await self._asked.run(self.store.delivered_copy, message.id, mailbox)
            if copy is None:
                return None
            target = copy
        stored = await self._asked.run(self.store.auth_report, target)
        if stored is not None:
            return stored
        return await self._check(target, self._asked)
