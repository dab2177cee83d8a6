"""Outbox: the mail sent since a test began, with waits and assertions that explain their failures."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from mailsandbox.pytest_plugin.filters import MailFilter
from mailsandbox.pytest_plugin.message import CapturedMessage

if TYPE_CHECKING:
    from mailsandbox.pytest_plugin.handle import SandboxHandle

PAGE = 200  # messages per listing request
SHOWN = 20  # messages listed in a failure report
_FIRST_DELAY, _MAX_DELAY = 0.005, 0.1  # poll back-off: quick for local mail, gentle when it takes a while
T = TypeVar("T")


class MailAssertionError(AssertionError):
    """An outbox expectation failed; the message lists what did arrive and why each one missed."""


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


class Outbox:
    """Mail captured since this view was made (for the `outbox` fixture: since the test began).

    Oldest first. `len()`, iteration, indexing and `.messages` read the sandbox afresh;
    the waits poll it until their condition holds (never a fixed sleep).
    """

    def __init__(self, handle: SandboxHandle, *, mailbox: str | None = None, parent: Outbox | None = None) -> None:
        self._handle = handle
        self._mailbox = mailbox
        self._parent = parent
        self.timeout = handle.timeout
        self._hidden = 0
        # The listing is newest first, so a walk stops at the first id already here at the start.
        self._baseline: frozenset[str] = frozenset() if parent is not None else self._snapshot()

    # -- reading -------------------------------------------------------------------
    def _snapshot(self) -> frozenset[str]:
        page = self._handle.api.list_messages(0, PAGE, self._mailbox)
        return frozenset(str(m["ID"]) for m in page.get("messages") or () if "ID" in m)

    def _walk(self, mailbox: str | None, baseline: frozenset[str]) -> list[dict[str, Any]]:
        """Listing entries newer than the baseline, newest first."""
        found: list[dict[str, Any]] = []
        start = 0
        while True:
            items = self._handle.api.list_messages(start, PAGE, mailbox).get("messages") or []
            for item in items:
                if str(item.get("ID", "")) in baseline:
                    return found
                found.append(item)
            if len(items) < PAGE:
                return found
            start += len(items)

    def _collect(self) -> list[CapturedMessage]:
        if self._parent is not None:
            boxed = {str(item.get("ID")) for item in self._walk(self._mailbox, self._parent._baseline)}
            return [m for m in self._parent._collect() if m.id in boxed]
        entries = reversed(self._walk(None, self._baseline))
        found = [m for m in (self._handle.fetch(str(e.get("ID")), e) for e in entries) if m is not None]
        visible = [m for m in found if self._handle.owns(m)]
        self._hidden = len(found) - len(visible)
        return visible

    @property
    def messages(self) -> list[CapturedMessage]:
        """Every message in this outbox now, oldest first."""
        return self._collect()

    def __len__(self) -> int:
        return len(self._collect())

    def __iter__(self) -> Iterator[CapturedMessage]:
        return iter(self._collect())

    def __getitem__(self, index: int) -> CapturedMessage:
        return self._collect()[index]

    def __repr__(self) -> str:
        where = f" mailbox={self._mailbox}" if self._mailbox else ""
        return f"<Outbox{where} {[m.summary() for m in self._collect()]}>"

    def filter(self, **filters: Any) -> list[CapturedMessage]:
        """The messages here now that match every filter (no waiting)."""
        flt = MailFilter.from_kwargs(filters)
        return [m for m in self._collect() if flt.matches(m)]

    def mailbox(self, address: str) -> Outbox:
        """The part of this outbox delivered into one mailbox (relay deliveries, DSNs included)."""
        return Outbox(self._handle, mailbox=address, parent=self._parent or self)

    def clear(self) -> None:
        """Delete the messages of this outbox from the sandbox; the view then starts afresh."""
        ids = [m.id for m in self._collect()]
        if ids:
            self._handle.api.delete_messages(ids)
        if self._parent is None:
            self._baseline = self._snapshot()

    # -- waiting -------------------------------------------------------------------
    def _poll(self, condition: Callable[[list[CapturedMessage]], T | None], timeout: float) -> T | None:
        deadline = time.monotonic() + timeout
        delay = _FIRST_DELAY
        while True:
            result = condition(self._collect())
            remaining = deadline - time.monotonic()
            if result is not None or remaining <= 0:
                return result
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, _MAX_DELAY)

    async def _poll_async(self, condition: Callable[[list[CapturedMessage]], T | None], timeout: float) -> T | None:
        deadline = time.monotonic() + timeout
        delay = _FIRST_DELAY
        while True:
            # The HTTP calls run in a worker thread: the test's own loop keeps running (and sending).
            result = condition(await asyncio.to_thread(self._collect))
            remaining = deadline - time.monotonic()
            if result is not None or remaining <= 0:
                return result
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, _MAX_DELAY)

    @staticmethod
    def _at_least(flt: MailFilter, count: int) -> Callable[[list[CapturedMessage]], list[CapturedMessage] | None]:
        def condition(messages: list[CapturedMessage]) -> list[CapturedMessage] | None:
            matched = [m for m in messages if flt.matches(m)]
            return matched if len(matched) >= count else None

        return condition

    def _wait_failed(self, call: str, flt: MailFilter, count: int, timeout: float) -> MailAssertionError:
        wanted = "a matching message" if count == 1 else f"{count} matching messages"
        return self._fail(f"{call}: {wanted} did not arrive within {timeout:g}s.", flt)

    def wait(self, count: int = 1, timeout: float | None = None, **filters: Any) -> list[CapturedMessage]:
        """Wait until at least `count` messages match the filters; returns every match, oldest first.

        `outbox.wait(2, to="ann@example.test")`; fails after `timeout` seconds (default 5, ini
        `mailsandbox_timeout`) listing what did arrive.
        """
        __tracebackhide__ = True
        flt, limit = MailFilter.from_kwargs(filters), self.timeout if timeout is None else timeout
        result = self._poll(self._at_least(flt, count), limit)
        if result is None:
            raise self._wait_failed(f"outbox.wait({count}, {flt})", flt, count, limit)
        return result

    def wait_for(self, timeout: float | None = None, **filters: Any) -> CapturedMessage:
        """Wait for a message matching the filters and return it (the first, if several match).

        `msg = outbox.wait_for(to="ann@example.test", subject="Welcome")`
        """
        __tracebackhide__ = True
        flt, limit = MailFilter.from_kwargs(filters), self.timeout if timeout is None else timeout
        result = self._poll(self._at_least(flt, 1), limit)
        if result is None:
            raise self._wait_failed(f"outbox.wait_for({flt})", flt, 1, limit)
        return result[0]

    async def wait_async(self, count: int = 1, timeout: float | None = None, **filters: Any) -> list[CapturedMessage]:
        """`wait()` for async tests: `await outbox.wait_async(2, subject="Hi")`; the loop keeps running."""
        __tracebackhide__ = True
        flt, limit = MailFilter.from_kwargs(filters), self.timeout if timeout is None else timeout
        result = await self._poll_async(self._at_least(flt, count), limit)
        if result is None:
            raise self._wait_failed(f"outbox.wait_async({count}, {flt})", flt, count, limit)
        return result

    async def await_for(self, timeout: float | None = None, **filters: Any) -> CapturedMessage:
        """`wait_for()` for async tests: `msg = await outbox.await_for(to="ann@example.test")`."""
        __tracebackhide__ = True
        flt, limit = MailFilter.from_kwargs(filters), self.timeout if timeout is None else timeout
        result = await self._poll_async(self._at_least(flt, 1), limit)
        if result is None:
            raise self._wait_failed(f"outbox.await_for({flt})", flt, 1, limit)
        return result[0]

    wait_for_async = await_for

    # -- asserting -----------------------------------------------------------------
    def assert_sent(
        self, count: int | None = None, timeout: float | None = None, **filters: Any
    ) -> list[CapturedMessage]:
        """Assert mail matching the filters was sent: at least one, or exactly `count`.

        Waits up to `timeout` for the mail to arrive, since apps often send from a worker.
        Returns the matching messages.
        """
        __tracebackhide__ = True
        flt, limit = MailFilter.from_kwargs(filters), self.timeout if timeout is None else timeout
        result = self._poll(self._at_least(flt, count or 1), limit)
        call = f"outbox.assert_sent({'' if count is None else f'{count}, '}{flt})"
        if result is None:
            raise self._wait_failed(call, flt, count or 1, limit)
        if count is not None and len(result) != count:
            raise self._fail(f"{call}: expected {_plural(count, 'matching message')}, got {len(result)}.", flt)
        return result

    def assert_nothing_sent(self, **filters: Any) -> None:
        """Assert that no mail (matching the filters, if any) has been sent so far in this test."""
        __tracebackhide__ = True
        flt = MailFilter.from_kwargs(filters)
        matched = [m for m in self._collect() if flt.matches(m)]
        if matched:
            what = f"mail matching {flt}" if flt.items() else "mail"
            got = _plural(len(matched), "message")
            raise self._fail(
                f"outbox.assert_nothing_sent({flt}): expected no {what}, got {got}.",
                flt,
                show_mismatches=False,
            )

    # -- reporting -----------------------------------------------------------------
    def report(self, flt: MailFilter | None = None, *, show_mismatches: bool = True) -> str:
        """What arrived, one line a message, each followed by why it fails `flt`."""
        flt = flt or MailFilter()
        messages = self._collect()
        lines: list[str] = []
        if not messages:
            smtp = f"{self._handle.smtp_host}:{self._handle.smtp_port}"
            where = f" in mailbox {self._mailbox}" if self._mailbox else " during this test"
            lines.append(f"No mail arrived{where}. (The sandbox takes SMTP on {smtp}; is the code sending there?)")
        else:
            where = f"in mailbox {self._mailbox}" if self._mailbox else "during this test"
            lines.append(f"{_plural(len(messages), 'message')} arrived {where}:")
        for number, msg in enumerate(messages[:SHOWN], 1):
            mismatches = flt.mismatches(msg)
            verdict = "" if not flt.items() else ("  <- matches" if not mismatches else "")
            lines.append(f"  [{number}] {msg.summary()}{verdict}")
            if show_mismatches:
                lines.extend("        " + why for why in mismatches)
        if len(messages) > SHOWN:
            lines.append(f"  ... and {len(messages) - SHOWN} more")
        hidden = (self._parent or self)._hidden
        if hidden:
            lines.append(
                f"({_plural(hidden, 'message')} from other test sessions hidden: a shared sandbox shows"
                f" a session only mail sent as SMTP AUTH user {self._handle.smtp_username!r}"
                " or to addresses made by mail_sandbox.address(...).)"
            )
        return "\n".join(lines)

    def _fail(self, headline: str, flt: MailFilter, *, show_mismatches: bool = True) -> MailAssertionError:
        return MailAssertionError(headline + "\n" + self.report(flt, show_mismatches=show_mismatches))
