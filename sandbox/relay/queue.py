"""The outbound queue: the relay's retry loop, run on the sandbox's Clock, with its state in the Store."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from mailsandbox.clock import ManualClock
from mailsandbox.events import DeliveryAttempted, EventBus
from mailsandbox.executors import BoundedExecutor
from mailsandbox.models import Attempt, Envelope, StoredMessage
from mailsandbox.relay.bounce import RecipientStatus, build_dsn, header_block
from mailsandbox.relay.faults import OK, Faults, HostBehaviour
from mailsandbox.relay.release import Releaser, ReleaseSettings
from mailsandbox.relay.route import MAX_HOPS, Delivery, Router, domain_of
from mailsandbox.relay.signing import apply_hops
from mailsandbox.store import NoSuchMessage, QueueItem, Store, normalize_user
from mailsandbox.zone import Zone

log = logging.getLogger("mailsandbox.relay")
_RECEIVED = re.compile(rb"^Received:", re.IGNORECASE | re.MULTILINE)
EXPIRED = "4.4.7"  # RFC 3463 X.4.7: delivery time expired (a transient error that persisted)
_Reports = dict[str, list[RecipientStatus]]  # message id -> recipients for one DSN
_MAX_IDLE_WAIT = 60.0  # the clock also moves in real time: look again at least this often
_CACHE_DOMAINS = 10_000  # routing decisions kept; a test minting a domain per message must not grow us


def _mapping(value: Mapping[str, Any] | str | None, what: str) -> Mapping[str, Any]:
    """Config tables arrive as mappings (TOML) or JSON text (an environment variable)."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} must be a table / JSON object")
    return value


class Relay:
    """Delivers what SMTP accepted for non-local domains through the simulated MX hosts.

    Catch-all recipients are delivered by the capture transaction itself (see `split`); the rest
    wait in the store's queue and are tried at once, then every `retry_interval` seconds of the
    clock; a delay warning goes out after `warn_after`, a bounce after `give_up_after` or a 5xx.
    """

    def __init__(
        self,
        store: Store,
        zone: Zone,
        clock: ManualClock,
        bus: EventBus,
        *,
        hosts: Mapping[str, Any] | str,
        hostname: str,
        retry_interval: float,
        warn_after: float,
        give_up_after: float,
        release: Mapping[str, Any] | str,
        max_hops: int = MAX_HOPS,
    ) -> None:
        self.store = store
        self.zone = zone
        self.clock = clock
        self.bus = bus
        self.hostname = hostname
        self.retry_interval = max(1.0, retry_interval)  # a zero interval would spin the loop
        self.warn_after = warn_after
        self.give_up_after = give_up_after
        self.releaser = Releaser(store, ReleaseSettings.from_config(_mapping(release, "release")))
        self.faults = Faults.from_config(_mapping(hosts, "hosts"))
        self._signing = BoundedExecutor("relay-sign", 1)  # DKIM/ARC work of signing hops, off the loop
        self._reads = BoundedExecutor("relay-read", 1)  # the queue's store reads, off the loop
        self.faults.configured = {name: self._with_keys(b) for name, b in self.faults.configured.items()}
        self.faults.reset()
        self.router = Router(zone, self.faults, hostname, max_hops)
        self._local: dict[str, bool] = {}
        self._local_version = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._stopping = False
        self._pass_lock = asyncio.Lock()

    # -- the SMTP handler's side -------------------------------------------------------------

    def split(self, rcpt_tos: Sequence[str]) -> tuple[list[str], list[str]]:
        """(recipients delivered locally now, in the capture transaction; recipients to queue)."""
        local: list[str] = []
        queued: list[str] = []
        for rcpt in rcpt_tos:
            (local if self.is_local_domain(domain_of(rcpt)) else queued).append(rcpt)
        return local, queued

    def is_local_domain(self, domain: str) -> bool:
        """Whether the zone makes this sandbox the domain's final destination (its best MX)."""
        version = self.zone.version  # moves on every zone edit, load, restore or mode change
        if version != self._local_version or len(self._local) >= _CACHE_DOMAINS:
            self._local.clear()
            self._local_version = version
        hit = self._local.get(domain)
        if hit is not None:
            return hit
        if not domain:
            return True  # "postmaster" and other bare local parts: ours (RFC 5321 §4.5.1)
        mx = self.zone.mx(domain)
        local = False
        if mx.hosts and not mx.null_mx:
            own = [pref for pref, host in mx.hosts if self.zone.is_local(host)]
            local = bool(own) and min(own) <= mx.hosts[0][0]  # RFC 5321 §5.1: we are the best MX
        self._local[domain] = local
        return local

    def zone_changed(self) -> None:
        """Forget cached routing decisions (Zone.version already covers edits made through the Zone)."""
        self._local.clear()
        self._local_version = -1

    def accepted(self, message: StoredMessage, queued: Sequence[str]) -> None:
        """Called on the loop once the message and its queue rows are committed (add_message's
        `queue=`, one transaction): try the queued recipients at once."""
        if queued:
            self.wake()

    async def submit(self, raw: bytes, envelope: Envelope) -> StoredMessage:
        """Inject a message as SMTP would (used for DSNs): local recipients now, the rest queued."""
        local, queued = self.split(envelope.rcpt_tos)
        message = await self.store.add_message(
            raw, envelope, deliver_to=local, received_at=self.clock.now(), queue=queued
        )
        self.accepted(message, queued)
        return message

    # -- the loop ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        self._pass_lock = asyncio.Lock()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._wakeup.set()  # resume whatever the store's queue holds that is due
        self._task = asyncio.create_task(self._run(), name="relay-queue")

    async def stop(self) -> None:
        await self.releaser.close()
        task, self._task = self._task, None
        if task is None:
            self._shutdown()
            return
        self._stopping = True
        self._wakeup.set()
        try:
            # Let a pass in progress finish its store writes, so no delivery is half-recorded.
            await asyncio.wait_for(asyncio.shield(task), 5.0)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._shutdown()

    def _shutdown(self) -> None:
        self._signing.shutdown()
        self._reads.shutdown()

    def wake(self) -> None:
        """Look at the queue now (after the clock moved, a retry request, a new message)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake_now()
        else:
            loop.call_soon_threadsafe(self._wake_now)

    def _wake_now(self) -> None:
        self._idle.clear()
        self._wakeup.set()

    async def settle(self, timeout: float = 10.0) -> None:
        """Wake the queue and return once a full pass found nothing more due."""
        if self._task is None:
            raise RuntimeError("the relay is not running")
        self._wake_now()
        await asyncio.wait_for(self._idle.wait(), timeout)

    @property
    def idle(self) -> bool:
        return self._idle.is_set()

    async def _run(self) -> None:
        while not self._stopping:
            self._wakeup.clear()
            pause = 0.0
            try:
                await self.run_due()
            except Exception:  # one bad pass must not end the queue; the items stay for next time
                log.exception("relay queue pass failed")
                pause = 1.0
            if self._stopping:
                break
            if not self._wakeup.is_set():
                self._idle.set()
            wait = max(pause, await self._until_next())
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), wait)

    async def _until_next(self) -> float:
        upcoming = await self._reads.run(self.next_retry)
        if upcoming is None:
            return _MAX_IDLE_WAIT
        return min(_MAX_IDLE_WAIT, max(0.0, upcoming - self.clock.now()))

    def next_retry(self) -> float | None:
        """When the earliest queued recipient is due, on the clock; None with an empty queue."""
        return min((item.next_attempt for item in self.store.queue()), default=None)

    async def run_due(self) -> int:
        """One pass: try every due recipient once, then send the DSNs it produced. Returns how many."""
        async with self._pass_lock:
            return await self._attempt_all(await self._reads.run(self.store.due, self.clock.now()))

    async def _attempt_all(self, items: Sequence[QueueItem]) -> int:
        failed: _Reports = {}
        delayed: _Reports = {}
        for item in items:
            if self._stopping:
                break
            try:
                await self._try(item, failed, delayed)
            except Exception as exc:  # one poisoned item must not stall the rest of the queue
                log.exception("relay attempt for %s to %s failed", item.message_id, item.recipient)
                await self.store.record_deferral(
                    item.message_id, item.recipient, (), next_attempt=self.clock.now() + self.retry_interval,
                    error=f"internal error: {type(exc).__name__}", warned=item.warned,
                )
        for reports in (failed, delayed):
            for message_id, statuses in reports.items():
                await self._notify(message_id, statuses)
        return len(items)

    def _read(self, message_id: str) -> tuple[StoredMessage, bytes] | None:
        message = self.store.get(message_id)
        try:
            return None if message is None else (message, self.store.raw(message.id))
        except NoSuchMessage:
            return None

    async def _try(self, item: QueueItem, failed: _Reports, delayed: _Reports) -> None:
        found = await self._reads.run(self._read, item.message_id)
        if found is None:  # deleted while it waited
            await self.store.record_removal(item.message_id, item.recipient)
            return
        message, raw = found
        now = self.clock.now()
        sender = message.envelope.mail_from
        delivery = self.router.attempt(
            message_id=message.id, sender=sender, recipient=item.recipient, size=len(raw), now=now,
            received=len(_RECEIVED.findall(header_block(raw))), utf8=message.envelope.smtputf8,
        )
        # Each outcome below is one store transaction: the attempts, the delivery or the new schedule,
        # and the dequeue commit together (a crash between them can no longer deliver twice).
        if delivery.status == "delivered":
            prefix, suffix = delivery.prefix, b""
            if delivery.changes_content:  # hops that sign, seal or rewrite: milliseconds of RSA per hop
                prefix, suffix = await self._signing.run(
                    apply_hops, raw, sender, item.recipient, delivery.hops, self.zone
                )
            entry = await self.store.record_delivery(message.id, item.recipient, delivery.attempts, prefix, suffix)
            if entry is not None:  # None: delivered, dropped or deleted meanwhile
                self._publish(message.id, item.recipient, delivery, "delivered")
            return
        report = RecipientStatus(
            recipient=item.recipient, action="failed", status=delivery.status_code, diagnostic=delivery.reply,
            remote_mta=delivery.remote, last_attempt=now,
        )
        if delivery.status == "failed" or now - item.first_attempt >= self.give_up_after:
            if delivery.status == "deferred":
                report = replace(report, status=EXPIRED)
            if not await self.store.record_removal(message.id, item.recipient, delivery.attempts):
                return  # done meanwhile: no bounce for it
            self._publish(message.id, item.recipient, delivery, "bounced")
            if sender:  # RFC 5321 §4.5.5 / RFC 3464 §2: a null reverse path never gets a DSN back
                failed.setdefault(message.id, []).append(report)
            return
        warn = not item.warned and now - item.first_attempt >= self.warn_after
        if not await self.store.record_deferral(
            message.id, item.recipient, delivery.attempts, next_attempt=now + self.retry_interval,
            error=delivery.reply, warned=item.warned or warn,
        ):
            return
        if warn and sender:
            until = item.first_attempt + self.give_up_after
            delayed.setdefault(message.id, []).append(replace(report, action="delayed", will_retry_until=until))
        self._publish(message.id, item.recipient, delivery, "deferred")

    def _publish(self, message_id: str, recipient: str, delivery: Delivery, status: str) -> None:
        self.bus.publish(DeliveryAttempted(message_id, recipient, delivery.remote or self.hostname,
                                           delivery.code, status))

    async def _notify(self, message_id: str, statuses: list[RecipientStatus]) -> None:
        """Send the sender one DSN for every recipient of this message the pass failed or delayed."""
        found = await self._reads.run(self._read, message_id)
        if found is None or not found[0].envelope.mail_from:
            return
        message, original = found
        sender = message.envelope.mail_from
        dsn = build_dsn(
            hostname=self.hostname, original=original, sender=sender,
            arrival=message.created, recipients=statuses, now=self.clock.now(),
        )
        envelope = Envelope(mail_from="", rcpt_tos=(sender,), peer="127.0.0.1", helo=self.hostname,
                            smtputf8=message.envelope.smtputf8)
        await self.submit(dsn, envelope)

    # -- the API's side ------------------------------------------------------------------------

    def queued(self, message_id: str, recipient: str | None = None) -> list[QueueItem]:
        return [
            i for i in self.store.queue()
            if i.message_id == message_id
            and (recipient is None or normalize_user(i.recipient) == normalize_user(recipient))
        ]

    async def retry(self, message_id: str, recipient: str | None = None) -> int:
        """Try these queued recipients now, whatever their schedule; returns how many were tried."""
        async with self._pass_lock:
            # Read under the lock: a pass that just ran may have delivered some of them.
            return await self._attempt_all(await self._reads.run(self.queued, message_id, recipient))

    async def drop(self, message_id: str, recipient: str | None = None) -> int:
        """Take recipients out of the queue without a bounce; the trace records who dropped them."""
        async with self._pass_lock:
            items = await self._reads.run(self.queued, message_id, recipient)
            now = self.clock.now()
            dropped = 0
            for item in items:
                note = Attempt(
                    message_id=item.message_id, recipient=item.recipient, host=self.hostname, preference=None,
                    code=0, reply="dropped from the queue through the API", at=now,
                    dialogue=("(dropped by the user; no bounce sent)",),
                )
                if not await self.store.record_removal(item.message_id, item.recipient, (note,)):
                    continue
                dropped += 1
                # Every open UI tab and API client hears of it, as of any other end of a delivery.
                self.bus.publish(DeliveryAttempted(item.message_id, item.recipient, self.hostname, 0, "dropped"))
            return dropped

    def advance(self, seconds: float) -> float:
        """Move the clock on and look at the queue."""
        now = self.clock.advance(seconds)
        self.wake()
        return now

    def skip_to_next_retry(self) -> float | None:
        """Move the clock to the earliest retry (if it lies ahead) and look at the queue."""
        upcoming = self.next_retry()
        if upcoming is not None:
            self.clock.advance(max(0.0, upcoming - self.clock.now()))
            self.wake()
        return upcoming

    def hosts(self) -> dict[str, dict[str, Any]]:
        """Every host with a behaviour set (config or run time), JSON-ready."""
        return {name: b.to_json() for name, b in sorted(self.faults.hosts.items())}

    def host(self, name: str) -> dict[str, Any]:
        return self.faults.get(name).to_json()

    def set_host(self, name: str, data: Any) -> dict[str, Any]:
        """Set a host's behaviour from JSON; raises BehaviourError (a ValueError) on nonsense. A signing
        host without a key gets one made (tens of milliseconds: call it off the loop)."""
        behaviour = self._with_keys(HostBehaviour.from_json(data))
        self.faults.set(name, behaviour)
        return behaviour.to_json()

    def _with_keys(self, behaviour: HostBehaviour) -> HostBehaviour:
        """The behaviour with a key for each signer (made when missing), each public key in the zone."""
        signers = {}
        for field_name in ("dkim_sign", "arc_seal"):
            signer = getattr(behaviour, field_name)
            if signer is not None:
                signers[field_name] = signer = signer.with_key()
                signer.publish(self.zone)
        return replace(behaviour, **signers) if signers else behaviour

    def remove_host(self, name: str) -> bool:
        """Forget a host's behaviour: it accepts mail again."""
        return self.faults.remove(name)

    async def release(self, message_id: str, recipients: Any) -> dict[str, Any]:
        return await self.releaser.release(message_id, recipients)

    def reset(self) -> None:
        """Back to configured host behaviours; greylists forget; routing decisions are recomputed; the
        configured signers' public keys are published again (call after the zone's own reset)."""
        self.faults.reset()
        for behaviour in self.faults.configured.values():
            for signer in (behaviour.dkim_sign, behaviour.arc_seal):
                if signer is not None:
                    signer.publish(self.zone)
        self.zone_changed()

    def trace(self, message: StoredMessage) -> list[Attempt]:
        """Every recorded hop and attempt, plus one synthesized hop per recipient the capture
        transaction delivered locally (those write no rows, to keep capture fast)."""
        recorded = self.store.trace(message.id)
        seen = {normalize_user(a.recipient) for a in recorded}
        seen |= {normalize_user(i.recipient) for i in self.store.queue() if i.message_id == message.id}
        env = message.envelope
        local = [
            Attempt(
                message_id=message.id, recipient=rcpt, host=self.hostname, preference=None, code=OK,
                reply=f"{OK} 2.0.0 Delivered to local mailbox", at=message.created,
                dialogue=(
                    f"C: EHLO {env.helo or '(none)'}", f"C: MAIL FROM:<{env.mail_from}>",
                    f"C: RCPT TO:<{rcpt}>", "C: DATA", f"S: {OK} 2.0.0 Ok: queued as {message.id}",
                    f"(local delivery: {self.hostname} is the best MX of {domain_of(rcpt) or 'the address'})",
                ),
            )
            for rcpt in env.rcpt_tos if normalize_user(rcpt) not in seen
        ]
        return sorted(local + recorded, key=lambda a: a.at)
