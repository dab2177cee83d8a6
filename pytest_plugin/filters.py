"""MailFilter: the keyword filters of the outbox helpers, and why a message failed them."""

from __future__ import annotations

import difflib
import email.utils
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mailsandbox.pytest_plugin.message import CapturedMessage

TextSpec = str | re.Pattern[str]
AddressSpec = str | re.Pattern[str] | Iterable[str]
HeaderSpec = Mapping[str, str | re.Pattern[str] | None]

FILTER_NAMES = ("to", "cc", "bcc", "sender", "subject", "contains", "header", "tag")
_EXCERPT = 160


def _address(value: str) -> str:
    """'Ann <ann@example.test>' and 'ann@example.test' name the same mailbox."""
    _, addr = email.utils.parseaddr(value)
    return (addr or value).strip().lower()


def _show(spec: object) -> str:
    if isinstance(spec, re.Pattern):
        return f"re.compile({spec.pattern!r})"
    if isinstance(spec, str):
        return repr(spec)
    if isinstance(spec, Mapping):
        return "{" + ", ".join(f"{k!r}: {_show(v)}" for k, v in spec.items()) + "}"
    if isinstance(spec, Iterable):
        return "[" + ", ".join(_show(v) for v in spec) + "]"
    return repr(spec)


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= _EXCERPT else flat[:_EXCERPT] + "...")


def _diff(expected: str, actual: str) -> list[str]:
    """pytest-style '- expected / + actual' lines, with the '?' guide lines difflib adds."""
    return ["    " + line.rstrip("\n") for line in difflib.ndiff([expected], [actual])]


@dataclass(frozen=True)
class MailFilter:
    """Keyword filters; a message matches when every given one does.

    to       an envelope recipient or an address in To: (str compares addresses case-insensitively;
             a list requires each; a compiled regex searches each address)
    cc, bcc  an address in Cc:, or a blind recipient (envelope only); same forms as `to`
    sender   the From: address or the envelope sender
    subject  str: contained in the subject; regex: searched in it
    contains str or regex, in the text or the HTML part
    header   {name: value}: str equals the (first) header value, regex searches it, None: present
    tag      a tag the message has (case-insensitively, as the sandbox compares tags); a list requires each
    """

    to: AddressSpec | None = None
    cc: AddressSpec | None = None
    bcc: AddressSpec | None = None
    sender: AddressSpec | None = None
    subject: TextSpec | None = None
    contains: TextSpec | None = None
    header: HeaderSpec | None = None
    tag: str | Iterable[str] | None = None

    @classmethod
    def from_kwargs(cls, filters: Mapping[str, Any]) -> MailFilter:
        unknown = sorted(set(filters) - set(FILTER_NAMES))
        if unknown:
            valid = ", ".join(FILTER_NAMES)
            raise TypeError(f"unknown mail filter {', '.join(unknown)}; the filters are {valid}")
        return cls(**filters)

    def items(self) -> list[tuple[str, Any]]:
        return [(name, getattr(self, name)) for name in FILTER_NAMES if getattr(self, name) is not None]

    def __str__(self) -> str:
        return ", ".join(f"{name}={_show(spec)}" for name, spec in self.items())

    def matches(self, msg: CapturedMessage) -> bool:
        return not self.mismatches(msg)

    def mismatches(self, msg: CapturedMessage) -> list[str]:
        """One explanation per filter the message fails (with a diff where it helps); empty if it matches."""
        out: list[str] = []
        for name, spec in self.items():
            if name in ("to", "cc", "bcc", "sender"):
                out += self._address_mismatch(name, spec, self._candidates(name, msg))
            elif name == "subject":
                out += self._text_mismatch("subject", spec, [msg.subject])
            elif name == "contains":
                out += self._text_mismatch("contains", spec, [msg.text, msg.html])
            elif name == "tag":
                wanted = [spec] if isinstance(spec, str) else list(spec)
                have = {t.lower() for t in msg.tags}
                out += [f"tag: {w!r} not among {msg.tags!r}" for w in wanted if w.lower() not in have]
            else:
                out += self._header_mismatch(spec, msg)
        return out

    @staticmethod
    def _candidates(name: str, msg: CapturedMessage) -> list[str]:
        if name == "to":
            named = {_address(t) for t in msg.to}
            return [*msg.to, *(a for a in msg.envelope_to if _address(a) not in named)]
        if name == "cc":
            return list(msg.cc)
        if name == "bcc":
            return list(msg.bcc)
        return [a for a in dict.fromkeys([msg.sender, msg.envelope_from]) if a]

    @staticmethod
    def _address_mismatch(name: str, spec: AddressSpec, candidates: list[str]) -> list[str]:
        have = [_address(c) for c in candidates]
        shown = ", ".join(candidates) if candidates else "(none)"
        if isinstance(spec, re.Pattern):
            if any(spec.search(c) for c in candidates):
                return []
            return [f"{name}: no address matches {_show(spec)}; got {shown}"]
        wanted = [spec] if isinstance(spec, str) else list(spec)
        missing = [w for w in wanted if _address(w) not in have]
        if not missing:
            return []
        lines = [f"{name}: {', '.join(map(repr, missing))} not among {shown}"]
        if len(missing) == 1 and len(candidates) == 1:
            lines += _diff(_address(missing[0]), have[0])
        return lines

    @staticmethod
    def _text_mismatch(name: str, spec: TextSpec, bodies: list[str]) -> list[str]:
        if isinstance(spec, re.Pattern):
            if any(spec.search(body) for body in bodies):
                return []
            where = "the subject" if name == "subject" else "the text or HTML part"
            return [f"{name}: {_show(spec)} does not match {where}; got {_excerpt(bodies[0])}"]
        if any(spec in body for body in bodies):
            return []
        if name == "subject":
            return [f"subject: {spec!r} not in {bodies[0]!r}", *_diff(spec, bodies[0])]
        lines = [f"contains: {spec!r} in neither part"]
        lines.append(f"    text: {_excerpt(bodies[0])}" if bodies[0] else "    text: (no text part)")
        lines.append(f"    html: {_excerpt(bodies[1])}" if bodies[1] else "    html: (no HTML part)")
        return lines

    @staticmethod
    def _header_mismatch(spec: HeaderSpec, msg: CapturedMessage) -> list[str]:
        out: list[str] = []
        for name, want in spec.items():
            values = msg.headers.get_all(name)
            if not values:
                present = ", ".join(msg.headers) or "no headers"
                out.append(f"header {name}: missing (the message has {present})")
            elif want is None:
                continue
            elif isinstance(want, re.Pattern):
                if not any(want.search(v) for v in values):
                    out.append(f"header {name}: {_show(want)} does not match {values[0]!r}")
            elif not any(v.strip() == want.strip() for v in values):
                out.append(f"header {name}: expected {want!r}, got {values[0]!r}")
                out += _diff(want, values[0])
        return out
