"""The checks' only way to DNS: questions answered from the fake DNS's zone, never from the network."""

from __future__ import annotations

import threading
from typing import Any, Protocol

import dns.rdtypes.ANY.MX
import dns.rdtypes.ANY.PTR
import dns.rdtypes.txtbase
import spf

from mailsandbox.zone import Resolution, Zone, ZoneError

CACHE_SIZE = 4096  # answers kept per zone version (a check asks 4 to 10 questions)


class Resolver(Protocol):
    """What the checks ask of the fake DNS: a Zone, or a CachedZone in front of one."""

    def resolve(self, name: str, rdtype: str) -> Resolution: ...


class CachedZone:
    """The zone's answers, remembered until the zone changes (Zone.version): the same sender's records
    are asked for by every message it sends."""

    def __init__(self, zone: Zone, size: int = CACHE_SIZE) -> None:
        self.zone = zone
        self.size = size
        self._version = -1
        self._answers: dict[tuple[str, str], Resolution] = {}
        self._lock = threading.Lock()

    def resolve(self, name: str, rdtype: str) -> Resolution:
        key = (name.lower().rstrip("."), rdtype.upper())
        version = self.zone.version
        with self._lock:
            if version != self._version or len(self._answers) >= self.size:
                self._answers.clear()
                self._version = version
            found = self._answers.get(key)
        if found is None:
            found = self.zone.resolve(*key)  # a ZoneError is not cached: it is raised each time
            with self._lock:
                if self._version == version:
                    self._answers[key] = found
        return found


class LookupFailed(Exception):
    """A question the zone could not answer at all (a malformed name): a temperror to the caller."""


def txt_records(zone: Resolver, name: str) -> list[bytes]:
    """Every TXT record of `name`, each record's strings joined (RFC 7208 §3.3, RFC 6376 §3.6.2.2)."""
    try:
        found = zone.resolve(name, "TXT")
    except ZoneError as exc:
        raise LookupFailed(str(exc)) from exc
    return [
        b"".join(rdata.strings)
        for rrset in found.answer
        for rdata in rrset
        if isinstance(rdata, dns.rdtypes.txtbase.TXTBase)
    ]


class DkimKeys:
    """dkimpy's `dnsfunc`, remembering how each key lookup went (dkimpy folds a missing key into False)."""

    def __init__(self, zone: Resolver) -> None:
        self.zone = zone
        self.missing: set[str] = set()  # names with no key record: RFC 6376 §6.1.2 PERMFAIL
        self.failed: set[str] = set()  # names the zone could not answer: TEMPFAIL

    def __call__(self, name: bytes, timeout: float = 5) -> bytes | None:
        text = name.decode("ascii", "replace").rstrip(".")
        try:
            records = txt_records(self.zone, text)
        except LookupFailed:
            self.failed.add(text)
            return None
        if not records:
            self.missing.add(text)
            return None
        return records[0]


class ZoneSpfQuery(spf.query):  # type: ignore[misc]  # pyspf has no type hints
    """pyspf's query with its DNS method answered from the zone; pyspf keeps its lookup and void
    limits (RFC 7208 §4.6.4), which count calls to this method."""

    def __init__(self, zone: Resolver, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.zone = zone

    def dns(self, name: str, qtype: str, cnames: Any = None, ignore_void: bool = False) -> list[Any]:
        name = str(name).rstrip(".").lower()
        if not name or any(not 0 < len(label) < 64 for label in name.split(".")):
            return []  # as pyspf does: an invalid name has no records
        try:
            found = self.zone.resolve(name, qtype)
        except ZoneError as exc:
            raise spf.TempError(f"DNS {exc}") from exc
        out: list[Any] = []
        for rrset in found.answer:
            if rrset.rdtype.name != qtype:
                continue  # CNAMEs: the zone followed them already
            for rdata in rrset:
                if isinstance(rdata, dns.rdtypes.txtbase.TXTBase):  # TXT and SPF: the strings, as bytes
                    out.append(list(rdata.strings))
                elif isinstance(rdata, dns.rdtypes.ANY.MX.MX):
                    out.append((rdata.preference, rdata.exchange))
                elif isinstance(rdata, dns.rdtypes.ANY.PTR.PTR):
                    out.append(rdata.target.to_text(True))
                elif hasattr(rdata, "address"):  # A, AAAA
                    out.append(rdata.address)
        if not out and not ignore_void:
            self.void_lookups += 1
            if self.void_lookups > spf.MAX_VOID_LOOKUPS:
                raise spf.PermError(f"Void lookup limit of {spf.MAX_VOID_LOOKUPS} exceeded")
        return out
