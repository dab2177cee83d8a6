"""Chaos on the capture server: which SMTP stage fails, when, and how. Pure rules, no I/O.

Mailpit's three random triggers (Sender, Recipient, Authentication: an ErrorCode with a Probability), and
beyond them deterministic rules (every Nth time, a sender or recipient glob) at every stage of a session,
and per-client rate limits on the injected clock. The SMTP adapter (servers/smtp.py) asks `Chaos.check`
at each stage and acts on the `Fault` it gets: a reply instead of the usual one, a delay, a disconnect.
"""

from __future__ import annotations

import fnmatch
import random
import re
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Where a rule applies. Mailpit's triggers are "mail" (Sender), "rcpt" (Recipient) and "auth".
STAGES = ("greeting", "ehlo", "mail", "rcpt", "data", "message", "disconnect", "tls", "auth")
# Stages whose fault is an action, not a reply: the connection is cut (mid-DATA, or in the TLS handshake).
_CUT = frozenset({"disconnect", "tls"})
_TRIGGERS = {"sender": "Sender", "recipient": "Recipient", "recipients": "Recipient",
             "auth": "Authentication", "authentication": "Authentication"}  # fmt: skip
_DEFAULT_CODES = {"Sender": 451, "Recipient": 451, "Authentication": 535}
_TRIGGER_STAGE = {"mail": "Sender", "rcpt": "Recipient", "auth": "Authentication"}
MAX_RULES = 100
MAX_PATTERN = 256
MAX_DELAY = 600.0
MAX_CLIENTS = 10_000  # rate-limit windows kept (least recently seen client dropped first)
WINDOW = 60.0  # rate limits count per minute


@dataclass(frozen=True)
class Fault:
    """What the adapter does instead: `reply` (None: keep the usual one), after `delay` seconds; `cut`
    drops the connection without a word (a disconnect mid-DATA, a failed TLS handshake)."""

    reply: bytes | None = None
    delay: float = 0.0
    cut: bool = False


@dataclass(frozen=True)
class Trigger:
    error_code: int
    probability: int = 0

    def json(self) -> dict[str, int]:
        return {"ErrorCode": self.error_code, "Probability": self.probability}


@dataclass(frozen=True)
class Rule:
    stage: str
    error_code: int = 0  # 0: no reply of its own (a delay only, or a cut)
    text: str = ""  # the reply's text after the code; by default "Chaos STAGE error"
    every: int = 1  # fires on every Nth session event that matches
    sender: str = ""  # glob on the envelope sender (case-insensitive); "": any
    recipient: str = ""  # glob on a recipient (at RCPT: that one; later: any of them); "": any
    probability: int = 100
    delay: float = 0.0

    def json(self) -> dict[str, Any]:
        return {"Stage": self.stage, "ErrorCode": self.error_code, "Text": self.text, "Every": self.every,
                "Sender": self.sender, "Recipient": self.recipient, "Probability": self.probability,
                "Delay": self.delay}  # fmt: skip


@dataclass(frozen=True)
class RateLimit:
    messages: int = 0  # per client address per minute; the next MAIL gets 451 (0: no limit)
    connections: int = 0  # per client address per minute; the next connection gets 421 (0: no limit)

    def json(self) -> dict[str, int]:
        return {"Messages": self.messages, "Connections": self.connections}


def default_triggers() -> dict[str, Trigger]:
    return {name: Trigger(code) for name, code in _DEFAULT_CODES.items()}


# -- reading settings (flags, TOML, API JSON); every problem is a ValueError with a message -------------


def _int_in(value: Any, name: str, low: int, high: int) -> int:
    number: int
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        number = int(value.strip())
    else:
        raise ValueError(f"{name} must be a whole number from {low} to {high}")
    if not low <= number <= high:
        raise ValueError(f"{name} must be from {low} to {high}")
    return number


def _code(value: Any, name: str, allow_zero: bool = False) -> int:
    code = _int_in(value, name, 0, 599)
    if (code or not allow_zero) and not 400 <= code <= 599:
        raise ValueError(f"{name} must be an SMTP error code from 400 to 599")
    return code


def trigger_from_json(name: str, value: Any) -> Trigger:
    """Mailpit's {ErrorCode, Probability}; an absent or 0 ErrorCode is the trigger's default."""
    if value is None:
        return Trigger(_DEFAULT_CODES[name])
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be an object {{ErrorCode, Probability}}")
    code = _code(value.get("ErrorCode", 0), f"{name}.ErrorCode", allow_zero=True) or _DEFAULT_CODES[name]
    return Trigger(code, _int_in(value.get("Probability", 0), f"{name}.Probability", 0, 100))


def triggers_from_json(data: Any) -> dict[str, Trigger]:
    """PUT /api/v1/chaos: as Mailpit, a trigger left out goes back to its default (probability 0)."""
    if not isinstance(data, Mapping):
        raise ValueError("expected a JSON object of Sender, Recipient and Authentication")
    return {name: trigger_from_json(name, data.get(name)) for name in _DEFAULT_CODES}


def parse_triggers(text: str) -> dict[str, Trigger]:
    """Mailpit's --chaos-triggers: comma-separated TRIGGER:CODE:PROBABILITY (Sender:451:50,Recipient:...)."""
    out = default_triggers()
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        parts = item.split(":")
        if len(parts) != 3:
            raise ValueError(f"a chaos trigger is TRIGGER:CODE:PROBABILITY (e.g. Sender:451:50), got {item!r}")
        name = _TRIGGERS.get(parts[0].strip().lower())
        if name is None:
            raise ValueError(f"unknown chaos trigger {parts[0]!r} (Sender, Recipient or Authentication)")
        out[name] = Trigger(_code(parts[1], f"{name} error code"), _int_in(parts[2], f"{name} probability", 0, 100))
    return out


def _pattern(value: Any, name: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_PATTERN:
        raise ValueError(f"{name} must be an address glob of at most {MAX_PATTERN} characters")
    return value.strip()


def _delay(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("Delay must be a number of seconds")
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError("Delay must be a number of seconds") from None
    if not 0 <= seconds <= MAX_DELAY:  # also refuses nan
        raise ValueError(f"Delay must be from 0 to {MAX_DELAY:g} seconds")
    return seconds


def rule_from_json(data: Any) -> Rule:
    """A rule object of the API, or a rule in the --chaos-rule syntax (a string)."""
    if isinstance(data, str):
        return parse_rule(data)
    if not isinstance(data, Mapping):
        raise ValueError("a rule must be an object with a Stage")
    unknown = sorted(set(data) - {"Stage", "ErrorCode", "Text", "Every", "Sender", "Recipient", "Probability", "Delay"})
    if unknown:
        raise ValueError(f"unknown rule field {unknown[0]!r}")
    stage = data.get("Stage")
    if stage not in STAGES:
        raise ValueError(f"Stage must be one of {', '.join(STAGES)}")
    text = data.get("Text", "")
    if not isinstance(text, str) or len(text) > 200 or not text.isprintable():
        raise ValueError("Text must be printable text of at most 200 characters")
    rule = Rule(
        stage=stage,
        error_code=_code(data.get("ErrorCode", 0), "ErrorCode", allow_zero=True),
        text=text.strip(),
        every=_int_in(data.get("Every", 1), "Every", 1, 1_000_000),
        sender=_pattern(data.get("Sender", ""), "Sender"),
        recipient=_pattern(data.get("Recipient", ""), "Recipient"),
        probability=_int_in(data.get("Probability", 100), "Probability", 0, 100),
        delay=_delay(data.get("Delay", 0)),
    )
    if stage in _CUT and (rule.error_code or rule.delay):
        raise ValueError(f"a {stage} rule cuts the connection: it takes no ErrorCode or Delay")
    if stage not in _CUT and not rule.error_code and not rule.delay:
        raise ValueError(f"a {stage} rule needs an ErrorCode, a Delay or both")
    return rule


_RULE_KEYS = {"every": "Every", "from": "Sender", "to": "Recipient", "p": "Probability", "delay": "Delay"}


def parse_rule(text: str) -> Rule:
    """--chaos-rule: STAGE[:CODE] then space-separated every=N from=GLOB to=GLOB p=PERCENT delay=SECONDS,
    e.g. "rcpt:550 to=*@bounce.test", "message:451 every=3", "greeting delay=2", "disconnect every=2"."""
    if not text.strip():
        raise ValueError("an empty chaos rule")
    head, *options = text.split()
    stage, _, code = head.partition(":")
    data: dict[str, Any] = {"Stage": stage.lower()}
    if code:
        data["ErrorCode"] = code
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or key.lower() not in _RULE_KEYS:
            raise ValueError(f"chaos rule option {option!r}: use every=, from=, to=, p= or delay=")
        data[_RULE_KEYS[key.lower()]] = value
    try:
        return rule_from_json(data)
    except ValueError as exc:
        raise ValueError(f"chaos rule {text!r}: {exc}") from None


def rate_limit_from_json(data: Any) -> RateLimit:
    if data is None:
        return RateLimit()
    if not isinstance(data, Mapping) or set(data) - {"Messages", "Connections"}:
        raise ValueError("RateLimit must be an object of Messages and Connections (per client per minute)")
    return RateLimit(_int_in(data.get("Messages", 0), "RateLimit.Messages", 0, 1_000_000),
                     _int_in(data.get("Connections", 0), "RateLimit.Connections", 0, 1_000_000))  # fmt: skip


# -- deciding --------------------------------------------------------------------------------------


def _matcher(glob: str) -> Callable[[str], bool] | None:
    # fnmatch's translation has no nested repetition, so matching an address is linear.
    if not glob:
        return None
    return re.compile(fnmatch.translate(glob.lower())).match  # type: ignore[return-value]


@dataclass
class _Compiled:
    rule: Rule
    sender: Callable[[str], bool] | None
    recipient: Callable[[str], bool] | None
    seen: int = 0


@dataclass
class Chaos:
    """The run-time chaos settings of one sandbox, consulted on the event loop (so never locked).
    `enabled` is fixed at start (--enable-chaos, or any chaos setting): as Mailpit, chaos cannot be
    switched on through the API of a server started without it."""

    enabled: bool = False
    clock: Callable[[], float] = field(default=lambda: 0.0)
    chance: Callable[[], float] = field(default=random.random)  # [0, 1); tests may fix it
    triggers: dict[str, Trigger] = field(default_factory=default_triggers)
    rate_limit: RateLimit = field(default_factory=RateLimit)
    _rules: list[_Compiled] = field(default_factory=list)
    _windows: OrderedDict[tuple[str, str], deque[float]] = field(default_factory=OrderedDict)

    @property
    def rules(self) -> list[Rule]:
        return [c.rule for c in self._rules]

    def set_rules(self, rules: Sequence[Rule]) -> None:
        if len(rules) > MAX_RULES:
            raise ValueError(f"at most {MAX_RULES} rules")
        self._rules = [_Compiled(r, _matcher(r.sender), _matcher(r.recipient)) for r in rules]

    def set_rate_limit(self, limit: RateLimit) -> None:
        self.rate_limit = limit
        self._windows.clear()

    def clear_windows(self) -> None:
        """The clock went back (a reset): counts taken on the old time must not block the new."""
        self._windows.clear()

    def reset(self) -> None:
        self.triggers = default_triggers()
        self.set_rules(())
        self.set_rate_limit(RateLimit())

    @property
    def active(self) -> bool:
        return self.enabled and bool(
            self._rules or self.rate_limit.messages or self.rate_limit.connections
            or any(t.probability for t in self.triggers.values())
        )  # fmt: skip

    # -- the API's shapes --
    def mailpit_json(self) -> dict[str, Any]:
        return {name: trigger.json() for name, trigger in self.triggers.items()}

    def json(self) -> dict[str, Any]:
        return {"Enabled": self.enabled, "Triggers": self.mailpit_json(), "Rules": [r.json() for r in self.rules],
                "RateLimit": self.rate_limit.json(), "Stages": list(STAGES)}  # fmt: skip

    def set_mailpit_json(self, data: Any) -> None:
        """PUT /api/v1/chaos (Mailpit's shape); the rules and rate limits stay."""
        self.triggers = triggers_from_json(data)

    def set_json(self, data: Any) -> None:
        """PUT /api/sandbox/chaos: Rules and RateLimit replace what was set (absent: none); Triggers too
        when given. Nothing changes unless all of it is valid."""
        if not isinstance(data, Mapping):
            raise ValueError("expected a JSON object of Rules, RateLimit and Triggers")
        unknown = sorted(set(data) - {"Rules", "RateLimit", "Triggers", "Enabled", "Stages"})
        if unknown:
            raise ValueError(f"unknown field {unknown[0]!r}")
        raw_rules = data.get("Rules") or []
        if not isinstance(raw_rules, list):
            raise ValueError("Rules must be a list")
        if len(raw_rules) > MAX_RULES:
            raise ValueError(f"at most {MAX_RULES} rules")
        rules = [rule_from_json(r) for r in raw_rules]
        limit = rate_limit_from_json(data.get("RateLimit"))
        triggers = triggers_from_json(data["Triggers"]) if data.get("Triggers") is not None else self.triggers
        self.set_rules(rules)
        self.set_rate_limit(limit)
        self.triggers = triggers

    # -- the SMTP adapter's questions --
    def check(self, stage: str, client: str, sender: str = "", recipients: Sequence[str] = ()) -> Fault | None:
        """The fault for this stage of a session from `client` (its address), or None: go on as usual."""
        if not self.enabled:
            return None
        limited = self._rate_limited(stage, client)
        if limited is not None:
            return limited
        name = _TRIGGER_STAGE.get(stage)
        if name is not None:  # Mailpit: a random draw below the probability
            trigger = self.triggers[name]
            if trigger.probability and self.chance() * 100 < trigger.probability:
                return Fault(_reply(trigger.error_code, f"Chaos {name.lower()} error"))
        for compiled in self._rules:
            rule = compiled.rule
            if rule.stage != stage or not self._matches(compiled, sender, recipients):
                continue
            compiled.seen += 1
            if compiled.seen % rule.every or (rule.probability < 100 and self.chance() * 100 >= rule.probability):
                continue
            if stage in _CUT:
                return Fault(cut=True)
            reply = _reply(rule.error_code, rule.text or f"Chaos {stage} error") if rule.error_code else None
            return Fault(reply, rule.delay)
        return None

    def _matches(self, compiled: _Compiled, sender: str, recipients: Sequence[str]) -> bool:
        if compiled.sender is not None and not compiled.sender(sender.lower()):
            return False
        match = compiled.recipient
        return match is None or any(match(r.lower()) for r in recipients)

    def _rate_limited(self, stage: str, client: str) -> Fault | None:
        limit = self.rate_limit
        if stage == "greeting" and limit.connections:
            if not self._count(("connections", client), limit.connections):
                return Fault(b"421 4.7.0 Too many connections from your address this minute, try again later\r\n")
        elif stage == "mail" and limit.messages:
            if not self._count(("messages", client), limit.messages):
                return Fault(b"451 4.7.1 Too many messages from your address this minute, try again later\r\n")
        return None

    def _count(self, key: tuple[str, str], allowed: int) -> bool:
        """One more event in the client's sliding minute; False when it is over `allowed` (a refused
        attempt is not counted, so a client that waits a minute gets through)."""
        now = self.clock()
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = deque(maxlen=allowed)
            if len(self._windows) > MAX_CLIENTS:
                self._windows.popitem(last=False)
        else:
            self._windows.move_to_end(key)
            if window.maxlen != allowed:
                window = self._windows[key] = deque(window, maxlen=allowed)
        while window and window[0] <= now - WINDOW:
            window.popleft()
        if len(window) >= allowed:
            return False
        window.append(now)
        return True


def _reply(code: int, text: str) -> bytes:
    # An enhanced status code (RFC 3463) for every reply, as the rest of the dialogue has.
    return f"{code} {code // 100}.0.0 {text}\r\n".encode()


def from_settings(enabled: bool, triggers: str | None, rules: Sequence[str], messages: int, connections: int,
                  clock: Callable[[], float]) -> Chaos:  # fmt: skip
    """The start-up state from the configuration; any chaos setting enables chaos, as Mailpit's
    --chaos-triggers does."""
    on = enabled or bool(triggers) or bool(rules) or bool(messages or connections)
    chaos = Chaos(enabled=on, clock=clock)
    if triggers:
        chaos.triggers = parse_triggers(triggers)
    chaos.set_rules([parse_rule(r) for r in rules])
    chaos.set_rate_limit(RateLimit(messages, connections))
    return chaos
