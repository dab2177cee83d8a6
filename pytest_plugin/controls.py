"""DNS, host and clock controls of a sandbox, and zone-file text turned into API records."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mailsandbox.pytest_plugin._http import ApiClient

RecordSpec = Mapping[str, Any] | Sequence[Any]
_DIRECTIVE = re.compile(r"^\$(ORIGIN|TTL)[ \t]+(\S+)", re.IGNORECASE)


def record(spec: RecordSpec) -> dict[str, Any]:
    """("mx.example.test", "A", "127.0.0.1"[, ttl]) or {"name", "type", "value"[, "ttl"]} -> API JSON."""
    if isinstance(spec, Mapping):
        out = {str(k).lower(): v for k, v in spec.items()}
    elif isinstance(spec, Sequence) and not isinstance(spec, str) and len(spec) in (3, 4):
        out = dict(zip(("name", "type", "value", "ttl"), spec, strict=False))
    else:
        raise TypeError(f"a DNS record is (name, type, value[, ttl]) or a dict, not {spec!r}")
    missing = {"name", "type", "value"} - set(out)
    if missing:
        raise TypeError(f"DNS record {spec!r} lacks {', '.join(sorted(missing))}")
    out["name"] = str(out["name"]).rstrip(".").lower()
    out["type"] = str(out["type"]).upper()
    out["value"] = str(out["value"])
    return out


def zone_records(zone: str | Path, origin: str | None = None) -> list[dict[str, Any]]:
    """Zone-file text, or a file (a Path, or a one-line string naming one) -> records;
    $ORIGIN (or `origin`) makes relative names absolute."""
    import dns.name
    import dns.rdatatype
    import dns.ttl
    import dns.zonefile

    if isinstance(zone, str) and "\n" not in zone and Path(zone).is_file():
        zone = Path(zone)
    text = zone.read_text() if isinstance(zone, Path) else zone
    # dnspython reads bare records only, so the two directives (RFC 1035 §5.1) are applied here.
    pieces: list[tuple[str | None, int, list[str]]] = [(origin, 300, [])]
    for line in text.splitlines():
        directive = _DIRECTIVE.match(line)
        if directive is None:
            pieces[-1][2].append(line)
        elif directive.group(1).upper() == "ORIGIN":
            pieces.append((directive.group(2), pieces[-1][1], []))
        else:
            pieces.append((pieces[-1][0], dns.ttl.from_text(directive.group(2)), []))
    out: list[dict[str, Any]] = []
    for piece_origin, ttl, lines in pieces:
        if not any(line.split(";")[0].strip() for line in lines):
            continue
        rrsets = dns.zonefile.read_rrsets(
            "\n".join(lines),
            origin=dns.name.from_text(piece_origin) if piece_origin else dns.name.root,
            relativize=False,
            default_ttl=ttl,
            rdclass=None,  # the class may be written (IN) or left out
            ttl=None,
        )
        out += [
            {"name": rrset.name.to_text(omit_final_dot=True).lower(), "type": dns.rdatatype.to_text(rrset.rdtype),
             "value": rdata.to_text(), "ttl": rrset.ttl}
            for rrset in rrsets
            for rdata in rrset
        ]  # fmt: skip
    return out


def _key(rec: Mapping[str, Any]) -> tuple[str, str, str]:
    return (
        str(rec["name"]).rstrip(".").lower(),
        str(rec["type"]).upper(),
        " ".join(str(rec["value"]).split()),
    )


class DnsControl:
    """The fake DNS at run time: `mail_sandbox.dns.add("example.test", "MX", "10 mx.example.test")`."""

    def __init__(self, api: ApiClient) -> None:
        self._api = api

    def records(self) -> list[dict[str, Any]]:
        return self._api.dns_records()

    def add(self, name: str, type: str, value: str, ttl: int = 300) -> None:
        self._api.dns_add(record((name, type, value, ttl)))

    def remove(self, name: str, type: str, value: str | None = None) -> bool:
        """Remove that record (every one of the type if `value` is None); False if none was there."""
        body: dict[str, Any] = {"name": name.rstrip(".").lower(), "type": type.upper()}
        if value is not None:
            body["value"] = value
        return self._api.dns_remove(body)

    def apply(self, records: Iterable[RecordSpec]) -> list[dict[str, Any]]:
        """Add records; returns those that were not there before (as the sandbox writes them),
        so `undo` removes exactly those and leaves records the test found in place."""
        specs = [record(spec) for spec in records]
        if not specs:
            return []
        before = {_key(r) for r in self.records()}
        try:
            for rec in specs:
                self._api.dns_add(rec)
        except BaseException:
            self.undo(r for r in self.records() if _key(r) not in before)  # a bad record: none stay
            raise
        return [r for r in self.records() if _key(r) not in before]

    def undo(self, added: Iterable[Mapping[str, Any]]) -> None:
        for rec in added:
            self._api.dns_remove({"name": rec["name"], "type": rec["type"], "value": rec["value"]})


class HostsControl:
    """Simulated MTAs: `mail_sandbox.hosts["mx.example.test"] = "down"` (or a behaviour dict)."""

    def __init__(self, api: ApiClient) -> None:
        self._api = api

    def get(self, name: str) -> dict[str, Any] | None:
        """The behaviour a host has (a host nobody configured accepts everything)."""
        return self._api.host(name)

    def all(self) -> dict[str, dict[str, Any]]:
        """Every host with a behaviour set, by lower-cased name."""
        return self._api.hosts()

    def set(self, name: str, behaviour: str | Mapping[str, Any] | None = None, **settings: Any) -> None:
        """A mode name ("accept", "down", "tempfail", "permfail", "greylist", "slow") or the API's
        behaviour object; keyword settings are merged into it (reply=, delay=, recipients=, ...)."""
        body: dict[str, Any] = {"behaviour": behaviour} if isinstance(behaviour, str) else dict(behaviour or {})
        body.update(settings)
        self._api.set_host(name, body)

    def remove(self, name: str) -> None:
        self._api.delete_host(name)

    __getitem__ = get

    def __setitem__(self, name: str, behaviour: str | Mapping[str, Any]) -> None:
        self.set(name, behaviour)

    def __delitem__(self, name: str) -> None:
        self.remove(name)


class ClockControl:
    """The sandbox's clock, which drives relay retries: `mail_sandbox.clock.advance(3600)`."""

    def __init__(self, api: ApiClient) -> None:
        self._api = api

    def state(self) -> dict[str, Any]:
        return self._api.clock()

    def advance(self, seconds: float) -> dict[str, Any]:
        return self._api.clock({"advance": seconds})

    def next_retry(self) -> dict[str, Any]:
        """Jump to the relay queue's next due retry (if any), so it runs now."""
        return self._api.clock({"next_retry": True})


class ChaosControl:
    """SMTP faults on purpose: `mail_sandbox.chaos.set(rules=["rcpt:550 to=*@bounce.test"])`. A rule is
    the API's object ({"Stage", "ErrorCode", "Every", "Sender", "Recipient", "Probability", "Delay",
    "Text"}) or a --chaos-rule string; the `mail_chaos` fixture undoes what a test set."""

    def __init__(self, api: ApiClient) -> None:
        self._api = api

    def state(self) -> dict[str, Any]:
        """{"Enabled", "Triggers", "Rules", "RateLimit", "Stages"}."""
        return self._api.chaos()

    def set(
        self,
        rules: Iterable[str | Mapping[str, Any]] = (),
        *,
        messages_per_minute: int = 0,
        connections_per_minute: int = 0,
        triggers: Mapping[str, Mapping[str, int]] | None = None,
    ) -> dict[str, Any]:
        """Replace the rules and rate limits (per client address); Mailpit's triggers too when given."""
        body: dict[str, Any] = {
            "Rules": [r if isinstance(r, str) else dict(r) for r in rules],
            "RateLimit": {"Messages": messages_per_minute, "Connections": connections_per_minute},
        }
        if triggers is not None:
            body["Triggers"] = {k: dict(v) for k, v in triggers.items()}
        return self._api.chaos(body)

    def restore(self, state: Mapping[str, Any]) -> None:
        """Put back a `state()` taken before."""
        self._api.chaos({k: state[k] for k in ("Rules", "RateLimit", "Triggers") if k in state})

    def reset(self) -> dict[str, Any]:
        """Every rule, rate limit and trigger off."""
        return self._api.chaos(reset=True)
