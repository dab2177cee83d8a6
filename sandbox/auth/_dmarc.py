"""DMARC (RFC 7489): policy discovery in the zone, identifier alignment, the result and the policy asked for."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from publicsuffixlist import PublicSuffixList

from mailsandbox.auth._lookup import LookupFailed, Resolver, txt_records
from mailsandbox.auth.results import DkimResult, DmarcResult, SpfResult

_POLICIES = ("none", "quarantine", "reject")


@dataclass(frozen=True)
class DmarcRecord:
    """The tags that decide a result (RFC 7489 §6.3); reporting tags are not needed here."""

    policy: str
    subdomain_policy: str
    adkim: str = "r"
    aspf: str = "r"
    pct: int = 100


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    return PublicSuffixList()  # the list the package ships: no download


def organizational_domain(domain: str) -> str:
    """RFC 7489 §3.2: the public suffix plus one label (a name under an unknown TLD such as .test
    counts the TLD as its suffix)."""
    domain = domain.lower().rstrip(".")
    return _psl().privatesuffix(domain) or domain


def parse_record(text: str) -> DmarcRecord | None:
    """A v=DMARC1 record's policy tags, or None when it is not one that applies (§6.6.3)."""
    tags: dict[str, str] = {}
    for index, item in enumerate(text.split(";")):
        key, sep, value = item.partition("=")
        key, value = key.strip().lower(), value.strip()
        if index == 0:
            if key != "v" or value != "DMARC1":  # §6.4: v= first, exactly "DMARC1"
                return None
            continue
        if sep and key and key not in tags:
            tags[key] = value
    policy = tags.get("p", "").lower()
    if policy not in _POLICIES:
        # §6.6.3: a record with a bad or missing p= but a rua is treated as p=none; without one it is ignored
        if "rua" not in tags:
            return None
        policy = "none"
    subdomain = tags.get("sp", "").lower()
    pct = tags.get("pct", "100")
    return DmarcRecord(
        policy=policy,
        subdomain_policy=subdomain if subdomain in _POLICIES else policy,
        adkim="s" if tags.get("adkim", "r").lower() == "s" else "r",
        aspf="s" if tags.get("aspf", "r").lower() == "s" else "r",
        pct=min(100, max(0, int(pct))) if pct.isdigit() else 100,
    )


def _discover(zone: Resolver, domain: str) -> tuple[DmarcRecord | None, str]:
    """§6.6.3: the From domain's record, else its organizational domain's; (record, where found)."""
    org = organizational_domain(domain)
    for name in dict.fromkeys((domain, org)):
        records = [r.decode("utf-8", "replace") for r in txt_records(zone, f"_dmarc.{name}")]
        candidates = [r for r in records if r.lstrip().lower().startswith("v=dmarc1")]
        if len(candidates) > 1:
            return None, f"_dmarc.{name} has {len(candidates)} DMARC records"
        if candidates:
            return parse_record(candidates[0]), f"_dmarc.{name}"
    return None, ""


def _aligned(identifier: str, from_domain: str, mode: str) -> bool:
    """§3.1: strict means the same name; relaxed, the same organizational domain."""
    identifier, from_domain = identifier.lower().rstrip("."), from_domain.lower().rstrip(".")
    if mode == "s":
        return identifier == from_domain
    return organizational_domain(identifier) == organizational_domain(from_domain)


def check_dmarc(zone: Resolver, from_domains: Sequence[str], spf: SpfResult, dkim: Sequence[DkimResult]) -> DmarcResult:
    """The DMARC result for the message's From domain (§6.6.2), and the policy its owner asks for."""
    domains = sorted(set(from_domains))
    if not domains:
        return DmarcResult("permerror", "", "", "the message has no From address with a domain")
    if len(domains) > 1:  # §6.6.1: which domain's policy would apply is ambiguous
        return DmarcResult("permerror", "", ",".join(domains), "From holds addresses in several domains")
    domain = domains[0]
    try:
        record, where = _discover(zone, domain)
    except LookupFailed as exc:
        return DmarcResult("temperror", "", domain, str(exc))
    if record is None:
        return DmarcResult("none", "", domain, f"no usable DMARC record ({where})" if where else
                           f"{domain} publishes no DMARC record")  # fmt: skip
    policy = record.policy if where == f"_dmarc.{domain}" else record.subdomain_policy
    dkim_ok = [d.domain for d in dkim if d.result == "pass" and _aligned(d.domain, domain, record.adkim)]
    spf_ok = spf.result == "pass" and _aligned(spf.domain, domain, record.aspf)
    if dkim_ok or spf_ok:
        how = f"DKIM d={dkim_ok[0]}" if dkim_ok else f"SPF {spf.domain}"
        return DmarcResult("pass", policy, domain, f"{how} passed and is aligned with From {domain}")
    return DmarcResult("fail", policy, domain, f"p={policy}: {_why_not(domain, record, spf, dkim)}")


def _why_not(domain: str, record: DmarcRecord, spf: SpfResult, dkim: Sequence[DkimResult]) -> str:
    modes = {"s": "strict", "r": "relaxed"}
    if spf.result != "pass":
        spf_text = f"SPF {spf.result}"
    else:
        spf_text = f"SPF passed for {spf.domain}, not aligned ({modes[record.aspf]}) with From {domain}"
    passed = [d for d in dkim if d.result == "pass"]
    if passed:
        dkim_text = f"DKIM passed for d={passed[0].domain}, not aligned ({modes[record.adkim]}) with From {domain}"
    else:
        dkim_text = "no DKIM signature passed" if dkim else "no DKIM signature"
    return f"{spf_text}; {dkim_text}"
