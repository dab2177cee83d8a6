"""Recipients of a release, parsed as RFC 5321 paths, and the message made safe for the upstream's DATA.

An upstream MTA may route `evil%attacker.example@mycompany.example` (the percent hack),
`@mycompany.example:evil@attacker.example` (a source route) or `"evil@attacker.example"@mycompany.example`
to attacker.example, though each passes a glob such as `*@mycompany.example`. Those forms, and UUCP bang
paths, are refused unless the settings allow them; the allow-list matches the parsed local part and domain.
Everything here is a single pass over its input.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

# RFC 5321 §4.1.2 atext (via RFC 5322 §3.2.3), plus any non-ASCII character (RFC 6531 §3.3 UTF8-non-ascii).
_ATEXT = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~")
_LDH = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
MAX_PATH = 256  # RFC 5321 §4.5.3.1.3
MAX_LOCAL = 64  # §4.5.3.1.1


class AddressError(ValueError):
    """Not a mailbox (`unusual` False), or one that routes in a way an upstream may honour (True)."""

    def __init__(self, message: str, unusual: bool = False) -> None:
        super().__init__(message)
        self.unusual = unusual


@dataclass(frozen=True)
class Mailbox:
    local: str  # as written: a quoted local part keeps its quotes
    domain: str  # lower-cased
    unusual: tuple[str, ...] = ()  # why an upstream might route it elsewhere

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}"

    def matches(self, pattern: str) -> bool:
        """`pattern` is `localglob@domainglob`, a bare domain glob, or `*`."""
        pattern = pattern.strip().lower()
        if pattern == "*":
            return True
        local, at, domain = pattern.rpartition("@")
        if not at:
            local, domain = "*", pattern
        return fnmatch.fnmatchcase(self.local.lower(), local) and fnmatch.fnmatchcase(self.domain, domain)


def _atom_ok(text: str) -> bool:
    return bool(text) and all(c in _ATEXT or not c.isascii() for c in text)


def _domain_ok(domain: str) -> bool:
    if domain.startswith("["):  # address-literal (§4.1.3): kept opaque, but no brackets or controls inside
        return domain.endswith("]") and all(c.isprintable() and c not in "[]\\ " for c in domain[1:-1])
    labels = domain.split(".")
    for label in labels:
        if not label or label[0] == "-" or label[-1] == "-":
            return False
        if not all(c in _LDH or (not c.isascii() and c.isprintable()) for c in label):
            return False
    return True


def _split_path(text: str) -> str:
    """The path inside `Name <path>` or `<path>`, or the whole text; the display name is skipped with
    its quotes respected."""
    text = text.strip()
    if not text.endswith(">"):
        return text
    quoted = escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "<" and not quoted:
            return text[index + 1 : -1].strip()
    raise AddressError(f"not an address: {text!r}")


def _local_part(path: str) -> tuple[str, int, bool]:
    """(local part, index of the "@" after it, quoted?) of a mailbox."""
    if not path.startswith('"'):
        at = path.rfind("@")
        if at <= 0:
            raise AddressError(f"not an address: {path!r}")
        local = path[:at]
        if not all(_atom_ok(atom) for atom in local.split(".")):  # Dot-string
            raise AddressError(f"not an address: {path!r}")
        return local, at, False
    escaped = False
    for index in range(1, len(path)):  # Quoted-string (§4.1.2)
        char = path[index]
        if escaped:
            if not " " <= char <= "~":
                raise AddressError(f"not an address: {path!r}")
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            if path[index + 1 : index + 2] != "@":
                raise AddressError(f"not an address: {path!r}")
            return path[: index + 1], index + 1, True
        elif not (char.isprintable() and (" " <= char <= "~" or not char.isascii())):
            raise AddressError(f"not an address: {path!r}")
    raise AddressError(f"not an address: {path!r}")


def parse_recipient(text: str) -> Mailbox:
    """An address as the API gives it (`a@b`, `<a@b>`, `Name <a@b>`, with or without a source route)."""
    if any(c in text for c in "\r\n\0"):
        raise AddressError(f"not an address: {text!r}")
    path = _split_path(text)
    if len(path) > MAX_PATH:
        raise AddressError("address too long")
    unusual: list[str] = []
    if path.startswith("@"):  # A-d-l ":" Mailbox (§4.1.2); §3.3: servers SHOULD ignore the route
        route, colon, path = path.partition(":")
        if not colon or not all(hop.startswith("@") and _domain_ok(hop[1:]) for hop in route.split(",")):
            raise AddressError(f"not an address: {text!r}")
        unusual.append("a source route")
    local, at, quoted = _local_part(path)
    domain = path[at + 1 :].lower().rstrip(".")
    if len(local) > MAX_LOCAL or not domain or not _domain_ok(domain):
        raise AddressError(f"not an address: {text!r}")
    if "%" in local:
        unusual.append("the percent hack")
    if "!" in local:
        unusual.append("a bang path")
    if quoted and "@" in local:
        unusual.append("a quoted local part holding '@'")
    return Mailbox(local, domain, tuple(unusual))


def wire_data(raw: bytes) -> bytes:
    """`raw` as SMTP DATA content with its terminator: every line ending (CRLF, bare LF, bare CR) made
    CRLF (RFC 5321 §2.3.8) and lines starting with "." doubled (§4.5.2), so no byte sequence in a captured
    message can end the upstream's DATA early and start a second transaction (SMTP smuggling)."""
    lines = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    stuffed = [b"." + line if line.startswith(b".") else line for line in lines]
    stuffed.append(b".")
    return b"\r\n".join(stuffed) + b"\r\n"
