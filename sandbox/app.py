"""Sandbox: the one composition root. Opens the store, loads the zone, starts the relay, then the servers."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
import socket
import sqlite3
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import uvicorn

from mailsandbox import chaos, event_loop
from mailsandbox.clock import ManualClock
from mailsandbox.config import Config, Listen, is_postgres
from mailsandbox.events import EventBus
from mailsandbox.servers._limits import (
    ConnectionLimiter,
    Listening,
    RateLimitedLog,
    install_loop_error_throttle,
    raise_fd_limit,
)
from mailsandbox.servers.http import HEADER_TIMEOUT, KEEP_ALIVE_TIMEOUT, MAX_HEAD, bounded_protocol
from mailsandbox.servers.smtp import CaptureHandler, SmtpOptions, start_smtp
from mailsandbox.servers.websocket import FramesWebSocketProtocol
from mailsandbox.startup import (
    database_failed,
    listen_failed,
    postgres_failed,
    prepare_data_dir,
    redact_dsn,
    tls_failed,
)
from mailsandbox.store import Store
from mailsandbox.store._tags import Tagging
from mailsandbox.store.sqlite import SqliteStore
from mailsandbox.throttle import LoginThrottle
from mailsandbox.tls import ensure_certificate, server_context

log = logging.getLogger("mailsandbox")


def _postgres_store(cfg: Config, bus: EventBus, clock: Any) -> Store:
    """The PostgreSQL store (psycopg is an optional dependency: `pip install mailsandbox[postgresql]`)."""
    try:
        import psycopg
    except ImportError as exc:  # only the driver's absence: any other import error is a bug to show
        raise postgres_failed(cfg.db_path, exc) from exc
    from mailsandbox.store.postgres.store import PostgresStore

    try:
        return PostgresStore(
            cfg.db_path, bus=bus, clock=clock, max_messages=cfg.max_messages,
            ignore_duplicate_ids=cfg.ignore_duplicate_ids, tagging=_tagging(cfg),
        )  # fmt: skip
    except psycopg.Error as exc:
        raise postgres_failed(cfg.db_path, exc) from exc


def _tagging(cfg: Config) -> Tagging:
    off = {s.lower() for s in cfg.tags_disable}
    return Tagging(
        x_tags=not off & {"x-tags", "xtags"},
        plus_addresses=not off & {"plus-addresses", "plus-addressing"},
        title_case=cfg.tags_title_case,
        username=cfg.tags_username,
        rules=cfg.tags,
    )


def _bind_tcp(listen: Listen) -> socket.socket:
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Made with proto 0, so asyncio would not set NODELAY: keep-alive replies would wait on delayed ACKs.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((listen.host, listen.port))
    sock.listen(512)
    sock.setblocking(False)
    return sock


def _self_addresses(cfg: Config) -> tuple[str, ...]:
    """The addresses the fake DNS gives the sandbox itself: where its SMTP listener is reachable."""
    host = cfg.smtp.host if cfg.smtp else "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return ("127.0.0.1",)  # a name such as "localhost"
    if address.is_unspecified:  # 0.0.0.0 / :: are reached over loopback
        return ("::1",) if address.version == 6 else ("127.0.0.1",)
    return (str(address),)


# Descriptors kept for everything that is not a client connection (SQLite, listeners, TLS, an embedding
# test process's own sockets and files); a quarter of the limit when that is smaller.
_FD_RESERVE = 256
_TCP_LISTENERS = ("smtp", "smtp_tls_port", "http", "pop3", "pop3_tls_port", "imap", "imap_tls_port", "dns")


_REFUSALS = RateLimitedLog(logging.getLogger("mailsandbox.http"), 10.0)  # a flood of refusals: a line per kind


def _exposed(host: str) -> bool:
    """Does a listener on `host` take connections from other machines?"""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a name: whatever it resolves to


def _machine_names() -> list[str]:
    """This machine's (a container's) host name, its fully qualified name and its addresses."""
    name = socket.gethostname()
    names = [name]
    with contextlib.suppress(OSError):
        canonical, aliases, addresses = socket.gethostbyname_ex(name)
        names += [canonical, *aliases, *addresses]
    return names


def _warn_if_exposed(cfg: Config) -> None:
    """Say it loudly when mail can be read from other machines without a password."""
    exposed = [name for name in _TCP_LISTENERS if (listen := getattr(cfg, name)) is not None and _exposed(listen.host)]
    if not exposed:
        return
    if cfg.ui_auth_file is None and not cfg.api_token:
        log.warning(
            "listening beyond loopback (%s) without UI authentication: anyone who can reach %s can read and"
            " delete every message; set --ui-auth-file FILE (and --api-token) to lock it down",
            ", ".join(exposed), "this machine" if cfg.http is None else str(cfg.http),
        )  # fmt: skip
    if cfg.smtp_auth is None and any(n.startswith(("pop3", "imap")) for n in exposed):
        log.warning("POP3/IMAP listen beyond loopback and accept any password: set --smtp-auth to require one")


class _EmbeddedServer(uvicorn.Server):
    """uvicorn, minus its signal handling: the sandbox owns SIGINT/SIGTERM and stops every server together
    (uvicorn would otherwise take SIGINT in the main thread and re-raise it after its own shutdown)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Sandbox:
    """Everything a user runs: capture, store, API/UI, mailbox protocols, DNS and relay."""

    def __init__(self, config: Config, clock: ManualClock | None = None) -> None:
        self.config = config
        self.clock = clock or ManualClock()
        self.bus = EventBus()
        self.started_at = time.time()
        self.store: Store = None  # type: ignore[assignment]  # set in start()
        self.ssl_context: ssl.SSLContext | None = None
        self.handler: CaptureHandler | None = None
        self.zone: Any = None
        self.relay: Any = None
        self.auth: Any = None  # sandbox.auth.checker.AuthChecker, made by start()
        self.retention: Any = None  # sandbox.retention.Retention with --max-age
        self.webhook: Any = None  # sandbox.webhook.Webhook with --webhook-url
        self.metrics: Any = None  # sandbox.metrics.Metrics with --enable-prometheus
        self._servers: list[asyncio.AbstractServer] = []
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._addresses: dict[str, Listen] = {}
        self._uvicorn: uvicorn.Server | None = None
        self._uvicorn_task: asyncio.Task[None] | None = None
        self._metrics_server: tuple[uvicorn.Server, asyncio.Task[None]] | None = None
        self._http_workers: Any = None  # web.workers.Workers, made by _start_http
        self.loop: asyncio.AbstractEventLoop | None = None  # the loop it runs on, set by start()
        self.limiters: dict[str, ConnectionLimiter] = {}
        self._max_connections = config.max_connections
        # One count of failed logins per client address, across SMTP, POP3, IMAP and HTTP.
        self.throttle = LoginThrottle(config.auth_failure_limit, config.auth_failure_delay, clock=self.clock.now)
        self.chaos = chaos.from_settings(
            config.enable_chaos, config.chaos_triggers, config.chaos_rules, config.smtp_max_messages_per_minute,
            config.smtp_max_connections_per_minute, clock=self.clock.now,
        )
        self._auth_executor: Any = None  # the HTTP layer's bcrypt checks, made by _start_http

    def limiter(self, name: str) -> ConnectionLimiter:
        """The connection limits of one listener (made on first use, so tests can read its counts)."""
        found = self.limiters.get(name)
        if found is None:
            per_client = self.config.max_connections_per_client
            found = self.limiters[name] = ConnectionLimiter(name, self._max_connections, per_client)
        return found

    def _fit_connection_limit(self) -> int:
        """Every listener's connection limit, lowered if need be so that all of them fit in the open-file
        limit: a limit answers with the protocol's refusal, while running out of descriptors makes every
        listener fail its accepts (and asyncio then retries them in a busy loop)."""
        cfg = self.config
        listeners = sum(1 for name in _TCP_LISTENERS if getattr(cfg, name) is not None) or 1
        wanted = cfg.max_connections or 4096
        fds = raise_fd_limit(listeners * wanted + _FD_RESERVE)
        fit = max(1, (fds - min(_FD_RESERVE, fds // 4)) // listeners)
        if fit < wanted:
            log.warning(
                "the open-file limit (%d) leaves room for %d connections per listener, not %d: using %d"
                " (raise it with ulimit -n)", fds, fit, wanted, fit,
            )  # fmt: skip
            return fit
        return cfg.max_connections

    def address(self, name: str) -> Listen:
        """The address a listener really bound (port 0 becomes the port the OS chose)."""
        return self._addresses[name]

    @property
    def addresses(self) -> dict[str, Listen]:
        return dict(self._addresses)

    def _record(self, name: str, server: asyncio.Server | Listening | socket.socket) -> None:
        sock = server if isinstance(server, socket.socket) else server.sockets[0]
        host, port = sock.getsockname()[:2]
        self._addresses[name] = Listen(host, port)

    async def start(self) -> None:
        cfg = self.config
        if cfg.mailbox_access and cfg.smtp_auth is None:
            raise ValueError("mailbox_access binds smtp_auth users to mailboxes: set smtp_auth too")
        self.loop = asyncio.get_running_loop()
        install_loop_error_throttle(self.loop)
        # Room for every listener's connection limit, so the limits answer before the fd table runs out.
        self._max_connections = self._fit_connection_limit()
        # 1. the store; the data directory is ours to create, --db's directory must exist
        prepare_data_dir(cfg.data_dir)
        if is_postgres(cfg.db_path):  # connecting and migrating are network round trips: off the loop
            self.store = await asyncio.to_thread(_postgres_store, cfg, self.bus, self.clock)
            await asyncio.to_thread(self.store.share_clock, self.clock)  # type: ignore[attr-defined]
        else:
            try:
                self.store = SqliteStore(
                    cfg.db_path, bus=self.bus, clock=self.clock, max_messages=cfg.max_messages, durable=cfg.fsync,
                    ignore_duplicate_ids=cfg.ignore_duplicate_ids, tagging=_tagging(cfg),
                )
            except (sqlite3.Error, OSError) as exc:
                raise database_failed(cfg.db_path, exc) from exc
        try:
            await self._start_rest()
        except BaseException:
            await self.stop()
            raise
        _warn_if_exposed(cfg)  # once it is listening: a start that failed has nothing to warn about

    async def _start_rest(self) -> None:
        cfg = self.config
        if cfg.tls_cert and cfg.tls_key:
            try:
                self.ssl_context = server_context(cfg.tls_cert, cfg.tls_key)
            except OSError as exc:  # ssl.SSLError is one
                raise tls_failed(cfg.tls_cert, cfg.tls_key, exc) from exc
        else:
            cert, key = await asyncio.to_thread(ensure_certificate, cfg.data_dir, cfg.hostname)
            self.ssl_context = server_context(cert, key)
        # 2. the zone and 3. the relay
        await self._start_dns_and_relay()
        self._start_auth()
        if cfg.max_age > 0:
            from mailsandbox.retention import Retention

            self.retention = Retention(self.store, self.clock, cfg.max_age)
            self.retention.start()
            self._closers.append(self.retention.stop)
        self._start_integrations()  # before any listener: the webhook hears the first message
        # 4. the servers
        self.handler = CaptureHandler(self.store, cfg.hostname, relay=self.relay)
        options = SmtpOptions(
            hostname=cfg.hostname,
            max_message_size=cfg.max_message_size,
            tls_context=self.ssl_context,
            require_tls=cfg.require_tls,
            credentials=cfg.smtp_auth,
            allow_insecure_auth=cfg.smtp_auth_allow_insecure,
            require_auth=cfg.smtp_auth is not None and not cfg.smtp_auth_accept_any,
            throttle=self.throttle,
            chaos=self.chaos,
        )
        if cfg.smtp:
            smtp = start_smtp(cfg.smtp.host, cfg.smtp.port, self.handler, options, limiter=self.limiter("smtp"))
            await self._serve("smtp", smtp)
        if cfg.smtp_tls_port:
            listen = cfg.smtp_tls_port
            smtps = start_smtp(listen.host, listen.port, self.handler, options, True, self.limiter("smtp_tls"))
            await self._serve("smtp_tls", smtps)
        await self._start_mailbox_servers()
        if cfg.http:
            await self._start_http(cfg.http)
        if isinstance(cfg.enable_prometheus, Listen):
            await self._start_metrics_listener(cfg.enable_prometheus)
        elif cfg.enable_prometheus and not cfg.http:
            log.warning("--enable-prometheus true serves /metrics on --http, which is off: give it HOST:PORT")

    def _start_integrations(self) -> None:
        """The webhook and the metrics registry: both listen to the bus, on this loop."""
        cfg = self.config
        if cfg.webhook_url:
            from mailsandbox.web.schema import summary
            from mailsandbox.webhook import Webhook

            self.webhook = Webhook(
                cfg.webhook_url, self.bus, summary, self.clock, limit=cfg.webhook_limit, delay=cfg.webhook_delay
            )
            self.webhook.start()
            self._closers.append(self.webhook.stop)
        if cfg.enable_prometheus:
            from mailsandbox.metrics import Metrics

            self.metrics = Metrics(self)
            self.metrics.start(self.bus)
            self._closers.append(self.metrics.stop)

    async def _serve(self, name: str, starting: Awaitable[asyncio.Server | Listening]) -> None:
        try:
            server = await starting
        except OSError as exc:
            raise listen_failed(name, self.config, exc) from exc
        self._servers.append(server)
        self._record(name, server)

    async def _start_dns_and_relay(self) -> None:
        from mailsandbox.servers.dns import start_dns
        from mailsandbox.zone import Zone

        cfg = self.config
        # 2. the zone (zone files are read off the loop); a bad file raises ZoneError naming file and line
        self.zone = await asyncio.to_thread(
            Zone.from_files, cfg.zones, cfg.dns_strict, cfg.hostname, _self_addresses(cfg)
        )
        # 3. the relay
        await self._start_relay()
        if cfg.dns:
            try:
                server = await start_dns(cfg.dns.host, cfg.dns.port, self.zone, self.limiter("dns"))
            except OSError as exc:
                raise listen_failed("dns", cfg, exc) from exc
            self._closers.append(server.close)
            self._addresses["dns"] = Listen(*server.address)

    def _start_auth(self) -> None:
        from mailsandbox.auth.checker import AuthChecker

        cfg = self.config
        store: Any = self.store  # SqliteStore is also the AuthStore
        self.auth = AuthChecker(store, self.zone, self.bus, cfg.hostname, on_arrival=cfg.auth_checks)
        self.auth.start()
        self._closers.append(self.auth.stop)

    async def _start_relay(self) -> None:
        from mailsandbox.relay import Relay

        cfg = self.config
        if not cfg.relay:
            return
        self.relay = Relay(
            self.store, self.zone, self.clock, self.bus, hosts=cfg.hosts, hostname=cfg.hostname,
            retry_interval=cfg.retry_interval, warn_after=cfg.warn_after, give_up_after=cfg.give_up_after,
            release=cfg.release,
        )  # fmt: skip
        await self.relay.start()
        self._closers.append(self.relay.stop)
        if hasattr(self.store, "share_clock"):  # another frontend's advance reaches this relay's queue too
            unwatch = self.clock.watch(self.relay.wake)

            async def stop_watching() -> None:
                unwatch()

            self._closers.append(stop_watching)

    async def _start_mailbox_servers(self) -> None:
        from mailsandbox.servers.pop3 import start_pop3

        cfg = self.config
        # POP3 and IMAP share SMTP's certificate (STLS/STARTTLS on the plain ports) and credentials.
        for name, listen, implicit in (("pop3", cfg.pop3, False), ("pop3_tls", cfg.pop3_tls_port, True)):
            if listen:
                await self._serve(name, start_pop3(
                    listen.host, listen.port, self.store, self.ssl_context, implicit,
                    credentials=cfg.smtp_auth, hostname=cfg.hostname, limiter=self.limiter(name),
                    throttle=self.throttle, access=cfg.mailbox_access,
                ))  # fmt: skip
        await self._start_imap()

    async def _start_imap(self) -> None:
        from mailsandbox.servers.imap import start_imap

        cfg = self.config
        for name, listen, implicit in (("imap", cfg.imap, False), ("imap_tls", cfg.imap_tls_port, True)):
            if listen:
                await self._serve(name, start_imap(
                    listen.host, listen.port, self.store, self.bus, self.ssl_context, implicit,
                    credentials=cfg.smtp_auth, limiter=self.limiter(name), max_literal=cfg.max_message_size,
                    throttle=self.throttle, access=cfg.mailbox_access,
                ))  # fmt: skip

    http_header_timeout = HEADER_TIMEOUT  # seconds to send a request head (a test may set it on the instance)

    async def _start_http(self, listen: Listen) -> None:
        from mailsandbox.web.app import create_app
        from mailsandbox.web.inputs import body_limit
        from mailsandbox.web.workers import Workers

        try:
            sock = _bind_tcp(listen)
        except OSError as exc:
            raise listen_failed("http", self.config, exc) from exc
        self._record("http", sock)
        # The HTTP layer's own threads for store reads and MIME parses; stop() shuts them down.
        self._http_workers = workers = Workers()
        html_checker, links, spam = self._checks()
        app = create_app(
            self.store, self.bus, info=self.info, reset=self.reset, webui=self.webui,
            groups=self._web_groups(workers),
            workers=workers, max_body=body_limit(self.config.max_message_size),
            access=await self._access_policy(listen), refusals=_REFUSALS.warning,
            link_checker=links, spamassassin=spam, html_checker=html_checker,
        )  # fmt: skip
        self._uvicorn, self._uvicorn_task = await self._run_uvicorn(app, sock, "http")

    async def _run_uvicorn(self, app: Any, sock: socket.socket, name: str) -> tuple[uvicorn.Server, asyncio.Task[None]]:
        config = uvicorn.Config(
            # /api/events writes frames it encoded once for every client (servers/websocket.py); they go
            # uncompressed, so permessage-deflate would only cost each connection a zlib context.
            app, log_level="warning", lifespan="off", access_log=False, ws=FramesWebSocketProtocol,
            ws_per_message_deflate=False,
            http=bounded_protocol(self.limiter(name), self.http_header_timeout),
            timeout_keep_alive=KEEP_ALIVE_TIMEOUT, h11_max_incomplete_event_size=MAX_HEAD,
        )  # fmt: skip
        server = _EmbeddedServer(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                await task  # re-raise why it failed
                raise RuntimeError(f"the {name} server stopped while starting")
            await asyncio.sleep(0.005)  # uvicorn offers no started event to await
        return server, task

    async def _start_metrics_listener(self, listen: Listen) -> None:
        """--enable-prometheus HOST:PORT: /metrics alone, under the same access rules as the UI."""
        from mailsandbox.web.metrics_api import metrics_app
        from mailsandbox.web.workers import Workers

        try:
            sock = _bind_tcp(listen)
        except OSError as exc:
            raise listen_failed("metrics", self.config, exc) from exc
        self._record("metrics", sock)
        if self._http_workers is None:
            self._http_workers = Workers(threads=2)
        app = metrics_app(self.metrics.render, self._http_workers, await self._access_policy(listen), _REFUSALS.warning)
        self._metrics_server = await self._run_uvicorn(app, sock, "metrics")

    async def _access_policy(self, listen: Listen) -> Any:
        """Who may use the UI and API: the Host names it answers, its users, its token, CORS."""
        from mailsandbox.executors import BoundedExecutor
        from mailsandbox.web.access import AccessPolicy, load_users, own_names

        cfg = self.config
        names = [*cfg.allowed_hosts, listen.host]
        if _exposed(listen.host):  # reachable from other machines: by this machine's own names too
            names += await asyncio.to_thread(_machine_names)
        users = await asyncio.to_thread(load_users, cfg.ui_auth_file) if cfg.ui_auth_file else {}
        if self._auth_executor is None:  # one for the UI's listener and the metrics listener
            self._auth_executor = BoundedExecutor("http-auth", 2, max_pending=32)
        return AccessPolicy(
            allowed_hosts=own_names(names), users=users, token=cfg.api_token, cors=cfg.api_cors,
            throttle=self.throttle, executor=self._auth_executor, ip_literals=_exposed(listen.host),
        )  # fmt: skip

    def _checks(self) -> tuple[Any, Any, Any]:
        """The HTML checker's process, the link checker (its HTTP client) and, if one is configured, the
        spamd client; the first two are closed at stop."""
        from mailsandbox.checks.links import LinkChecker
        from mailsandbox.checks.pool import HtmlChecker
        from mailsandbox.checks.spam import SpamAssassin

        html_checker = HtmlChecker()
        links = LinkChecker(self.config.allow_internal_http_requests)
        self._closers += [html_checker.close, links.close]
        spamd = self.config.spamassassin
        return html_checker, links, SpamAssassin(spamd.host, spamd.port) if spamd else None

    def _web_groups(self, workers: Any) -> dict[str, Any]:
        """web/routes.py's groups of the relay (trace, release, queue, clock, DNS records, host
        behaviours), the authentication results, the send API, chaos and /metrics."""
        from mailsandbox.relay import Releaser
        from mailsandbox.web.auth_api import AuthApi
        from mailsandbox.web.chaos_api import ChaosApi
        from mailsandbox.web.relay_api import RelayApi
        from mailsandbox.web.send_api import SendApi

        releaser = self.relay
        if releaser is None:
            releaser = Releaser(self.store, self.config.release)
            self._closers.append(releaser.close)
        relay = RelayApi(
            store=self.store, relay=self.relay, zone=self.zone, clock=self.clock, releaser=releaser, workers=workers
        )
        send = SendApi(self._submit, workers, self.config.max_message_size)
        groups = {"relay": relay, "auth": AuthApi(self.auth), "send": send, "chaos": ChaosApi(self.chaos, workers)}
        if self.metrics is not None and self.config.enable_prometheus is True:
            from mailsandbox.web.metrics_api import MetricsApi

            groups["metrics"] = MetricsApi(self.metrics.render, workers)
        return groups

    async def _submit(self, outgoing: Any, peer: str) -> str:
        """A message from POST /api/v1/send, captured the way SMTP mail is."""
        from mailsandbox.models import Envelope

        assert self.handler is not None
        envelope = Envelope(mail_from=outgoing.mail_from, rcpt_tos=outgoing.rcpt_tos, peer=peer, helo="api")
        message = await self.handler.capture(envelope, [outgoing.raw], via="HTTP")
        return message.id

    def webui(self) -> dict[str, Any]:
        """GET /api/v1/webui: Mailpit's UI configuration, from ours."""
        from mailsandbox.relay.release import ReleaseSettings
        from mailsandbox.web.schema import webui

        cfg = self.config
        release = ReleaseSettings.from_config(cfg.release)
        allowed = "" if release is None or release.allowed == ("*",) else ", ".join(release.allowed)
        return webui(
            relay_server=f"{release.host}:{release.port}" if release else None,
            return_path=(release.return_path or "") if release else "", allowed=allowed,
            spamassassin=cfg.spamassassin is not None, duplicates_ignored=cfg.ignore_duplicate_ids,
            chaos=self.chaos.enabled,
        )  # fmt: skip

    def info(self) -> dict[str, Any]:
        """GET /api/v1/info: Mailpit's fields, plus where each listener is."""
        import resource
        from importlib.metadata import version

        total, unread = self.store.count()
        db = redact_dsn(self.config.db_path)
        size = 0
        with contextlib.suppress(OSError):
            size = self.database_size()
        stats = self.handler.stats if self.handler else None
        return {
            "Version": version("mailsandbox"),
            "LatestVersion": "",
            "Database": db,
            "DatabaseSize": size,
            "Messages": total,
            "Unread": unread,
            "Tags": self.store.tag_counts(),
            "RuntimeStats": {
                "Uptime": int(time.time() - self.started_at),
                "Memory": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                "MessagesDeleted": self.retention.deleted if self.retention else 0,
                "SMTPAccepted": stats.accepted if stats else 0,
                "SMTPAcceptedSize": stats.accepted_size if stats else 0,
                "SMTPRejected": stats.rejected if stats else 0,
                "SMTPIgnored": stats.ignored if stats else 0,
            },
            "Listeners": {name: str(addr) for name, addr in self._addresses.items()},
        }

    def database_size(self) -> int:
        """The database file's size in bytes (its WAL not counted, as Mailpit counts it); raises OSError."""
        from pathlib import Path

        measure = getattr(self.store, "database_size", None)
        if callable(measure):  # a server's database: it says
            return int(measure())
        return Path(getattr(self.store, "path", self.config.db_path)).stat().st_size

    async def reset(self) -> None:
        """Empty every mailbox and the queue; put run-time DNS, host faults and the clock back."""
        await self.store.delete(None)
        # The relay re-publishes its signers' keys into the reset zone; the webhook drops what it holds.
        for part in (self.zone, self.relay, self.webhook):
            if part is not None and hasattr(part, "reset"):
                part.reset()
        self.clock.reset()
        self.throttle.clear()  # its times were on the clock just put back
        self.chaos.clear_windows()  # so were the rate limits' (the rules and triggers stay as set)

    async def stop(self) -> None:
        """Stop accepting, let running sessions finish their commit, then close the store."""
        for server in self._servers:
            server.close()
        uvicorns = [self._metrics_server, (self._uvicorn, self._uvicorn_task)]
        for web, task in [pair for pair in uvicorns if pair is not None]:
            if web is not None and task is not None:
                web.should_exit = True
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(task, timeout=5)
        if self._http_workers is not None:
            self._http_workers.close()
        if self._auth_executor is not None:
            self._auth_executor.shutdown()
        for closer in reversed(self._closers):
            with contextlib.suppress(Exception):
                await closer()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), timeout=2)
        self._servers.clear()
        if self.store is not None:
            await asyncio.to_thread(self.store.close)

    async def run_forever(self, on_ready: Callable[[Sandbox], None] | None = None) -> None:
        """Serve until SIGINT/SIGTERM, then shut down cleanly."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await self.start()
        try:
            if on_ready:
                on_ready(self)
            await stop.wait()
        finally:
            await self.stop()


class SandboxThread:
    """Runs a Sandbox on its own event loop in a daemon thread (tests, the pytest plugin)."""

    def __init__(self, config: Config, clock: ManualClock | None = None) -> None:
        self.sandbox = Sandbox(config, clock)
        self.loop = event_loop.factory(config.event_loop)()
        self._thread = threading.Thread(target=self._run, name="mailsandbox", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stopped: asyncio.Event | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())
        self.loop.close()

    async def _main(self) -> None:
        self._stopped = asyncio.Event()
        try:
            await self.sandbox.start()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        await self._stopped.wait()
        await self.sandbox.stop()

    def start(self, timeout: float = 30) -> Sandbox:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the sandbox did not start in time")
        if self._error is not None:
            raise self._error
        return self.sandbox

    def call(self, coro: Awaitable[Any], timeout: float = 30) -> Any:
        """Run a coroutine on the sandbox's loop from another thread and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def stop(self, timeout: float = 30) -> None:
        if self._stopped is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(timeout)
