"""A message's authentication results as test code reads them: `msg.auth.dkim == "pass"`, with the reason."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class Verdict(str):
    """An RFC 8601 result word ("pass", "fail", "softfail", "neutral", "none", "temperror",
    "permerror") that also carries why: `.reason`, and the `.domain` it is about."""

    reason: str
    domain: str
    details: Mapping[str, Any]

    def __new__(
        cls, result: str, reason: str = "", domain: str = "", details: Mapping[str, Any] | None = None
    ) -> Verdict:
        verdict = super().__new__(cls, result)
        verdict.reason = reason
        verdict.domain = domain
        verdict.details = dict(details or {})
        return verdict

    def __repr__(self) -> str:
        return f"{str(self)!r} ({self.reason})" if self.reason else repr(str(self))


class AuthResults:
    """SPF, DKIM, DMARC and ARC as the sandbox found them when the message arrived.

    `dkim` is one verdict for the message (pass when any signature passed, else the first one's,
    "none" unsigned); `signatures` has one per DKIM-Signature with `.details["Selector"]`.
    `header` is the Authentication-Results field the sandbox would have added.
    """

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = dict(data)
        spf, dmarc, arc = data.get("SPF") or {}, data.get("DMARC") or {}, data.get("ARC") or {}
        self.spf = Verdict(spf.get("Result", "none"), spf.get("Reason", ""), spf.get("Domain", ""), spf)
        self.signatures = [
            Verdict(d.get("Result", "none"), d.get("Reason", ""), d.get("Domain", ""), d)
            for d in data.get("DKIM") or ()
        ]
        words = [str(s) for s in self.signatures]
        first = next((s for s in self.signatures if s == "pass"), self.signatures[0] if self.signatures else None)
        self.dkim = first if first is not None else Verdict("none", "the message has no DKIM signature")
        if "pass" not in words and first is not None and len(self.signatures) > 1:
            self.dkim = Verdict(str(first), "; ".join(s.reason for s in self.signatures), first.domain, first.details)
        self.dmarc = Verdict(dmarc.get("Result", "none"), dmarc.get("Reason", ""), dmarc.get("Domain", ""), dmarc)
        self.policy: str = str(dmarc.get("Policy", ""))  # what the From domain asks for a failing message
        self.arc = Verdict(arc.get("Result", "none"), arc.get("Reason", ""), "", arc)
        self.header: str = str(data.get("AuthenticationResults", ""))

    def __repr__(self) -> str:
        return f"<AuthResults spf={self.spf!r} dkim={self.dkim!r} dmarc={self.dmarc!r} arc={self.arc!r}>"
