"""Webhook: POST each new message's summary (Mailpit's payload) to --webhook-url.

Unlike Mailpit, which drops whatever its rate limit does not let through and forgets a failed request,
messages wait in a bounded queue and go out in arrival order; a failed POST is retried with a growing
delay, and only a full queue drops (the oldest first, counted and logged). Every result is counted for
/metrics and logged. The bus listener only appends to the queue, so capture never waits on a receiver;
the one sender task and its HTTP client share the loop, bounded by the queue and a request timeout.
Waits (the rate limit, --webhook-delay, retries) are on the sandbox clock, so advancing a ManualClock
ends them at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import httpx

from mailsandbox.clock import ManualClock
from mailsandbox.events import Event, EventBus, MessageStored
from mailsandbox.models import StoredMessage
from mailsandbox.servers._limits import RateLimitedLog

log = logging.getLogger("mailsandbox.webhook")

MAX_QUEUE = 1000  # summaries waiting to be sent; a few MB at most
TIMEOUT = 5.0  # seconds for one POST (Mailpit's too)
MAX_ANSWER = 64 * 1024  # bytes of a receiver's answer read (and discarded)
# Seconds before each retry of a failed POST; after the last one the message is given up (logged, counted).
BACKOFF = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 60.0, 120.0)

Summarize = Callable[[StoredMessage], Mapping[str, Any]]


def _user_agent() -> str:
    try:
        return f"Mailsandbox/{version('mailsandbox')}"
    except PackageNotFoundError:
        return "Mailsandbox"


@dataclass
class WebhookStats:
    """Plain counters, read by the /metrics collector at scrape time."""

    delivered: int = 0  # messages the receiver answered 2xx for
    failed_attempts: int = 0  # POSTs that failed (an error or a non-2xx status), retried or not
    retries: int = 0
    given_up: int = 0  # messages whose last retry failed too
    dropped: int = 0  # oldest messages pushed out of a full queue
    by_status: dict[str, int] = field(default_factory=dict)  # "200", "500", "error": attempts by outcome


class Webhook:
    """`limit`: requests per second (Mailpit's --webhook-limit; 0: no limit); `delay`: seconds a message
    waits before it is sent (Mailpit's --webhook-delay), so whatever reacts to it finds it complete."""

    def __init__(
        self,
        url: str,
        bus: EventBus,
        summarize: Summarize,
        clock: ManualClock,
        *,
        limit: int = 1,
        delay: float = 0.0,
        max_queue: int = MAX_QUEUE,
        backoff: Sequence[float] = BACKOFF,
        timeout: float = TIMEOUT,
    ) -> None:
        self.url = url
        self._bus = bus
        self._summarize = summarize
        self._clock = clock
        self.limit = limit
        self.delay = delay
        self.max_queue = max(1, max_queue)
        self._backoff = tuple(backoff)
        self._timeout = timeout
        self.stats = WebhookStats()
        self._queue: deque[tuple[float, bytes]] = deque()  # (stored at, by the clock; the JSON body)
        self._wake = asyncio.Event()
        self._next_send = 0.0  # clock time the rate limit lets the next request go
        self.sleeping_until: float | None = None  # clock time the sender waits for (tests watch it)
        self._epoch = 0  # moved by reset(): a wait begun before it ends
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._unwatch: Callable[[], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self._drops = RateLimitedLog(log, 10.0)

    @property
    def queued(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        """On the serving loop: the bus delivers MessageStored here, the sender runs here."""
        self._loop = asyncio.get_running_loop()
        headers = {"User-Agent": _user_agent(), "Content-Type": "application/json"}
        # One connection, kept alive: the requests go one at a time, in order.
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self._client = httpx.AsyncClient(headers=headers, timeout=self._timeout, limits=limits, follow_redirects=False)
        self._unsubscribe = self._bus.subscribe(self._on_event)
        self._unwatch = self._clock.watch(self._clock_moved)
        self._task = asyncio.create_task(self._run(), name="webhook")

    async def stop(self) -> None:
        for undo in (self._unsubscribe, self._unwatch):
            if undo is not None:
                undo()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._client is not None:
            await self._client.aclose()
        if self._queue:
            log.warning("webhook: stopping with %d messages not sent to %s", len(self._queue), self.url)

    def reset(self) -> None:
        """The sandbox's reset (on the loop): its messages are gone and its clock went back, so the
        waiting summaries are dropped and every wait (begun on the old clock) ends."""
        self._queue.clear()
        self._next_send = 0.0
        self._epoch += 1
        self._wake.set()

    def _clock_moved(self) -> None:  # from the thread that advanced the clock
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._wake.set)
            except RuntimeError:  # the loop closed meanwhile
                pass

    def _on_event(self, event: Event) -> None:
        if not isinstance(event, MessageStored) or event.remote:  # another frontend's: its webhook sends it
            return
        # Encoded now, while it is cheap and the message as stored; the sender only writes bytes.
        body = json.dumps(dict(self._summarize(event.message)), separators=(",", ":")).encode()
        self._queue.append((self._clock.now(), body))
        if len(self._queue) > self.max_queue:
            self._queue.popleft()
            self.stats.dropped += 1
            self._drops.warning(
                "full", "webhook: %d messages waiting for %s; dropped the oldest (%d dropped so far)",
                self.max_queue, self.url, self.stats.dropped,
            )  # fmt: skip
        self._wake.set()

    async def _sleep_until(self, when: float) -> None:
        """Wait until the clock reads `when` (an advance of a ManualClock wakes it at once)."""
        epoch = self._epoch
        while (left := when - self._clock.now()) > 0 and epoch == self._epoch:
            self.sleeping_until = when
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), left)
            except TimeoutError:
                pass
        self.sleeping_until = None

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            stored_at, body = self._queue[0]
            epoch = self._epoch
            if self.delay > 0:
                await self._sleep_until(stored_at + self.delay)
            for attempt in range(len(self._backoff) + 1):
                if attempt:
                    await self._sleep_until(self._clock.now() + self._backoff[attempt - 1])
                if self.limit > 0:
                    await self._sleep_until(self._next_send)
                    self._next_send = self._clock.now() + 1.0 / self.limit
                if not self._queue or self._queue[0][1] is not body or epoch != self._epoch:
                    break  # pushed out of a full queue (counted, logged) or reset while it waited
                self.stats.retries += attempt > 0
                if await self._post(body, attempt):
                    self.stats.delivered += 1
                    break
            else:
                self.stats.given_up += 1
                log.error("webhook: gave up on a message after %d attempts to %s", attempt + 1, self.url)
            if self._queue and self._queue[0][1] is body:
                self._queue.popleft()

    async def _post(self, body: bytes, attempt: int) -> bool:
        assert self._client is not None
        try:
            async with self._client.stream("POST", self.url, content=body) as response:
                status = response.status_code
                # Read to its end so the connection is kept (twice the POSTs a second), but never buffered,
                # and no more than MAX_ANSWER: past that the connection is dropped instead.
                seen = 0
                async for chunk in response.aiter_raw():
                    seen += len(chunk)
                    if seen > MAX_ANSWER:
                        break
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            outcome, why = "error", f"{type(exc).__name__} {exc}".strip()
        else:
            outcome, why = str(status), f"status {status}"
            if 200 <= status < 300:
                self.stats.by_status[outcome] = self.stats.by_status.get(outcome, 0) + 1
                log.info("webhook: sent a message to %s (%s)", self.url, why)
                return True
        self.stats.by_status[outcome] = self.stats.by_status.get(outcome, 0) + 1
        self.stats.failed_attempts += 1
        retry = "retrying" if attempt < len(self._backoff) else "giving up"
        self._drops.warning("fail", "webhook: POST %s failed (%s), attempt %d; %s", self.url, why, attempt + 1, retry)
        return False
