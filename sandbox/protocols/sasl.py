"""Server side of the SASL mechanisms SMTP and POP3 offer (RFC 4422): PLAIN (RFC 4616), LOGIN, CRAM-MD5 (RFC 2195)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5")


@dataclass(frozen=True)
class Challenge:
    """Send this (base64, possibly empty) after the protocol's continuation prefix; then call `step`."""

    data: bytes


@dataclass(frozen=True)
class Proof:
    """The client named `user`; `check(stored_secret)` says whether it proved knowing that secret."""

    user: str
    check: Callable[[str], bool]


@dataclass(frozen=True)
class Failed:
    """`cancelled` (the client sent "*", RFC 4422 §3.5), `malformed` (bad base64 or shape), `rejected`."""

    reason: str


Step = Challenge | Proof | Failed


def _matches(password: str) -> Callable[[str], bool]:
    return lambda secret: hmac.compare_digest(secret.encode(), password.encode())


def _encode(text: str) -> bytes:
    return base64.b64encode(text.encode())


class SaslServer:
    """One exchange. `start` with the initial response ("" if none), then `step` with each client line."""

    def __init__(self, mechanism: str, hostname: str, challenge: str | None = None) -> None:
        if mechanism not in MECHANISMS:
            raise ValueError(f"unsupported SASL mechanism {mechanism!r}")
        self.mechanism = mechanism
        self._hostname = hostname
        self._user: str | None = None  # LOGIN: the user name, once given
        self._challenge = challenge or ""  # CRAM-MD5; made unique per exchange unless a test fixes it

    def start(self, initial: str) -> Step:
        if self.mechanism == "CRAM-MD5":
            if initial:  # RFC 2195 §2: the server speaks first
                return Failed("malformed")
            if not self._challenge:
                self._challenge = f"<{secrets.token_hex(8)}@{self._hostname}>"
            return Challenge(_encode(self._challenge))
        if not initial:
            return Challenge(b"" if self.mechanism == "PLAIN" else _encode("Username:"))
        return self.step(initial)

    def step(self, answer: str) -> Step:
        answer = answer.strip()
        if answer == "*":
            return Failed("cancelled")
        try:
            decoded = b"" if answer == "=" else base64.b64decode(answer, validate=True)
            text = decoded.decode("utf-8")
        except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
            return Failed("malformed")
        if self.mechanism == "PLAIN":
            parts = text.split("\0")
            if len(parts) != 3:
                return Failed("malformed")
            authzid, user, password = parts
            # RFC 4616 §2: acting as someone else is not offered.
            if not user or (authzid and authzid.strip().lower() != user.strip().lower()):
                return Failed("rejected")
            return Proof(user, _matches(password))
        if self.mechanism == "LOGIN":
            if self._user is None:
                self._user = text
                return Challenge(_encode("Password:"))
            return Proof(self._user, _matches(text)) if self._user else Failed("rejected")
        user, _, digest = text.rpartition(" ")  # RFC 2195 §2: "user hex-digest"
        challenge = self._challenge.encode()

        def check(secret: str) -> bool:
            expected = hmac.new(secret.encode(), challenge, hashlib.md5).hexdigest()
            return hmac.compare_digest(expected, digest.lower())

        return Proof(user, check) if user else Failed("rejected")
