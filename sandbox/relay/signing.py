"""What a simulated hop does to the message itself: DKIM-sign, ARC-seal, rewrite the body (a list footer).

A hop only prepends header fields and appends to the body, so its work is a prefix and a suffix around
the stored original (Store.deliver's `prefix` and `suffix`); `apply_hops` computes both off the loop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mailsandbox.auth.checks import authenticate
from mailsandbox.auth.keys import SigningError, SigningKey, generate_key
from mailsandbox.models import Envelope
from mailsandbox.zone import Zone

GENERATED_BITS = 2048  # RFC 8301 §3.2's SHOULD; a generated key is made once per configured host


class SignerError(ValueError):
    """A dkim_sign / arc_seal setting that cannot be used."""


@dataclass(frozen=True)
class Signer:
    """A hop's signing identity; `key` (PEM) is generated, and published in the zone, when not given."""

    domain: str
    selector: str
    key: str = ""

    @classmethod
    def from_json(cls, data: Any, what: str) -> Signer | None:
        """{"domain": "list.test", "selector": "arc1", "key": "-----BEGIN ... PEM"} (key optional)."""
        if data is None:
            return None
        if not isinstance(data, Mapping):
            raise SignerError(f'{what} is {{"domain": ..., "selector": ..., "key": PEM (optional)}}')
        items = {str(k).lower(): v for k, v in data.items()}
        unknown = set(items) - {"domain", "selector", "key"}
        if unknown:
            raise SignerError(f"unknown {what} setting(s): {', '.join(sorted(unknown))}")
        domain, selector, key = (str(items.get(k) or "").strip() for k in ("domain", "selector", "key"))
        if not domain or not selector:
            raise SignerError(f"{what} needs a domain and a selector")
        signer = cls(domain.rstrip(".").lower(), selector, key)
        if key:
            signer.signing_key().txt_record  # noqa: B018  - a bad PEM is refused now, not at the first message
        return signer

    def to_json(self) -> dict[str, str]:
        return {"domain": self.domain, "selector": self.selector, "key": self.key}

    def signing_key(self) -> SigningKey:
        try:
            return SigningKey(self.domain, self.selector, self.key.encode())
        except SigningError as exc:
            raise SignerError(str(exc)) from exc

    def with_key(self) -> Signer:
        """This signer, with a new key pair if it had none."""
        if self.key:
            return self
        made = generate_key(self.domain, self.selector, GENERATED_BITS)
        return Signer(self.domain, self.selector, made.private_key.decode())

    def publish(self, zone: Zone) -> None:
        """The public key at selector._domainkey.domain, replacing what was there."""
        self.signing_key().publish(zone)


@dataclass(frozen=True)
class HopWork:
    """What one hop of a delivery does to the message, with what it saw of its client."""

    host: str
    stamp: bytes  # its Received: line
    client_helo: str
    client_address: str
    dkim_sign: Signer | None = None
    arc_seal: Signer | None = None
    rewrite_body: str | None = None

    @property
    def changes_content(self) -> bool:
        return bool(self.dkim_sign or self.arc_seal or self.rewrite_body)


def apply_hops(raw: bytes, sender: str, recipient: str, hops: Sequence[HopWork], zone: Zone) -> tuple[bytes, bytes]:
    """(prefix, suffix) such that prefix + raw + suffix is the message as the last hop passed it on.

    Each hop, in order: stamps its Received: line; as an ARC intermediary (RFC 8617 §5.1) checks what
    arrived; appends its footer; adds its ARC set over the result; then DKIM-signs what it sends.
    """
    message, suffix = raw, b""
    for hop in hops:
        message = hop.stamp + message
        if hop.arc_seal:
            seen = Envelope(mail_from=sender, rcpt_tos=(recipient,), peer=f"{hop.client_address}:25",
                            helo=hop.client_helo)  # fmt: skip
            report = authenticate(zone, message, seen, hop.host)
        if hop.rewrite_body:
            footer = (
                (b"" if message.endswith(b"\r\n") else b"\r\n")
                + hop.rewrite_body.replace("\n", "\r\n").encode()
                + b"\r\n"
            )
            message, suffix = message + footer, suffix + footer
        if hop.arc_seal:
            message = hop.arc_seal.signing_key().seal(message, report)
        if hop.dkim_sign:
            message = hop.dkim_sign.signing_key().sign(message)
    return message[: len(message) - len(raw) - len(suffix)], suffix
