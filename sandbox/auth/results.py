"""What the authentication checks found: one result per method, as JSON and as an RFC 8601 header."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

# RFC 8601 §2.7: the result words; each method uses the ones its own RFC gives it.
RESULTS = ("pass", "fail", "softfail", "neutral", "none", "temperror", "permerror", "policy")
METHODS = ("spf", "dkim", "dmarc", "arc")


@dataclass(frozen=True)
class SpfResult:
    result: str
    domain: str = ""  # the identity checked: the MAIL FROM domain, or the HELO name for a null sender
    client_ip: str = ""
    reason: str = ""
    identity: str = "mailfrom"  # "mailfrom" or "helo" (RFC 7208 §2.4)


@dataclass(frozen=True)
class DkimResult:
    result: str
    domain: str = ""  # d=
    selector: str = ""  # s=
    reason: str = ""
    signature: str = ""  # the first characters of b=, for header.b (RFC 6008)


@dataclass(frozen=True)
class DmarcResult:
    result: str
    policy: str = ""  # none, quarantine, reject: what the domain asks for a failing message
    domain: str = ""  # the RFC 5322.From domain
    reason: str = ""


@dataclass(frozen=True)
class ArcResult:
    result: str
    reason: str = ""


@dataclass(frozen=True)
class AuthReport:
    """Every method's verdict on one message, as the receiving server `authserv_id` saw it."""

    authserv_id: str
    spf: SpfResult
    dkim: tuple[DkimResult, ...] = field(default_factory=tuple)
    dmarc: DmarcResult = DmarcResult("none")
    arc: ArcResult = ArcResult("none")

    @property
    def dkim_result(self) -> str:
        """One word for all signatures: pass if any passed, else the first one's, none without any."""
        words = [d.result for d in self.dkim]
        return "pass" if "pass" in words else (words[0] if words else "none")

    def summary(self) -> dict[str, str]:
        """method -> result word (what search filters on)."""
        return {"spf": self.spf.result, "dkim": self.dkim_result, "dmarc": self.dmarc.result, "arc": self.arc.result}

    def header_value(self) -> str:
        """The Authentication-Results field body (RFC 8601 §2.2), without the field name."""
        spf = self.spf
        items = [f"spf={spf.result}{_reason(spf)} smtp.{spf.identity}={_value(spf.domain or 'unknown')}"]
        if not self.dkim:
            items.append("dkim=none")
        for sig in self.dkim:
            item = f"dkim={sig.result}{_reason(sig)}"
            if sig.domain:
                item += f" header.d={_value(sig.domain)}"
            if sig.selector:
                item += f" header.s={_value(sig.selector)}"
            if sig.signature:
                item += f" header.b={_value(sig.signature)}"
            items.append(item)
        dmarc = self.dmarc
        policy = f" (p={dmarc.policy})" if dmarc.policy else ""
        items.append(f"dmarc={dmarc.result}{policy}{_reason(dmarc)}"
                     + (f" header.from={_value(dmarc.domain)}" if dmarc.domain else ""))  # fmt: skip
        items.append(f"arc={self.arc.result}{_reason(self.arc)}")
        return "; ".join([_value(self.authserv_id), *items])

    def to_json(self) -> dict[str, Any]:
        """The stored form (every field, snake case); web/schema.py shapes the API's."""
        return {
            "authserv_id": self.authserv_id,
            "spf": asdict(self.spf),
            "dkim": [asdict(d) for d in self.dkim],
            "dmarc": asdict(self.dmarc),
            "arc": asdict(self.arc),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AuthReport:
        return cls(
            authserv_id=str(data.get("authserv_id", "")),
            spf=SpfResult(**data["spf"]),
            dkim=tuple(DkimResult(**d) for d in data.get("dkim", ())),
            dmarc=DmarcResult(**data["dmarc"]),
            arc=ArcResult(**data["arc"]),
        )


def _reason(result: SpfResult | DkimResult | DmarcResult | ArcResult) -> str:
    # RFC 8601 §2.2 reasonspec; a pass needs no explaining
    if not result.reason or result.result in ("pass", "none"):
        return ""
    return f' reason="{_quoted(result.reason)}"'


def _quoted(text: str) -> str:
    """Text as the inside of an RFC 5322 quoted-string: one line, backslash and quote escaped."""
    flat = " ".join(text.split())
    return flat.replace("\\", "\\\\").replace('"', '\\"')


def _value(text: str) -> str:
    """A pvalue or authserv-id: a token when it is one, else a quoted string (RFC 2045 §5.1 tspecials)."""
    if text and all(c.isascii() and c.isprintable() and c not in ' ()<>,;:\\"/[]?=' for c in text):
        return text
    return f'"{_quoted(text)}"'
