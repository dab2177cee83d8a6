"""DKIM keys and signing: RSA key pairs, their DNS TXT record, a DKIM-Signature and an ARC set."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailsandbox.auth.results import AuthReport
from mailsandbox.zone import Zone

# RFC 8301 §3.2: signers use at least 1024-bit keys and SHOULD use 2048.
DEFAULT_BITS = 2048
# What a sending application typically signs (RFC 6376 §5.4.1's recommendations).
SIGNED_HEADERS = ("from", "to", "cc", "subject", "date", "message-id", "reply-to", "mime-version",
                  "content-type", "content-transfer-encoding")  # fmt: skip


class SigningError(ValueError):
    """A key or signing setting that cannot be used (bad PEM, missing domain or selector)."""


@dataclass(frozen=True)
class SigningKey:
    """A DKIM signing identity: domain (d=), selector (s=) and the PEM private key."""

    domain: str
    selector: str
    private_key: bytes  # PEM

    @property
    def record_name(self) -> str:
        """Where the public key lives (RFC 6376 §3.6.2.1)."""
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def txt_record(self) -> str:
        """The key record (RFC 6376 §3.6.1) for `record_name`."""
        try:
            key = serialization.load_pem_private_key(self.private_key, password=None)
        except (ValueError, TypeError) as exc:
            raise SigningError(f"not a PEM private key: {exc}") from exc
        der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"

    def publish(self, zone: Zone) -> None:
        """Put the public key into the fake DNS (replacing an older key at the same name)."""
        record = self.txt_record
        zone.remove_record(self.record_name, "TXT")
        zone.add_record(self.record_name, "TXT", record, ttl=300)

    def sign(self, raw: bytes, headers: tuple[str, ...] = SIGNED_HEADERS) -> bytes:
        """The message with a DKIM-Signature prepended (relaxed/relaxed, rsa-sha256)."""
        present = {name.lower() for name in _header_names(raw)}
        chosen = [h for h in headers if h in present or h == "from"]
        try:
            field = dkim.sign(
                raw, self.selector.encode(), self.domain.encode(), self.private_key,
                canonicalize=(b"relaxed", b"relaxed"), include_headers=[h.encode() for h in chosen],
            )  # fmt: skip
        except dkim.DKIMException as exc:
            raise SigningError(str(exc)) from exc
        return bytes(field) + raw

    def seal(self, raw: bytes, report: AuthReport) -> bytes:
        """As an ARC intermediary (RFC 8617 §5.1): record `report` (what this hop found when the message
        arrived, before any change it made) in an Authentication-Results field, and add the next ARC set."""
        authserv_id = report.authserv_id
        stamped = f"Authentication-Results: {report.header_value()}\r\n".encode() + raw
        present = {name.lower() for name in _header_names(stamped)}
        chosen = [h.encode() for h in SIGNED_HEADERS if h in present or h == "from"]
        try:
            fields = dkim.arc_sign(
                stamped, self.selector.encode(), self.domain.encode(), self.private_key,
                authserv_id.encode(), include_headers=chosen,
            )  # fmt: skip
        except dkim.DKIMException as exc:
            raise SigningError(str(exc)) from exc
        return b"".join(fields) + stamped


def generate_key(domain: str, selector: str, bits: int = DEFAULT_BITS) -> SigningKey:
    """A new RSA key pair for (domain, selector)."""
    if not domain or not selector:
        raise SigningError("a signing key needs a domain and a selector")
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    return SigningKey(domain.lower().rstrip("."), selector, pem)


def _header_names(raw: bytes) -> list[str]:
    end = raw.find(b"\r\n\r\n")
    head = raw[: end if end >= 0 else len(raw)]
    return [
        line.split(b":", 1)[0].strip().decode("ascii", "replace")
        for line in head.split(b"\r\n")
        if line and line[:1] not in (b" ", b"\t") and b":" in line
    ]
