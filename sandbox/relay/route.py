"""One delivery attempt for one recipient: MX plan from the zone, hops through simulated hosts, trace."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

from mailsandbox.models import Attempt
from mailsandbox.received import received_line as trace_line
from mailsandbox.received import with_protocol
from mailsandbox.relay.faults import NO_CONNECTION, OK, Faults, Session, status_of
from mailsandbox.relay.signing import HopWork
from mailsandbox.zone import Zone

MAX_HOPS = 100  # RFC 5321 §6.3: reject as a loop only past a large count of Received: lines
Status = Literal["delivered", "deferred", "failed"]


@dataclass(frozen=True)
class Delivery:
    """What one attempt for one recipient came to, and what the queue must record and do."""

    status: Status
    code: int
    reply: str
    remote: str | None  # the host whose answer decided (Remote-MTA in a DSN); None: decided locally
    attempts: tuple[Attempt, ...]
    prefix: bytes = b""  # the Received: lines the hops stamped, newest first (Store.deliver's prefix)
    finished: float = 0.0  # trace time when the attempt ended (slow hosts push it on)
    hops: tuple[HopWork, ...] = ()  # the hops it passed, oldest first: their stamps and what else they do

    @property
    def changes_content(self) -> bool:
        """Whether a hop signs, seals or rewrites: then signing.apply_hops makes the prefix (and suffix)."""
        return any(h.changes_content for h in self.hops)

    @property
    def status_code(self) -> str:
        """RFC 3463 status for a DSN."""
        return status_of(self.reply, self.code)


@dataclass
class _Walk:
    """Mutable state of one attempt while it hops from host to host."""

    message_id: str
    sender: str
    recipient: str
    size: int
    received: int  # Received: lines the message carried before we sent it
    utf8: bool
    hops: list[HopWork] = field(default_factory=list)  # the hops that took the message, oldest first
    attempts: list[Attempt | None] = field(default_factory=list)


def domain_of(address: str) -> str:
    """The domain of an address, lower-cased; "" for a bare local part such as "postmaster"."""
    _, at, domain = address.strip().strip("<>").rpartition("@")
    return domain.rstrip(".").lower() if at else ""


def queue_id(*parts: object) -> str:
    """A stable per-hop id, like the queue ids real MTAs put in Received: lines."""
    return hashlib.sha256("\0".join(map(str, parts)).encode()).hexdigest()[:12].upper()


def received_line(
    *, helo: str, address: str, by: str, queue: str, recipient: str, at: float, utf8: bool = False
) -> bytes:
    """A simulated hop's trace line: the hops speak ESMTP (UTF8SMTP for SMTPUTF8 mail, RFC 6531 §3.7.3)."""
    protocol = with_protocol(esmtp=True, utf8=utf8)
    return trace_line(helo=helo, address=address, by=by, protocol=protocol, queue=queue, recipient=recipient, at=at)


class Router:
    """Plans and plays one attempt: MX hosts by preference, each possibly a chain of gateways."""

    def __init__(self, zone: Zone, faults: Faults, hostname: str, max_hops: int = MAX_HOPS) -> None:
        self.zone = zone
        self.faults = faults
        self.hostname = hostname
        self.max_hops = max_hops

    def own_address(self) -> str:
        found = self.zone.addresses(self.hostname)
        return found[0] if found else "127.0.0.1"

    def attempt(
        self, *, message_id: str, sender: str, recipient: str, size: int, now: float, received: int = 0,
        utf8: bool = False,
    ) -> Delivery:
        walk = _Walk(message_id, sender, recipient, size, received, utf8)
        domain = domain_of(recipient)
        if not domain:
            return self._local_failure(walk, now, "550 5.1.3 Recipient address has no domain", "syntax")
        mx = self.zone.mx(domain)
        if mx.null_mx:  # RFC 7505 §3: a null MX means the domain takes no mail; no retry
            reply = "556 5.1.10 Recipient address has null MX"
            return self._local_failure(walk, now, reply, f"{domain} MX 0 .")
        if mx.nxdomain:
            reply = f"550 5.1.2 Host or domain name not found: {domain} (NXDOMAIN)"
            return self._local_failure(walk, now, reply, f"{domain} MX NXDOMAIN")
        if not mx.hosts:  # RFC 5321 §5.1: no MX and no address either
            reply = f"550 5.1.2 {domain} has no MX and no address record"
            return self._local_failure(walk, now, reply, f"{domain} MX (none), A (none)")
        hosts = mx.hosts
        own = [pref for pref, host in hosts if self.zone.is_local(host)]
        if own:
            # RFC 5321 §5.1: a host finding itself in the list tries only those more preferred than itself.
            hosts = [(pref, host) for pref, host in hosts if pref < min(own)]
            if not hosts:
                return self._local_delivery(walk, now)
        at = now
        decided: Session | None = None
        for pref, host in hosts:
            preference = None if mx.implicit else pref
            session = self._hop(walk, 0, self.hostname, self.own_address(), host, preference, at)
            at += session.duration
            if session.accepted:
                return self._done(walk, "delivered", session, at)
            if session.permanent:
                return self._done(walk, "failed", session, at)
            # RFC 5321 §5.1: try the next address until one succeeds; keep the most telling error.
            if decided is None or session.connected or not decided.connected:
                decided = session
        assert decided is not None
        return self._done(walk, "deferred", decided, at)

    def _hop(
        self, walk: _Walk, index: int, helo: str, client_address: str, host: str, preference: int | None,
        at: float,
    ) -> Session:
        """One SMTP hand-over to `host`; a gateway recurses into the next hop before it answers."""
        slot = len(walk.attempts)
        walk.attempts.append(None)  # keep the trace in the order the sessions began
        addresses = self.zone.addresses(host)
        if not addresses:
            session = Session(
                host, NO_CONNECTION, f"Host or domain name not found: {host} has no address record",
                (f"DNS {host} A/AAAA? -> no address",), connected=False,
            )
        else:
            address = addresses[0]
            behaviour = self.faults.get(host)
            queue = queue_id(walk.message_id, walk.recipient, index, host, at)
            # The host stamps as the data arrives; a slow host then takes its time to pass it on or answer.
            stamp = received_line(
                helo=helo, address=client_address, by=host, queue=queue, recipient=walk.recipient,
                at=at, utf8=walk.utf8,
            )
            loop = walk.received + len(walk.hops) >= self.max_hops
            work = HopWork(
                host, stamp, helo, client_address, dkim_sign=behaviour.dkim_sign, arc_seal=behaviour.arc_seal,
                rewrite_body=behaviour.rewrite_body,
            )  # fmt: skip

            def forward(t: float) -> Session:
                assert behaviour.relay_to is not None
                walk.hops.append(work)  # the gateway stamps its line before passing the message on
                inner = self._hop(walk, index + 1, host, address, behaviour.relay_to, None, t)
                if not inner.accepted:
                    walk.hops.remove(work)
                return inner

            session = self.faults.converse(
                host, address, client=helo, sender=walk.sender, recipient=walk.recipient, size=walk.size,
                now=at, queue_id=queue, forward=forward if behaviour.relay_to else None, too_many_hops=loop,
            )
            if session.accepted and behaviour.relay_to is None:
                walk.hops.append(work)  # the final host: its own line, then into the mailbox
        walk.attempts[slot] = Attempt(
            message_id=walk.message_id, recipient=walk.recipient, host=host, preference=preference,
            code=session.code, reply=session.reply, at=at, dialogue=session.dialogue, hop=index,
        )
        return session

    def _done(self, walk: _Walk, status: Status, session: Session, finished: float) -> Delivery:
        hops = tuple(walk.hops) if status == "delivered" else ()
        prefix = b"".join(h.stamp for h in reversed(hops))
        attempts = tuple(a for a in walk.attempts if a is not None)
        return Delivery(status, session.code, session.reply, session.host, attempts, prefix, finished, hops)

    def _local_failure(self, walk: _Walk, now: float, reply: str, lookup: str) -> Delivery:
        """Decided before any connection: recorded as a hop "by" our own host, with the DNS answer."""
        attempt = Attempt(
            message_id=walk.message_id, recipient=walk.recipient, host=self.hostname, preference=None,
            code=int(reply[:3]), reply=reply, at=now, dialogue=(f"DNS {lookup}", reply), hop=0,
        )
        return Delivery("failed", int(reply[:3]), reply, None, (attempt,), b"", now)

    def _local_delivery(self, walk: _Walk, now: float) -> Delivery:
        reply = f"{OK} 2.0.0 Delivered to local mailbox (this host is the best MX)"
        attempt = Attempt(
            message_id=walk.message_id, recipient=walk.recipient, host=self.hostname, preference=None,
            code=OK, reply=reply, at=now, dialogue=(reply,), hop=0,
        )
        return Delivery("delivered", OK, reply, self.hostname, (attempt,), b"", now)
