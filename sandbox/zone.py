"""Fake DNS: zones in zone-file syntax (dnspython), catch-all or strict, MX as the relay sees it."""

from __future__ import annotations

import bisect
import dataclasses
import ipaddress
import math
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.name
import dns.node
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.MX
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.SOA
import dns.rdtypes.ANY.SPF
import dns.rdtypes.ANY.TXT
import dns.rrset
import dns.tokenizer
import dns.zone
import dns.zonefile
from dns.rdatatype import RdataType

IN = dns.rdataclass.IN
MAX_CHAIN = 16  # CNAME hops followed before giving up (loop-safe)
SYNTH_TTL = 60  # catch-all answers: short, since the zone changes at run time
MAX_TTL = 2**31 - 1  # RFC 2181 §8: a TTL is an unsigned value below 2^31
DEFAULT_TTL = 300  # records in a zone file with no $TTL (and none of their own): the API's default
_ADDRESS_TYPES = (RdataType.A, RdataType.AAAA)
_ORIGIN_RE = re.compile(r"^\$ORIGIN[ \t]+(\S+)", re.IGNORECASE)
_TTL_RE = re.compile(r"^\$TTL[ \t]", re.IGNORECASE)

NameLike = str | dns.name.Name
TypeLike = str | int


class ZoneError(ValueError):
    """A zone file or record that cannot be parsed or stored."""


@dataclass(frozen=True)
class Resolution:
    """What a query for (name, rdtype) yields; answers are the presentation-format rdata at chain end."""

    name: str
    rdtype: str
    rcode: str  # "NOERROR" or "NXDOMAIN"
    answers: list[str] = field(default_factory=list)
    cnames: list[str] = field(default_factory=list)  # CNAME targets followed, in order
    authoritative: bool = False  # the query name lies in one of our zones (or is self_host)
    answer: list[dns.rrset.RRset] = field(default_factory=list)  # answer section: CNAMEs, then data
    authority: list[dns.rrset.RRset] = field(default_factory=list)
    additional: list[dns.rrset.RRset] = field(default_factory=list)


@dataclass(frozen=True)
class MxResult:
    """The delivery view of a domain (RFC 5321 §5.1): hosts by ascending preference, ties in zone order."""

    domain: str
    hosts: list[tuple[int, str]] = field(default_factory=list)
    null_mx: bool = False  # RFC 7505: the domain accepts no mail
    implicit: bool = False  # no MX, but the domain has an address: it is its own MX
    nxdomain: bool = False


@dataclass(frozen=True)
class ZoneSnapshot:
    """An opaque copy of every zone plus the mode; hand it back to Zone.restore()."""

    zones: dict[dns.name.Name, dns.zone.Zone]
    implicit: frozenset[dns.name.Name]
    strict: bool


@dataclass
class _Step:
    kind: str  # "data", "cname", "nodata", "nxdomain"
    rrsets: list[dns.rrset.RRset]
    authoritative: bool
    soa: dns.rrset.RRset | None = None


def _name(name: NameLike) -> dns.name.Name:
    """Every name is absolute: "example.test" and "example.test." are the same domain."""
    if isinstance(name, dns.name.Name):
        return name if name.is_absolute() else name.concatenate(dns.name.root)
    try:
        return dns.name.from_text(name.strip(), origin=dns.name.root)
    except (dns.exception.DNSException, UnicodeError, ValueError) as exc:
        raise ZoneError(f"bad domain name {name!r}: {exc}") from exc


def _rdtype(rdtype: TypeLike) -> RdataType:
    try:
        return RdataType.make(rdtype.upper() if isinstance(rdtype, str) else rdtype)
    except (dns.exception.DNSException, ValueError) as exc:
        raise ZoneError(f"unknown record type {rdtype!r}") from exc


def _text(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True)


def _copy(zone: dns.zone.Zone) -> dns.zone.Zone:
    # Rdata are immutable, so copying the rdatasets is a full, independent copy.
    new = dns.zone.Zone(_origin(zone), IN, relativize=False)
    for name, node in zone.nodes.items():
        for rds in node.rdatasets:
            new.replace_rdataset(name, rds.copy())
    return new


def _rrset(owner: dns.name.Name, rds: dns.rdataset.Rdataset) -> dns.rrset.RRset:
    return dns.rrset.from_rdata_list(owner, rds.ttl, list(rds))


def _origin(zone: dns.zone.Zone) -> dns.name.Name:
    assert zone.origin is not None  # every zone we hold was built with an origin
    return zone.origin


def _shift_line(message: str, filename: str, offset: int) -> str:
    """dnspython's "file:LINE: ..." with LINE counted from the start of the file instead of the piece."""
    found = re.match(rf"{re.escape(filename)}:(\d+):", message)
    if found is None:
        return message
    return f"{filename}:{int(found.group(1)) + offset}:" + message[found.end() :]


class _Tokenizer(dns.tokenizer.Tokenizer):
    """Remembers the line of the last token that was not an end of line. dnspython reports the line it has
    reached: it counts a newline when it reads it, even one it puts back as the end of a token."""

    content_line = 1

    def get(self, want_leading: bool = False, want_comment: bool = False) -> dns.tokenizer.Token:
        token = super().get(want_leading, want_comment)
        if not token.is_eol_or_eof():
            self.content_line = self.line_number - (self.ungotten_char == "\n")
        return token


def _read_zone(text: str, origin: dns.name.Name | None, filename: str) -> dns.zone.Zone:
    """dns.zone.from_text, but errors carry the line of the record at fault, and no $TTL means DEFAULT_TTL."""
    zone = dns.zone.Zone(origin, IN, relativize=False)
    tok = _Tokenizer(text, filename)
    try:
        with zone.writer(True) as txn:
            dns.zonefile.Reader(tok, IN, txn, default_ttl=DEFAULT_TTL).read()
    except dns.exception.SyntaxError as exc:
        detail = re.sub(rf"^{re.escape(filename)}:\d+: ", "", str(exc)).rstrip(".")
        # dnspython's words ("Text input is malformed") rarely say which part: show the line itself
        lines = text.splitlines()
        if 0 < tok.content_line <= len(lines) and (line := lines[tok.content_line - 1].strip()):
            detail += f" in {line[:80]!r}"
        raise ZoneError(f"{filename}:{tok.content_line}: {detail}") from None
    return zone


def _check_ttls(zone: dns.zone.Zone) -> None:
    for name, node in zone.nodes.items():
        for rds in node.rdatasets:
            if rds.ttl > MAX_TTL:
                raise ZoneError(f"{_text(name)} {rds.rdtype.name}: TTL {rds.ttl} is over {MAX_TTL} (RFC 2181 §8)")


def _target(rrset: dns.rrset.RRset, index: int = 0) -> dns.name.Name:
    """The name a CNAME, MX or NS record points at."""
    rdata = list(rrset)[index]
    if isinstance(rdata, dns.rdtypes.ANY.MX.MX):
        return rdata.exchange
    assert isinstance(rdata, dns.rdtypes.ANY.CNAME.CNAME | dns.rdtypes.ANY.NS.NS)
    return rdata.target


def _paren_delta(line: str) -> int:
    """How a line changes the parenthesis depth, ignoring quoted text and comments."""
    depth, quoted, escaped = 0, False, False
    for char in line:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif char == ";":
            break
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
    return depth


def check_ttl(ttl: object) -> int:
    """A TTL as an int, or ZoneError: whole numbers from 0 to 2^31-1 only (RFC 2181 §8), so 1e400,
    NaN, -1 or 2^31 are refused with a clear message instead of failing somewhere later."""
    if isinstance(ttl, bool) or not isinstance(ttl, int | float):
        raise ZoneError(f"TTL must be a whole number of seconds, not {ttl!r}")
    if isinstance(ttl, float):
        if not math.isfinite(ttl) or not ttl.is_integer():
            raise ZoneError(f"TTL must be a whole number of seconds, not {ttl!r}")
        ttl = int(ttl)
    if not 0 <= ttl <= MAX_TTL:
        raise ZoneError(f"TTL {ttl} is out of range: 0 to {MAX_TTL} seconds (RFC 2181 §8)")
    return ttl


def _split_zones(text: str, origin: dns.name.Name | None) -> list[tuple[dns.name.Name | None, int, str]]:
    """One text may hold several zones: an $ORIGIN outside the current zone starts a new one.

    dnspython alone would silently drop such records. Each piece is (origin, line offset, text): its
    own lines, after the last $TTL before it (which still applies); the offset maps the piece's line
    numbers back to the file's. Linear in the text, however many zones and $TTLs it holds.
    """
    lines = text.splitlines()
    bounds: list[tuple[dns.name.Name | None, int]] = [(origin, 0)]
    ttls: list[int] = []
    current, depth = origin, 0
    for index, line in enumerate(lines):
        if depth == 0 and (match := _ORIGIN_RE.match(line)):
            try:
                new = dns.name.from_text(match.group(1), origin=current or dns.name.root)
            except dns.exception.DNSException as exc:
                raise ZoneError(f"line {index + 1}: bad $ORIGIN: {exc}") from exc
            zone_origin = bounds[-1][0]
            if zone_origin is None:
                bounds[-1] = (new, bounds[-1][1])
            elif not new.is_subdomain(zone_origin):
                bounds.append((new, index))
            current = new
        elif depth == 0 and _TTL_RE.match(line):
            ttls.append(index)
        depth = max(0, depth + _paren_delta(line))
    out: list[tuple[dns.name.Name | None, int, str]] = []
    for i, (piece_origin, begin) in enumerate(bounds):
        end = bounds[i + 1][1] if i + 1 < len(bounds) else len(lines)
        before = bisect.bisect_left(ttls, begin)  # ttls is in file order
        head = [lines[ttls[before - 1]]] if before else []
        out.append((piece_origin, begin - len(head), "\n".join(head + lines[begin:end]) + "\n"))
    return out


class Zone:
    """The fake DNS: zones loaded from files or text, edited at run time, shared by DNS server and relay.

    Catch-all mode (default): a name in no zone resolves to the sandbox itself (MX 10 self_host,
    A/AAAA self_addresses), without the AA bit. Strict mode: such names are NXDOMAIN.
    ``self_host`` always resolves to ``self_addresses``. Thread-safe.
    """

    def __init__(
        self,
        strict: bool = False,
        self_host: str = "mailsandbox.local",
        self_addresses: Sequence[str] = ("127.0.0.1",),
    ) -> None:
        self._strict = strict
        self._version = 0
        self.self_host = _name(self_host)
        self.self_addresses = [ipaddress.ip_address(a) for a in self_addresses]
        self._lock = threading.RLock()
        self._zones: dict[dns.name.Name, dns.zone.Zone] = {}
        self._implicit: set[dns.name.Name] = set()  # zones made by add_record, dropped when emptied
        self._base = self.snapshot()

    @property
    def strict(self) -> bool:
        """Strict mode: names in no zone are NXDOMAIN. Settable at run time."""
        return self._strict

    @strict.setter
    def strict(self, value: bool) -> None:
        with self._lock:
            self._strict = bool(value)
            self._version += 1

    @property
    def version(self) -> int:
        """A counter that moves on every change (loads, edits, mode, restore): a cache key for callers."""
        return self._version

    @classmethod
    def from_files(
        cls,
        paths: Iterable[str | Path],
        strict: bool = False,
        self_host: str = "mailsandbox.local",
        self_addresses: Sequence[str] = ("127.0.0.1",),
    ) -> Zone:
        zone = cls(strict, self_host, self_addresses)
        for path in paths:
            zone.load_file(path)
        return zone

    # -- loading and editing -------------------------------------------------------------

    def load_file(self, path: str | Path) -> list[str]:
        """Load a zone file; its zones become part of what reset() returns to.

        The origin is the file's $ORIGIN, else the file name without a ".zone" suffix.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ZoneError(
                f"zone file {path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start});"
                " save it as UTF-8 or plain ASCII"
            ) from exc
        except IsADirectoryError as exc:
            raise ZoneError(f"zone file {path}: is a directory; --zone takes a zone file") from exc
        except OSError as exc:  # missing, not readable by this user, ...
            raise ZoneError(f"zone file {path}: cannot be read ({exc.strerror or exc})") from exc
        with self._lock:
            origins = self.load_text(text, path.name.removesuffix(".zone"), _file=path)
            # the mode stays the configured one, even if it was switched at run time
            self._base = dataclasses.replace(self.snapshot(), strict=self._base.strict)
        return origins

    def load_text(self, text: str, origin: str | None = None, *, _file: Path | None = None) -> list[str]:
        """Parse zone-file text and add (or replace) its zones; returns their origins.

        Without $ORIGIN, ``origin`` names the zone. A missing SOA/NS is synthesized.
        """
        where = f"{_file}: " if _file else ""
        if origin is None and not re.search(r"^\$ORIGIN", text, re.MULTILINE | re.IGNORECASE):
            raise ZoneError(f"{where}zone text has no $ORIGIN and no origin was given")
        parsed: list[dns.zone.Zone] = []
        filename = str(_file or "<text>")
        for piece_origin, offset, piece in _split_zones(text, _name(origin) if origin else None):
            try:
                zone = _read_zone(piece, piece_origin, filename)
                _check_ttls(zone)
            except (dns.exception.DNSException, UnicodeError, ValueError) as exc:
                # dnspython's syntax errors name the file and the piece's line: make it the file's line
                message = _shift_line(str(exc), filename, offset)
                raise ZoneError(message if message.startswith(str(_file)) else where + message) from exc
            if zone.nodes:  # a piece with no records (only comments or a leading $ORIGIN) is no zone
                self._complete(zone)
                parsed.append(zone)
        with self._lock:
            for zone in parsed:
                self._zones[_origin(zone)] = zone
                self._version += 1
                self._implicit.discard(_origin(zone))
        return [_text(_origin(z)) for z in parsed]

    def _complete(self, zone: dns.zone.Zone) -> None:
        """Give a zone the SOA and NS a hand-written file may omit (for NXDOMAIN/NODATA authority)."""
        origin = _origin(zone)
        host = self.self_host.to_text()
        if zone.get_rdataset(origin, RdataType.SOA) is None:
            soa = f"{host} hostmaster.{origin.to_text()} 1 3600 600 86400 {SYNTH_TTL}"
            zone.replace_rdataset(origin, dns.rdataset.from_text(IN, RdataType.SOA, 3600, soa))
        if zone.get_rdataset(origin, RdataType.NS) is None:
            zone.replace_rdataset(origin, dns.rdataset.from_text(IN, RdataType.NS, 3600, host))

    def _parse_rdata(self, rdtype: RdataType, value: str) -> dns.rdata.Rdata:
        try:
            if rdtype in (RdataType.TXT, RdataType.SPF) and not value.lstrip().startswith('"'):
                # API callers write v=spf1 ... unquoted: one text in 255-byte strings (RFC 1035 §3.3.14)
                raw = value.encode()
                chunks = [raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""]
                kind = dns.rdtypes.ANY.TXT.TXT if rdtype == RdataType.TXT else dns.rdtypes.ANY.SPF.SPF
                return kind(IN, rdtype, chunks)
            return dns.rdata.from_text(IN, rdtype, value, origin=dns.name.root, relativize=False)
        except (dns.exception.DNSException, UnicodeError, ValueError) as exc:
            raise ZoneError(f"bad {rdtype.name} value {value!r}: {exc}") from exc

    def add_record(self, name: str, rdtype: str, value: str, ttl: int = 300) -> None:
        """Add one record. A name in no loaded zone gets an overlay: it answers the records added
        for it, and every other question about it answers as before (catch-all or strict)."""
        owner, kind = _name(name), _rdtype(rdtype)
        rdata = self._parse_rdata(kind, value)
        ttl = check_ttl(ttl)
        with self._lock:
            zone = self._zone_for(owner)
            if zone is None:
                zone = dns.zone.Zone(owner, IN, relativize=False)  # no SOA: it claims no authority
                self._zones[owner] = zone
                self._implicit.add(owner)
            node = zone.get_node(owner)
            if node is not None:
                kinds = {rds.rdtype for rds in node.rdatasets} - {RdataType.RRSIG, RdataType.NSEC}
                if (kind == RdataType.CNAME and kinds - {RdataType.CNAME}) or (
                    kind != RdataType.CNAME and RdataType.CNAME in kinds
                ):
                    raise ZoneError(f"{_text(owner)}: a CNAME cannot sit with other data (RFC 1034 §3.6.2)")
            rds = zone.find_rdataset(owner, kind, create=True)
            rds.add(rdata)
            rds.ttl = ttl  # RFC 2181 §5.2: one TTL per RRset, the latest wins
            self._bump(zone)

    def remove_record(self, name: str, rdtype: str, value: str | None = None) -> int:
        """Remove the matching records (all of that type when value is None); returns how many."""
        owner, kind = _name(name), _rdtype(rdtype)
        rdata = self._parse_rdata(kind, value) if value is not None else None
        with self._lock:
            zone = self._zone_for(owner)
            rds = zone.get_rdataset(owner, kind) if zone else None
            if zone is None or rds is None:
                return 0
            doomed = [r for r in rds if rdata is None or r == rdata]
            if not doomed:
                return 0
            kept = [r for r in rds if r not in doomed]
            if kept:
                zone.replace_rdataset(owner, dns.rdataset.from_rdata_list(rds.ttl, kept))
            else:
                zone.delete_rdataset(owner, kind)
            self._bump(zone)
            if _origin(zone) in self._implicit and not zone.nodes:
                del self._zones[_origin(zone)]  # back to catch-all/strict behaviour for that name
                self._implicit.discard(_origin(zone))
            return len(doomed)

    def _bump(self, zone: dns.zone.Zone) -> None:
        self._version += 1
        # A changed zone gets the next SOA serial, as a real primary would (RFC 1035 §3.3.13).
        rds = zone.get_rdataset(_origin(zone), RdataType.SOA)
        if rds is not None and rds.rdtype == RdataType.SOA:
            old = next(iter(rds))
            assert isinstance(old, dns.rdtypes.ANY.SOA.SOA)
            zone.replace_rdataset(
                _origin(zone), dns.rdataset.from_rdata(rds.ttl, old.replace(serial=(old.serial + 1) % 2**32))
            )

    def remove_zone(self, origin: str) -> bool:
        with self._lock:
            self._implicit.discard(_name(origin))
            self._version += 1
            return self._zones.pop(_name(origin), None) is not None

    def zones(self) -> list[str]:
        with self._lock:
            return sorted(_text(o) for o in self._zones)

    def records(self) -> list[dict[str, object]]:
        """Every record, JSON-ready: zone, name, type, ttl, value (presentation format)."""
        out: list[dict[str, object]] = []
        with self._lock:
            for origin in sorted(self._zones):
                for owner, rds in self._zones[origin].iterate_rdatasets():
                    out.extend(
                        {
                            "zone": _text(origin),
                            "name": _text(owner),
                            "type": rds.rdtype.name,
                            "ttl": rds.ttl,
                            "value": r.to_text(),
                        }
                        for r in rds
                    )
        return sorted(out, key=lambda r: (str(r["zone"]), str(r["name"]), str(r["type"])))

    def snapshot(self) -> ZoneSnapshot:
        with self._lock:
            zones = {o: _copy(z) for o, z in self._zones.items()}
            return ZoneSnapshot(zones, frozenset(self._implicit), self._strict)

    def restore(self, snapshot: ZoneSnapshot) -> None:
        with self._lock:
            self._zones = {o: _copy(z) for o, z in snapshot.zones.items()}
            self._implicit = set(snapshot.implicit)
            self._strict = snapshot.strict
            self._version += 1

    def reset(self) -> None:
        """Back to what the zone files held, undoing run-time loads and edits."""
        self.restore(self._base)

    # -- lookups -------------------------------------------------------------------------

    def _zones_for(self, name: dns.name.Name) -> list[dns.zone.Zone]:
        """The zones holding name, innermost first."""
        candidates = (name, *(name.split(i)[1] for i in range(len(name) - 1, 0, -1)))
        return [self._zones[c] for c in candidates if c in self._zones]

    def _zone_for(self, name: dns.name.Name) -> dns.zone.Zone | None:
        zones = self._zones_for(name)
        return zones[0] if zones else None

    def _synth(self, owner: dns.name.Name, rdtype: RdataType, values: Iterable[str]) -> list[dns.rrset.RRset]:
        values = list(values)
        return [dns.rrset.from_text_list(owner, SYNTH_TTL, IN, rdtype, values)] if values else []

    def _self_addresses(self, owner: dns.name.Name, rdtype: RdataType) -> list[dns.rrset.RRset]:
        version = 4 if rdtype == RdataType.A else 6
        return self._synth(owner, rdtype, (str(a) for a in self.self_addresses if a.version == version))

    def _step(self, name: dns.name.Name, rdtype: RdataType) -> _Step:
        """One name, no CNAME following: data, a CNAME, NODATA or NXDOMAIN."""
        if name == self.self_host and rdtype in _ADDRESS_TYPES:
            return _Step("data" if (s := self._self_addresses(name, rdtype)) else "nodata", s, True)
        exists = False
        for zone in self._zones_for(name):
            step = self._in_zone(zone, name, rdtype)
            if _origin(zone) not in self._implicit or step.kind in ("data", "cname"):
                return step
            # A zone made by add_record only overlays what lies beneath: the rest answers as before.
            exists = exists or step.kind == "nodata"
        step = self._outside(name, rdtype)
        if step.kind == "nxdomain" and (exists or name == self.self_host):
            return _Step("nodata", [], False)  # the name exists, just not with this type
        return step

    def _in_zone(self, zone: dns.zone.Zone, name: dns.name.Name, rdtype: RdataType) -> _Step:
        soa_rds = zone.get_rdataset(_origin(zone), RdataType.SOA)
        soa = None
        if soa_rds is not None:
            soa = _rrset(_origin(zone), soa_rds)
            soa.ttl = min(soa.ttl, next(iter(soa_rds)).minimum)  # RFC 2308 §3: negative TTL
        node = zone.get_node(name)
        if node is None:
            node = self._wildcard(zone, name)
        if node is None:
            exists = any(n.is_subdomain(name) for n in zone.nodes)  # empty non-terminal: NODATA
            return _Step("nodata" if exists else "nxdomain", [], True, soa)
        if rdtype == RdataType.ANY:
            found = [_rrset(name, rds) for rds in node.rdatasets]
            return _Step("data" if found else "nodata", found, True, soa)
        rds = node.get_rdataset(IN, rdtype)
        if rds is not None:
            return _Step("data", [_rrset(name, rds)], True, soa)
        cname = node.get_rdataset(IN, RdataType.CNAME)
        if cname is not None:
            return _Step("cname", [_rrset(name, cname)], True, soa)
        return _Step("nodata", [], True, soa)

    def _wildcard(self, zone: dns.zone.Zone, name: dns.name.Name) -> dns.node.Node | None:
        # RFC 4592 §3.3.1: the closest existing ancestor decides; its "*" child, if any, answers.
        ancestor = name.parent()
        while ancestor.is_subdomain(_origin(zone)):
            wild = zone.get_node(dns.name.Name((b"*", *ancestor.labels)))
            if wild is not None:
                return wild
            if zone.get_node(ancestor) is not None or ancestor == _origin(zone):
                return None
            ancestor = ancestor.parent()
        return None

    def _outside(self, name: dns.name.Name, rdtype: RdataType) -> _Step:
        """A name in no zone: strict NXDOMAIN; catch-all answers with the sandbox itself."""
        if rdtype == RdataType.PTR:
            if any(name == dns.name.from_text(a.reverse_pointer + ".") for a in self.self_addresses):
                return _Step("data", self._synth(name, rdtype, [self.self_host.to_text()]), False)
        if self._strict or name.is_subdomain(dns.name.from_text("arpa.")) or name == dns.name.root:
            return _Step("nxdomain", [], False)
        rrsets: list[dns.rrset.RRset] = []
        if rdtype in (RdataType.MX, RdataType.ANY):
            rrsets += self._synth(name, RdataType.MX, [f"10 {self.self_host.to_text()}"])
        for kind in _ADDRESS_TYPES:
            if rdtype in (kind, RdataType.ANY):
                rrsets += self._self_addresses(name, kind)
        return _Step("data" if rrsets else "nodata", rrsets, False)

    def resolve(self, name: NameLike, rdtype: TypeLike) -> Resolution:
        """Answer (name, rdtype) as our DNS server would, following CNAMEs (at most MAX_CHAIN)."""
        qname, qtype = _name(name), _rdtype(rdtype)
        answer: list[dns.rrset.RRset] = []
        cnames: list[str] = []
        with self._lock:
            step = self._step(qname, qtype)
            authoritative, seen = step.authoritative, {qname}
            answer += step.rrsets
            while step.kind == "cname" and len(cnames) < MAX_CHAIN:
                target = _target(step.rrsets[0])
                cnames.append(_text(target))
                if target in seen:
                    break  # a CNAME loop: return the chain so far, NOERROR without data
                seen.add(target)
                step = self._step(target, qtype)
                answer += step.rrsets
            data = [r for r in answer if r.rdtype == qtype or qtype == RdataType.ANY]
            rcode = "NXDOMAIN" if step.kind == "nxdomain" else "NOERROR"  # RFC 6604: last name decides
            authority = [step.soa] if step.kind in ("nodata", "nxdomain") and step.soa is not None else []
            additional = self._additional(data)
        return Resolution(
            name=_text(qname),
            rdtype=qtype.name,
            rcode=rcode,
            answers=[r.to_text() for rrset in data for r in rrset],
            cnames=cnames,
            authoritative=authoritative,
            answer=answer,
            authority=authority,
            additional=additional,
        )

    def _additional(self, data: list[dns.rrset.RRset]) -> list[dns.rrset.RRset]:
        # RFC 1035 §3.3.9 / §3.3.11: addresses of the MX and NS hosts we know, to save a round trip.
        out: list[dns.rrset.RRset] = []
        hosts = [
            _target(rrset, i)
            for rrset in data
            if rrset.rdtype in (RdataType.MX, RdataType.NS)
            for i in range(len(rrset))
        ]
        for host in dict.fromkeys(h for h in hosts if h != dns.name.root):
            for kind in _ADDRESS_TYPES:
                step = self._step(host, kind)
                if step.kind == "data":
                    out += step.rrsets
        return out

    def addresses(self, host: str) -> list[str]:
        """A then AAAA addresses of a host, CNAMEs followed."""
        try:
            return [a for kind in ("A", "AAAA") for a in self.resolve(host, kind).answers]
        except ZoneError:
            return []

    def mx(self, domain: str) -> MxResult:
        """The relay's lookup (RFC 5321 §5.1): MX by preference, implicit MX, null MX (RFC 7505)."""
        domain = domain.strip().rstrip(".")
        if domain.startswith("[") and domain.endswith("]"):
            return MxResult(domain, [(0, domain)], implicit=True)  # address literal: no DNS at all
        try:
            found = self.resolve(domain, "MX")
        except ZoneError:
            return MxResult(domain, nxdomain=True)
        if found.rcode == "NXDOMAIN":
            return MxResult(domain, nxdomain=True)
        records = [
            r
            for rrset in found.answer
            if rrset.rdtype == RdataType.MX
            for r in rrset
            if isinstance(r, dns.rdtypes.ANY.MX.MX)
        ]
        if len(records) == 1 and records[0].exchange == dns.name.root:
            return MxResult(domain, null_mx=True)
        # Stable sort: equal preferences keep zone-file order, so runs are deterministic.
        hosts = sorted(
            ((r.preference, _text(r.exchange).lower()) for r in records if r.exchange != dns.name.root),
            key=lambda h: h[0],
        )
        if hosts:
            return MxResult(domain, hosts)
        if self.addresses(domain):
            return MxResult(domain, [(0, domain.lower())], implicit=True)
        return MxResult(domain)

    def is_local(self, host: str) -> bool:
        """Whether host names the sandbox itself: self_host, or one of self_addresses as a literal."""
        host = host.strip().removeprefix("[").removesuffix("]").removeprefix("IPv6:")
        try:
            return bool(ipaddress.ip_address(host) in self.self_addresses)
        except ValueError:
            pass
        try:
            return bool(_name(host) == self.self_host)
        except ZoneError:
            return False
