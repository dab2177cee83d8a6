"""Simulated MTAs: what each host named in the zone answers when the relay (or a gateway) connects."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

from mailsandbox.relay.signing import Signer, SignerError

Mode = Literal["accept", "down", "tempfail", "permfail", "greylist"]
MODES: tuple[Mode, ...] = ("accept", "down", "tempfail", "permfail", "greylist")
_RULE_MODES = ("accept", "tempfail", "permfail", "greylist")  # "down" is per host: nobody answers

DEFAULT_REPLIES: dict[str, str] = {
    "tempfail": "451 4.3.0 Temporary local problem, please try again later",
    "permfail": "550 5.1.1 User unknown in virtual mailbox table",
    "greylist": "451 4.7.1 Greylisted, please try again later",
}
_REPLY = re.compile(r"^([2-5])\d\d(?: |$)")
# Reply codes the simulated dialogue uses (RFC 5321 §4.2.2).
READY, OK, CLOSING, START_INPUT = 220, 250, 221, 354
NO_CONNECTION = 0  # what an Attempt records when no SMTP reply came at all (refused, unresolvable)


class BehaviourError(ValueError):
    """A host behaviour (config or API JSON) that cannot be understood."""


@dataclass(frozen=True)
class RecipientRule:
    """One per-recipient override on a host: the first rule whose glob matches decides."""

    match: str  # glob over the lower-cased recipient address: "bob@*", "*@old.example.test"
    mode: Mode
    reply: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"recipient": self.match, "behaviour": self.mode, "reply": self.reply}


@dataclass(frozen=True)
class HostBehaviour:
    """How one simulated host acts; the default is a plain MTA that accepts everything."""

    mode: Mode = "accept"
    reply: str | None = None  # overrides DEFAULT_REPLIES for tempfail / permfail / greylist
    recipients: tuple[str, ...] = ()  # globs the host-wide mode applies to; empty: every recipient
    delay: float = 0.0  # "slow": seconds of trace time the host takes to answer DATA
    relay_to: str | None = None  # a gateway: passes accepted mail on to this host (cut-through)
    rules: tuple[RecipientRule, ...] = ()
    greylist_delay: float = 0.0  # retries sooner than this after the first try are greylisted again
    # What the host does to a message it passes on (sandbox/relay/signing.py): sign, seal, add a footer.
    dkim_sign: Signer | None = None
    arc_seal: Signer | None = None
    rewrite_body: str | None = None  # text appended to the body, as a mailing list adds its footer

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str | None) -> HostBehaviour:
        """Config/API shape: {"behaviour": "permfail", "reply": "...", "recipients": [...],
        "delay": 5, "relay_to": "mx.inner.test", "rules": [{"recipient": "b@*", "behaviour": ...}],
        "dkim_sign": {"domain", "selector", "key"}, "arc_seal": {...}, "rewrite_body": "footer"}.
        A bare string is a mode; "slow" is accept with a delay (default 30 s)."""
        if data is None:
            return cls()
        if isinstance(data, str):
            data = {"behaviour": data}
        if not isinstance(data, Mapping):
            raise BehaviourError("a host behaviour is a JSON object or a mode name")
        items = {str(k).lower().replace("-", "_"): v for k, v in data.items()}
        unknown = set(items) - {"behaviour", "behavior", "mode", "reply", "recipients", "delay",
                                "relay_to", "rules", "greylist_delay", "dkim_sign", "arc_seal", "rewrite_body"}
        if unknown:
            raise BehaviourError(f"unknown host setting(s): {', '.join(sorted(unknown))}")
        name = str(items.get("behaviour", items.get("behavior", items.get("mode", "accept")))).lower()
        delay = _number(items.get("delay", 30.0 if name == "slow" else 0.0), "delay")
        if name == "slow":
            name = "accept"
        mode = _mode(name, MODES)
        reply = _reply(items.get("reply"), mode)
        relay_to = items.get("relay_to")
        if relay_to is not None and (not isinstance(relay_to, str) or not relay_to.strip()):
            raise BehaviourError("relay_to must be a host name")
        rules = tuple(_rule(r) for r in _list(items.get("rules", []), "rules"))
        recipients = tuple(str(r).lower() for r in _list(items.get("recipients", []), "recipients"))
        return cls(
            mode=mode, reply=reply, recipients=recipients, delay=delay,
            relay_to=relay_to.strip().rstrip(".").lower() if relay_to else None, rules=rules,
            greylist_delay=_number(items.get("greylist_delay", 0.0), "greylist_delay"),
            **_content_settings(items),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "behaviour": self.mode, "reply": self.reply,  # None: the mode's default reply
            "recipients": list(self.recipients), "delay": self.delay, "relay_to": self.relay_to,
            "rules": [r.to_json() for r in self.rules], "greylist_delay": self.greylist_delay,
            "dkim_sign": self.dkim_sign.to_json() if self.dkim_sign else None,
            "arc_seal": self.arc_seal.to_json() if self.arc_seal else None,
            "rewrite_body": self.rewrite_body,
        }

    def verdict(self, recipient: str) -> tuple[Mode, str | None]:
        """The mode (and reply override) that applies to one recipient on this host."""
        address = recipient.lower()
        for rule in self.rules:
            if fnmatch.fnmatchcase(address, rule.match.lower()):
                return rule.mode, rule.reply
        if self.mode == "down" or not self.recipients:
            return self.mode, self.reply
        if any(fnmatch.fnmatchcase(address, pattern) for pattern in self.recipients):
            return self.mode, self.reply
        return "accept", None


def _content_settings(items: Mapping[str, Any]) -> dict[str, Any]:
    """dkim_sign, arc_seal and rewrite_body: what the host does to the message it passes on."""
    try:
        signers = {name: Signer.from_json(items.get(name), name) for name in ("dkim_sign", "arc_seal")}
    except SignerError as exc:
        raise BehaviourError(str(exc)) from None
    footer = items.get("rewrite_body")
    if footer is not None and (not isinstance(footer, str) or "\x00" in footer):
        raise BehaviourError("rewrite_body is the text a hop appends to the body")
    text = footer.replace("\r\n", "\n").replace("\r", "\n") if footer else None  # lines end in CRLF when sent
    return {**signers, "rewrite_body": text}


def _mode(name: str, allowed: Iterable[str]) -> Mode:
    if name not in allowed:
        raise BehaviourError(f"unknown behaviour {name!r}; one of: {', '.join(allowed)}, slow")
    return cast(Mode, name)


def _number(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BehaviourError(f"{what} must be a number of seconds") from None
    if not 0 <= number < 10**9:
        raise BehaviourError(f"{what} out of range")
    return number


def _list(value: Any, what: str) -> list[Any]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list | tuple):
        raise BehaviourError(f"{what} must be a list")
    return list(value)


def _reply(value: Any, mode: str) -> str | None:
    """A custom reply must carry the class the mode implies: 4xx for temporary, 5xx for permanent."""
    if value is None:
        return None
    text = str(value).strip()
    match = _REPLY.match(text)
    wanted = {"tempfail": "4", "greylist": "4", "permfail": "5"}.get(mode)
    if match is None or "\r" in text or "\n" in text:
        raise BehaviourError(f"reply must be one line starting with an SMTP code: {text!r}")
    if wanted and match.group(1) != wanted:
        raise BehaviourError(f"a {mode} reply must be a {wanted}xx code: {text!r}")
    return text


def _rule(data: Any) -> RecipientRule:
    if not isinstance(data, Mapping) or "recipient" not in data:
        raise BehaviourError('a rule is {"recipient": GLOB, "behaviour": MODE, "reply": optional}')
    mode = _mode(str(data.get("behaviour", data.get("mode", "accept"))).lower(), _RULE_MODES)
    return RecipientRule(str(data["recipient"]).lower(), mode, _reply(data.get("reply"), mode))


@dataclass(frozen=True)
class Session:
    """One simulated SMTP conversation with one host about one recipient."""

    host: str
    code: int  # the reply that decided the attempt; NO_CONNECTION when nobody answered
    reply: str
    dialogue: tuple[str, ...]
    connected: bool
    duration: float = 0.0
    origin: str = ""  # the host whose own verdict this is (a gateway passes on its next hop's)
    said: str = ""  # that host's reply, as it said it

    @property
    def accepted(self) -> bool:
        return self.code == OK

    @property
    def permanent(self) -> bool:
        return self.code >= 500  # RFC 5321 §4.2.1: 5yz is a permanent negative completion


@dataclass
class Faults:
    """Behaviour per host, plus what greylisting hosts remember. Pure: times come from the caller."""

    configured: dict[str, HostBehaviour] = field(default_factory=dict)
    hosts: dict[str, HostBehaviour] = field(default_factory=dict)
    greylist: dict[tuple[str, str, str], float] = field(default_factory=dict)  # triplet -> first seen

    @classmethod
    def from_config(cls, hosts: Mapping[str, Any]) -> Faults:
        configured = {_host(name): HostBehaviour.from_json(value) for name, value in hosts.items()}
        return cls(configured, dict(configured))

    def get(self, host: str) -> HostBehaviour:
        return self.hosts.get(_host(host), HostBehaviour())

    def set(self, host: str, behaviour: HostBehaviour) -> None:
        self.hosts[_host(host)] = behaviour

    def remove(self, host: str) -> bool:
        return self.hosts.pop(_host(host), None) is not None

    def reset(self) -> None:
        """Back to the configured behaviours; greylisting hosts forget every triplet."""
        self.hosts = dict(self.configured)
        self.greylist.clear()

    def converse(
        self, host: str, address: str, *, client: str, sender: str, recipient: str, size: int, now: float,
        queue_id: str, forward: Callable[[float], Session] | None = None, too_many_hops: bool = False,
    ) -> Session:
        """Play one SMTP session with `host` from `client`, in the order RFC 5321 §3.3 gives.

        A gateway (relay_to) calls `forward(at)` once it has the data: cut-through relaying, so it
        answers the end of DATA with what its next hop said and the sender's queue stays the only queue.
        """
        behaviour = self.get(host)
        lines = [f"C: connect {host} [{address}]:25"]
        if behaviour.mode == "down":
            lines.append("connection refused")
            return Session(host, NO_CONNECTION, f"connect to {host}[{address}]:25: Connection refused",
                           tuple(lines), connected=False)
        lines += [
            f"S: {READY} {host} ESMTP Mailsandbox (simulated)",
            f"C: EHLO {client}",
            f"S: {OK}-{host}",
            f"S: {OK}-8BITMIME",
            f"S: {OK} ENHANCEDSTATUSCODES",
            f"C: MAIL FROM:<{sender}>",
            f"S: {OK} 2.1.0 Sender ok",
            f"C: RCPT TO:<{recipient}>",
        ]
        mode, custom = behaviour.verdict(recipient)
        if mode == "greylist":
            key = (sender.lower(), recipient.lower(), _host(host))
            first = self.greylist.get(key)
            if first is None:
                self.greylist[key] = now  # the triplet is new: remember it and say "come back later"
            if first is None or now - first < behaviour.greylist_delay:
                mode, custom = "tempfail", custom or DEFAULT_REPLIES["greylist"]
            else:
                mode, custom = "accept", None
        if mode in ("tempfail", "permfail"):
            return self._end(host, custom or DEFAULT_REPLIES[mode], lines)
        lines += [f"S: {OK} 2.1.5 Recipient ok", "C: DATA", f"S: {START_INPUT} End data with <CRLF>.<CRLF>",
                  f"C: ({size} bytes of message)", "C: ."]
        if behaviour.delay:
            lines.append(f"({behaviour.delay:g} s pass: the host is slow)")
        if too_many_hops:
            # RFC 5321 §6.3: counting Received: lines is how a host notices a mail loop.
            return self._end(host, "554 5.4.6 Too many hops: mail forwarding loop", lines, behaviour.delay)
        if behaviour.relay_to is not None and forward is not None:
            lines.append(f"(the gateway passes the message on to {behaviour.relay_to} before answering)")
            inner = forward(now + behaviour.delay)
            if not inner.accepted:
                code = inner.code if inner.code != NO_CONNECTION else 451
                origin, said = inner.origin or inner.host, inner.said or inner.reply
                enhanced = _enhanced(said) or ("4.4.1" if code < 500 else "5.0.0")
                reply = f"{code} {enhanced} {origin} said: {_text_of(said)}"
                session = self._end(host, reply, lines, behaviour.delay + inner.duration)
                return replace(session, origin=origin, said=said)
            return self._end(host, f"{OK} 2.0.0 Ok: queued as {queue_id}", lines,
                             behaviour.delay + inner.duration)
        return self._end(host, f"{OK} 2.0.0 Ok: queued as {queue_id}", lines, behaviour.delay)

    @staticmethod
    def _end(host: str, reply: str, lines: list[str], duration: float = 0.0) -> Session:
        lines += [f"S: {reply}", "C: QUIT", f"S: {CLOSING} 2.0.0 Bye"]
        return Session(host, int(reply[:3]), reply, tuple(lines), connected=True, duration=duration)


def _host(name: str) -> str:
    return name.strip().rstrip(".").lower()


_ENHANCED = re.compile(r"^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b")


def _enhanced(reply: str) -> str | None:
    """The RFC 3463 enhanced status code a reply carries, if any (RFC 2034 §4)."""
    match = _ENHANCED.match(reply)
    return match.group(1) if match else None


def _text_of(reply: str) -> str:
    """A reply without its basic and enhanced codes."""
    text = reply[4:] if _REPLY.match(reply) else reply
    code = _enhanced(reply)
    return text[len(code) + 1 :] if code and text.startswith(code) else text


def status_of(reply: str, code: int) -> str:
    """The RFC 3463 status for a reply: its own enhanced code, else one from the basic class."""
    found = _enhanced(reply)
    if found:
        return found
    if code == NO_CONNECTION:
        return "4.4.1"  # RFC 3463 X.4.1: no answer from host
    return f"{code // 100}.0.0" if code >= 400 else "2.0.0"

