"""SPF (RFC 7208), DKIM (RFC 6376), ARC (RFC 8617) and DMARC (RFC 7489) for one message, against the zone.

pyspf evaluates SPF records and dkimpy does the DKIM and ARC cryptography; both ask the zone through
`_lookup`. DMARC's record and alignment rules are small enough to follow here (`_dmarc.py`).
"""

from __future__ import annotations

import ipaddress
import logging
import re

import dkim
import spf
from dkim.util import InvalidTagValueList, parse_tag_value

from mailsandbox.auth._dmarc import check_dmarc
from mailsandbox.auth._lookup import DkimKeys, Resolver, ZoneSpfQuery
from mailsandbox.auth.results import ArcResult, AuthReport, DkimResult, SpfResult
from mailsandbox.models import Envelope

MAX_SIGNATURES = 10  # signatures verified per message; more are reported as not checked
_quiet = logging.getLogger("mailsandbox.auth.dkimpy")  # dkimpy logs every failure at ERROR
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


def client_ip(peer: str) -> str:
    """The address part of an envelope's "host:port" / "[v6]:port" peer; "" when there is none."""
    host = peer.rpartition(":")[0].strip("[]") if peer.count(":") == 1 or peer.startswith("[") else peer
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return ""


def check_spf(zone: Resolver, ip: str, mail_from: str, helo: str) -> SpfResult:
    """RFC 7208 check_host() for the MAIL FROM identity, or the HELO identity for a null sender (§2.4)."""
    identity = "mailfrom" if mail_from else "helo"
    domain = mail_from.rpartition("@")[2].lower() if mail_from else helo.lower()
    if not ip:
        return SpfResult("none", domain, ip, "no client IP address to check", identity)
    if not domain or "." not in domain:
        return SpfResult("none", domain, ip, "no domain to check", identity)
    try:
        query = ZoneSpfQuery(zone, i=ip, s=mail_from, h=helo or "unknown", querytime=0)
        result, _code, explanation = query.check()
    except (spf.TempError, spf.PermError) as exc:  # pyspf catches its own; this is a guard
        return SpfResult("temperror" if isinstance(exc, spf.TempError) else "permerror", domain, ip, str(exc), identity)
    reason = str(explanation)
    if result == "none":
        reason = f"{domain} publishes no SPF record"
    elif result in ("pass", "fail", "softfail", "neutral"):
        verb = {"pass": "permits", "fail": "does not permit", "softfail": "does not permit (~all)",
                "neutral": "neither permits nor denies"}[result]  # fmt: skip
        reason = f"{domain} {verb} {ip}" + (f": {reason}" if result == "fail" and reason else "")
    return SpfResult(str(result), domain, ip, reason, identity)


def _signature_tags(value: bytes) -> dict[bytes, bytes]:
    try:
        return dict(parse_tag_value(value))
    except (InvalidTagValueList, ValueError):
        return {}


def _header_block(raw: bytes) -> bytes:
    end = raw.find(b"\r\n\r\n")
    return raw if end < 0 else raw[: end + 2]


def _has_field(head: bytes, name: bytes) -> bool:
    """Whether a header block may hold the field (a cheap test that spares dkimpy's parse)."""
    return name in head.lower()


_LINE_END = re.compile(rb"\r?\n")
_FIELD_NAME = re.compile(rb"([\x21-\x7e]+?):")


def rfc822_parse(message: bytes) -> tuple[list[list[bytes]], bytes]:
    """dkimpy's rfc822_parse (fields as [name, value with its CRLFs], and the body), in linear time: dkimpy
    appends each folded line to its field's bytes, a copy of all of it per line (64,000 folded lines: 355 ms,
    8 times as many lines 43 times as long). A first line that continues nothing is a MessageFormatError."""
    headers: list[list[bytes]] = []
    folded: list[bytes] = []  # the last field's value, line by line
    lines = _LINE_END.split(message)
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            break
        if line[0] in (0x09, 0x20):
            if not headers:
                raise dkim.MessageFormatError("a header block that starts with a continuation line")
            folded.append(line + b"\r\n")
            continue
        if headers and len(folded) > 1:
            headers[-1][1] = b"".join(folded)
        m = _FIELD_NAME.match(line)
        if m is not None:
            folded = [line[m.end(0) :] + b"\r\n"]
            headers.append([m.group(1), folded[0]])
        elif not line.startswith(b"From "):
            raise dkim.MessageFormatError(f"Unexpected characters in RFC822 header: {line!r}")
    if headers and len(folded) > 1:
        headers[-1][1] = b"".join(folded)
    return headers, b"\r\n".join(lines[i:])


def _parsed(checker: dkim.DKIM, raw: bytes) -> dkim.DKIM:
    """A dkimpy checker (DKIM or ARC) made with no message, given `raw` as rfc822_parse reads it."""
    checker.headers, checker.body = rfc822_parse(raw)
    return checker


def check_dkim(zone: Resolver, raw: bytes) -> tuple[DkimResult, ...]:
    """Each DKIM-Signature (RFC 6376 §6), top first; dkimpy verifies, the lookups tell errors apart."""
    if not _has_field(_header_block(raw), b"dkim-signature"):
        return ()
    checker = _parsed(dkim.DKIM(b"", logger=_quiet, minkey=1024), raw)
    signatures = [value for name, value in checker.headers if name.lower() == b"dkim-signature"]
    out: list[DkimResult] = []
    for index, value in enumerate(signatures):
        tags = _signature_tags(value)
        domain = tags.get(b"d", b"").decode("ascii", "replace").strip()
        selector = tags.get(b"s", b"").decode("ascii", "replace").strip()
        short = b"".join(tags.get(b"b", b"").split())[:8].decode("ascii", "replace")
        if index >= MAX_SIGNATURES:
            out.append(DkimResult("neutral", domain, selector, f"not checked: over {MAX_SIGNATURES} signatures", short))
            continue
        result, reason = _verify_one(checker, index, DkimKeys(zone), f"{selector}._domainkey.{domain}")
        out.append(DkimResult(result, domain, selector, reason, short))
        checker.pk = None  # each signature loads its own key
    return tuple(out)


def _verify_one(checker: dkim.DKIM, index: int, keys: DkimKeys, key_name: str) -> tuple[str, str]:
    """(result, reason) of one signature; dkimpy answers True/False, the lookups and errors tell why."""
    try:
        ok = checker.verify(idx=index, dnsfunc=keys)
    except dkim.ValidationError as exc:  # body hash mismatch, expired, bad tags
        if "body hash" in str(exc):
            return "fail", "body hash mismatch: the body changed after it was signed"
        return "permerror", str(exc)
    except dkim.DKIMException as exc:  # RFC 6376 §6.1.1: a signature that cannot be processed
        return "permerror", str(exc)
    if ok:
        return "pass", f"signature verified with the key at {key_name}"
    if keys.failed:  # RFC 6376 §6.1.2 step 2: the key query failed to respond
        return "temperror", f"key lookup for {key_name} failed"
    if keys.missing:  # §6.1.2 step 3: no key record for the selector
        return "permerror", f"no key for signature: {key_name} has no TXT record"
    if getattr(checker, "pk", None) is None:
        return "permerror", f"the key record at {key_name} is not usable"
    return "fail", "signature did not verify: a signed header changed, or another key signed it"


def check_arc(zone: Resolver, raw: bytes) -> ArcResult:
    """The ARC chain's validation status (RFC 8617 §5.2): none, pass or fail."""
    if not _has_field(_header_block(raw), b"arc-"):
        return ArcResult("none", "the message has no ARC sets")
    arc = _parsed(dkim.ARC(b"", logger=_quiet, minkey=1024), raw)
    try:
        cv, _results, reason = arc.verify(dnsfunc=DkimKeys(zone))
    except dkim.DKIMException as exc:
        return ArcResult("fail", str(exc))
    if cv is None:  # a seal said cv=fail: the chain is over, which is a failure for us (§5.2 step 3)
        return ArcResult("fail", str(reason))
    word = cv.decode() if isinstance(cv, bytes) else str(cv)
    if word == "none":
        return ArcResult("none", "the message has no ARC sets")
    if word == "pass":
        sets = len([1 for n, _ in arc.headers if n.lower() == b"arc-seal"])
        return ArcResult("pass", f"{sets} ARC set(s) verified")
    return ArcResult(word, str(reason))


def _field_values(head: bytes, name: bytes) -> list[str]:
    """Every value of one header field, unfolded (RFC 5322 §2.2.3), in one pass over the header block."""
    values: list[bytes] = []
    current: list[bytes] | None = None
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            if current is not None:
                current.append(line)
            continue
        if current is not None:
            values.append(b"".join(current))
        field, colon, value = line.partition(b":")
        current = [value] if colon and field.strip().lower() == name else None
    if current is not None:
        values.append(b"".join(current))
    return [v.decode("utf-8", "replace") for v in values]


def _address_domains(value: str) -> list[str]:
    """The domains of the addresses in an address-list field (RFC 5322 §3.4), in one pass: comments
    (nested to any depth) dropped, quoted strings kept whole, commas outside them separating addresses,
    an angle-addr preferred to the text around it. The stdlib's parser recurses once per "(": it gives
    up with RecursionError on a field of nested comments."""
    pieces: list[str] = []
    current: list[str] = []
    depth, quoted, escaped = 0, False, False
    for char in value:
        if escaped:
            escaped = False
            if depth == 0:
                current.append(char)
        elif char == "\\":
            escaped = True
        elif quoted:
            quoted = char != '"'
            current.append(char)
        elif char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
        elif depth:
            continue
        elif char == '"':
            quoted = True
            current.append(char)
        elif char == ",":
            pieces.append("".join(current))
            current = []
        else:
            current.append(char)
    pieces.append("".join(current))
    domains = []
    for piece in pieces:
        open_at = piece.rfind("<")
        spec = piece[open_at + 1 : piece.find(">", open_at)] if open_at >= 0 else piece
        local, at, domain = spec.rpartition("@")
        domain = domain.strip().strip(";").strip().rstrip(".").lower()
        if at and local.strip() and domain:
            domains.append(domain)
    return domains


def _from_domains(raw: bytes) -> list[str]:
    """The domains of the RFC 5322.From addresses (DMARC's identifier)."""
    return [d for value in _field_values(_header_block(raw), b"from") for d in _address_domains(value)]


def authenticate(zone: Resolver, raw: bytes, envelope: Envelope, authserv_id: str) -> AuthReport:
    """Every check, as the receiving server `authserv_id` (the sandbox) would run them on arrival."""
    spf_result = check_spf(zone, client_ip(envelope.peer), envelope.mail_from, envelope.helo)
    dkim_results = check_dkim(zone, raw)
    arc_result = check_arc(zone, raw)
    dmarc_result = check_dmarc(zone, _from_domains(raw), spf_result, dkim_results)
    return AuthReport(authserv_id, spf_result, dkim_results, dmarc_result, arc_result)
