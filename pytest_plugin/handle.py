"""SandboxHandle: a running sandbox as tests see it (addresses, DNS, hosts, clock), in-process or remote."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mailsandbox.pytest_plugin._http import ApiClient, SandboxApiError
from mailsandbox.pytest_plugin.auth import AuthResults
from mailsandbox.pytest_plugin.controls import (
    ChaosControl,
    ClockControl,
    DnsControl,
    HostsControl,
    RecordSpec,
    zone_records,
)
from mailsandbox.pytest_plugin.message import CapturedMessage, Hop
from mailsandbox.pytest_plugin.outbox import Outbox

if TYPE_CHECKING:
    from mailsandbox import Config, SandboxThread

DEFAULT_SMTP_PORT = 1025  # the CLI's default, used when a remote sandbox does not say where it listens
_UNSPECIFIED = ("", "0.0.0.0", "::", "[::]")  # noqa: S104 - names to replace, not to bind


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
        token: str | None = None,
    ) -> None:
        self.api = ApiClient(http_url, token=token)
        self.http_url = self.api.base_url  # credentials in the URL are kept by the client only
        self.listeners = dict(listeners)
        self.thread = thread
        self.external = thread is None  # URL mode: shared, so never reset behind others' backs
        self.tag = tag
        self.timeout = timeout
        self.started_in = started_in  # seconds the in-process start took, for the curious
        self.dns = DnsControl(self.api)
        self.hosts = HostsControl(self.api)
        self.clock = ClockControl(self.api)
        self.chaos = ChaosControl(self.api)
        self._cache: dict[str, CapturedMessage] = {}

    # -- construction --------------------------------------------------------
    @classmethod
    def start(cls, config: Config, *, timeout: float = 5.0) -> SandboxHandle:
        """Start a sandbox in this process, on its own loop in a thread."""
        from mailsandbox import SandboxThread

        began = time.perf_counter()
        if config.ui_auth_file is not None and not config.api_token:
            # The plugin cannot know the file's passwords: it talks to its own sandbox with a token.
            config = config.replace(api_token=secrets.token_urlsafe(24))
        thread = SandboxThread(config)
        sandbox = thread.start()
        listeners = {name: (listen.host, listen.port) for name, listen in sandbox.addresses.items()}
        if "http" not in listeners:
            thread.stop()
            raise ValueError("mail_sandbox_config turned the HTTP API off; the plugin reaches the sandbox through it")
        host, port = listeners["http"]
        url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        return cls(
            url,
            listeners,
            thread=thread,
            timeout=timeout,
            started_in=time.perf_counter() - began,
            token=config.api_token,
        )

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        smtp: str | None = None,
        tag: str | None = None,
        timeout: float = 5.0,
        token: str | None = None,
    ) -> SandboxHandle:
        """Use a sandbox that is already running; its listeners come from GET /api/v1/info. Credentials:
        in the URL (http://user:pass@host:8025) for --ui-auth-file, or `token` for --api-token."""
        api = ApiClient(url, token=token)
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
        return cls(url, listeners, tag=tag, timeout=timeout, token=token)

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
            specs += zone_records(piece)
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
            auth_loader=lambda mailbox: AuthResults(self.api.auth(message_id, mailbox)),
            check_loader=lambda name, params: self.api.check(message_id, name, params),
        )
        self._cache[message_id] = msg
        return msg

    def __repr__(self) -> str:
        ports = ", ".join(f"{name}={host}:{port}" for name, (host, port) in sorted(self.listeners.items()))
        return f"<SandboxHandle {self.http_url} {ports}{' tag=' + self.tag if self.tag else ''}>"
