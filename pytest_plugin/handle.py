"""SandboxHandle: a running sandbox as tests see it (addresses, DNS, hosts, clock), in-process or remote."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pytest_plugin._http import ApiClient, SandboxApiError
from pytest_plugin.message import CapturedMessage, Hop
from pytest_plugin.outbox import Outbox

if TYPE_CHECKING:
    from sandbox.app import SandboxThread
    from sandbox.config import Config

DEFAULT_SMTP_PORT = 1025  # the CLI's default, used when a remote sandbox does not say where it listens
_UNSPECIFIED = ("", "0.0.0.0", "::", "[::]")  # noqa: S104 - names to replace, not to bind
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
    """Zone-file text (or a file) -> records; $ORIGIN (or `origin`) makes relative names absolute."""
    import dns.name
    import dns.rdatatype
    import dns.ttl
    import dns.zonefile

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


def _zone_source(piece: str | Path) -> str | Path:
    """A Path, or a one-line string naming an existing file, is a zone file; other text is zone text."""
    if isinstance(piece, str) and "\n" not in piece and Path(piece).is_file():
        return Path(piece)
    return piece


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


def _listen(value: Any) -> tuple[str, int] | None:
    """'host:port', {'host','port'} (any case) or [host, port] -> (host, port)."""
    if isinstance(value, Mapping):
        lowered = {str(k).lower(): v for k, v in value.items()}
        if "port" in lowered:
            return str(lowered.get("host", "")), int(lowered["port"])
        return None
    if isinstance(value, list | tuple) and len(value) == 2:
        return str(value[0]), int(value[1])
    if isinstance(value, str) and ":" in value:
        host, _, port = value.rpartition(":")
        return (host.strip("[]"), int(port)) if port.isdigit() else None
    return None


class SandboxHandle:
    """A running sandbox: where it listens, and its DNS, hosts and clock controls.

    Everything goes through the HTTP API, so an in-process sandbox and a remote one
    (`--mailsandbox-url`) behave the same. `tag` is set when the sandbox is shared with
    other test processes: the outbox then shows only mail authenticated as
    `smtp_username`, or sent to an address made with `address()`.
    """

    def __init__(
        self,
        http_url: str,
        listeners: Mapping[str, tuple[str, int]],
        *,
        thread: SandboxThread | None = None,
        tag: str | None = None,
        timeout: float = 5.0,
        started_in: float | None = None,
    ) -> None:
        self.http_url = http_url.rstrip("/")
        self.api = ApiClient(self.http_url)
        self.listeners = dict(listeners)
        self.thread = thread
        self.external = thread is None  # URL mode: shared, so never reset behind others' backs
        self.tag = tag
        self.timeout = timeout
        self.started_in = started_in  # seconds the in-process start took, for the curious
        self.dns = DnsControl(self.api)
        self.hosts = HostsControl(self.api)
        self.clock = ClockControl(self.api)
        self._cache: dict[str, CapturedMessage] = {}

    # -- construction --------------------------------------------------------
    @classmethod
    def start(cls, config: Config, *, timeout: float = 5.0) -> SandboxHandle:
        """Start a sandbox in this process, on its own loop in a thread."""
        from sandbox.app import SandboxThread

        began = time.perf_counter()
        thread = SandboxThread(config)
        sandbox = thread.start()
        listeners = {name: (listen.host, listen.port) for name, listen in sandbox.addresses.items()}
        if "http" not in listeners:
            thread.stop()
            raise ValueError("mail_sandbox_config turned the HTTP API off; the plugin reaches the sandbox through it")
        host, port = listeners["http"]
        url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        return cls(url, listeners, thread=thread, timeout=timeout, started_in=time.perf_counter() - began)

    @classmethod
    def connect(
        cls, url: str, *, smtp: str | None = None, tag: str | None = None, timeout: float = 5.0
    ) -> SandboxHandle:
        """Use a sandbox that is already running; its listeners come from GET /api/v1/info."""
        api = ApiClient(url)
        try:
            info = api.info() or {}
        finally:
            api.close()
        url_host = urlsplit(url).hostname or "127.0.0.1"
        listeners: dict[str, tuple[str, int]] = {}
        raw = info.get("listeners", info.get("Listeners", {}))
        for name, value in raw.items() if isinstance(raw, Mapping) else ():
            listen = _listen(value)
            if listen is not None:
                # A server bound to every interface is reached the way the API was.
                listeners[str(name).lower()] = (
                    url_host if listen[0] in _UNSPECIFIED else listen[0],
                    listen[1],
                )
        if smtp:
            listen = _listen(smtp if ":" in smtp else f"{url_host}:{smtp}")
            if listen is None:
                raise ValueError(f"--mailsandbox-smtp wants HOST:PORT, not {smtp!r}")
            listeners["smtp"] = listen
        listeners.setdefault("smtp", (url_host, DEFAULT_SMTP_PORT))
        return cls(url, listeners, tag=tag, timeout=timeout)

    def stop(self) -> None:
        """Close the API client; stop the sandbox if this handle started it."""
        self.api.close()
        if self.thread is not None:
            self.thread.stop()
            self.thread = None

    # -- where it listens ------------------------------------------------------
    def _port(self, name: str) -> int | None:
        listen = self.listeners.get(name)
        return listen[1] if listen else None

    @property
    def smtp_host(self) -> str:
        return self.listeners["smtp"][0]

    @property
    def smtp_port(self) -> int:
        return self.listeners["smtp"][1]

    @property
    def smtp_tls_port(self) -> int | None:
        return self._port("smtp_tls")

    @property
    def pop3_port(self) -> int | None:
        return self._port("pop3")

    @property
    def imap_port(self) -> int | None:
        return self._port("imap")

    @property
    def dns_port(self) -> int | None:
        return self._port("dns")

    @property
    def smtp_username(self) -> str:
        """SMTP AUTH user that marks mail as this test session's (the sandbox records, not checks, it)."""
        return self.tag or "mailsandbox"

    @property
    def smtp_password(self) -> str:
        return "mailsandbox"

    def address(self, addr: str) -> str:
        """`ann@example.test`, tagged `ann+TAG@example.test` when the sandbox is shared (see `tag`)."""
        if not self.tag:
            return addr
        local, at, domain = addr.rpartition("@")
        if not at:
            return f"{addr}+{self.tag}"
        return f"{local}+{self.tag}@{domain}"

    def owns(self, msg: CapturedMessage) -> bool:
        """Whether a message belongs to this session under the shared-sandbox isolation rule."""
        if not self.tag:
            return True
        envelope = msg.details.get("Envelope") or {}
        auth = envelope.get("Auth") if isinstance(envelope, Mapping) else None
        if self.tag in (auth, msg.details.get("Username")):
            return True
        marker = f"+{self.tag}@".lower()
        return any(marker in addr.lower() for addr in msg.envelope_to)

    # -- per-test changes (the mailsandbox marker) ------------------------------
    def apply(
        self,
        *,
        zone: str | Path | Sequence[str | Path] | None = None,
        hosts: Mapping[str, str | Mapping[str, Any]] | None = None,
        records: Iterable[RecordSpec] | None = None,
    ) -> Callable[[], None]:
        """Add DNS records (zone text or files, and single records) and set host behaviours;
        returns the function that puts back exactly what was there before."""
        specs: list[RecordSpec] = []
        for piece in [zone] if isinstance(zone, str | Path) else list(zone or ()):
            specs += zone_records(_zone_source(piece))
        specs += list(records or ())
        added = self.dns.apply(specs)
        previous: dict[str, dict[str, Any] | None] = {}
        try:
            configured = self.hosts.all() if hosts else {}
            for name, behaviour in (hosts or {}).items():
                # None: no behaviour was set, so undo deletes rather than pins "accept".
                previous.setdefault(name, configured.get(name.rstrip(".").lower()))
                self.hosts.set(name, behaviour)
        except BaseException:
            self._restore(added, previous)
            raise

        def undo() -> None:
            self._restore(added, previous)

        return undo

    def _restore(self, added: list[dict[str, Any]], previous: Mapping[str, dict[str, Any] | None]) -> None:
        try:
            for name, behaviour in previous.items():
                if behaviour is None:
                    self.hosts.remove(name)
                else:
                    self.hosts.set(name, behaviour)
        finally:
            self.dns.undo(added)

    # -- messages --------------------------------------------------------------
    def reset(self) -> None:
        """Clear messages, queue, run-time DNS records, host behaviours and the clock offset."""
        self.api.reset()
        self._cache.clear()

    def outbox(self, mailbox: str | None = None) -> Outbox:
        """A view of the mail that arrives from now on (what the `outbox` fixture yields)."""
        return Outbox(self, mailbox=mailbox)

    def fetch(self, message_id: str, summary: Mapping[str, Any] | None = None) -> CapturedMessage | None:
        """One message by API id, cached (messages never change); None if it went meanwhile.

        A listing entry that already carries the envelope spares the per-message JSON request.
        """
        cached = self._cache.get(message_id)
        if cached is not None:
            return cached
        try:
            details = dict(summary) if summary and "Envelope" in summary else self.api.message(message_id)
            raw = self.api.raw(message_id)
        except SandboxApiError:
            return None  # deleted between listing and fetching
        envelope = details.get("Envelope") or {}
        msg = CapturedMessage(
            raw,
            id=message_id,
            envelope_from=envelope.get("MailFrom") if isinstance(envelope, Mapping) else None,
            envelope_to=envelope.get("RcptTo") if isinstance(envelope, Mapping) else None,
            mailboxes=details.get("Mailboxes") or (),
            details=details,
            trace_loader=lambda: [Hop.from_json(d) for d in self.api.trace(message_id)],
        )
        self._cache[message_id] = msg
        return msg

    def __repr__(self) -> str:
        ports = ", ".join(f"{name}={host}:{port}" for name, (host, port) in sorted(self.listeners.items()))
        return f"<SandboxHandle {self.http_url} {ports}{' tag=' + self.tag if self.tag else ''}>"
