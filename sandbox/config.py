"""Config: one frozen dataclass; defaults < TOML file < MAILSANDBOX_* environment < CLI flags."""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import re
import shlex
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mailsandbox.store._tags import TagRule

ENV_PREFIX = "MAILSANDBOX_"


class ConfigError(ValueError):
    """A setting or config file that cannot be used; the message is one line naming it."""


class SettingError(ConfigError):
    """One setting's value is wrong. ``Config.load`` names where it came from: a flag, a variable or a file."""

    def __init__(self, setting: str, problem: str, where: str | None = None) -> None:
        self.setting, self.problem = setting, problem
        super().__init__(f"{where or setting}: {problem}")


@dataclass(frozen=True)
class Listen:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen(value: str | Listen | None, default_host: str = "127.0.0.1") -> Listen | None:
    """ "HOST:PORT", ":PORT", "PORT" or "off" -> Listen | None."""
    if value is None or isinstance(value, Listen):
        return value
    text = str(value).strip()
    if text.lower() in ("off", "none", "false", "no", ""):
        return None
    if text.startswith("["):  # [::1]:1025
        host, _, port = text[1:].partition("]:")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = "", text
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not HOST:PORT (a port is 0 to 65535), e.g. 127.0.0.1:1025 or 'off'")
    example = "e.g. 127.0.0.1:1025, or 0.0.0.0:1025 for every interface"
    if text.startswith("["):  # brackets hold an IPv6 literal, never a name to look up
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host} in {value!r} is not an IPv6 address, e.g. [::1]:1025") from None
    elif re.fullmatch(r"[0-9.]+", host):  # looks like IPv4, so it must be one (not a name to look up)
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(
                f"{host} in {value!r} is not an IPv4 address (four numbers 0 to 255); give HOST:PORT, {example}"
            ) from None
    return Listen(host or default_host, int(port))


def _parse_credentials(value: str | Mapping[str, str] | None) -> dict[str, str] | None:
    """ "user:pass,user2:pass2", "@/path/file" (one user:pass a line), or a mapping."""
    if value is None or isinstance(value, Mapping):
        return dict(value) if value is not None else None
    text = str(value).strip()
    if not text:
        return None
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text().replace("\n", ",")
        except (OSError, UnicodeError) as exc:
            raise ValueError(f"cannot read the credentials file {text[1:]}: {getattr(exc, 'strerror', exc)}") from exc
    creds: dict[str, str] = {}
    for item in text.split(","):
        item = item.strip()
        if not item or item.startswith("#"):
            continue
        user, sep, password = item.partition(":")
        if not sep:
            raise ValueError(f"credentials must be user:password, got {item!r}")
        creds[user.strip()] = password
    return creds


def _parse_list(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """ "a,b" or a list -> ("a", "b")."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    return tuple(item.strip() for item in items if item.strip())


def _parse_access(value: str | Mapping[str, Any] | None) -> dict[str, tuple[str, ...]]:
    """ "user=glob|glob;user2=glob" or a mapping of user -> globs (a TOML table)."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        pairs = [(str(k), v) for k, v in value.items()]
    else:
        pairs = []
        for item in str(value).split(";"):
            if item.strip():
                user, sep, globs = item.partition("=")
                if not sep:
                    raise ValueError(f"mailbox_access must be user=glob|glob;..., got {item!r}")
                pairs.append((user, globs.split("|")))
    out: dict[str, tuple[str, ...]] = {}
    for user, globs in pairs:
        out[user.strip()] = _parse_list([globs] if isinstance(globs, str) else globs)
    return out


def _tag_rules(value: Any) -> tuple[TagRule, ...]:
    """Tagging rules: Mailpit's --tag strings, `TAG,TAG=QUERY` (several in one, space-separated, quoted as
    a shell would), or TOML tables {match = "QUERY", tags = ["TAG", ...] or "TAG,TAG"}."""
    items = [value] if isinstance(value, str | Mapping) else list(value or ())
    rules: list[TagRule] = []
    for item in items:
        if isinstance(item, TagRule):
            pairs = [(item.query, list(item.tags))]
        elif isinstance(item, Mapping):
            query, tags = item.get("match", item.get("query", "")), item.get("tags", ())
            names = tags.split(",") if isinstance(tags, str) else [str(t) for t in tags]
            pairs = [(str(query), names)]
        else:
            pairs = []
            for word in shlex.split(str(item)):
                tags, sep, query = word.partition("=")
                if not sep:
                    raise ValueError(f"a tagging rule is TAG,TAG=QUERY, got {word!r}")
                pairs.append((query, tags.split(",")))
        for query, names in pairs:
            clean = tuple(n.strip() for n in names if n.strip())
            if not query.strip() or not clean:
                raise ValueError(f"a tagging rule needs a query and at least one tag, got {item!r}")
            rules.append(TagRule(query.strip(), clean))
    return tuple(rules)


_TAG_SOURCES = {"x-tags": "x-tags", "xtags": "x-tags", "plus-addresses": "plus-addresses",
                "plus-addressing": "plus-addresses"}  # fmt: skip


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: str | float | int) -> float:
    """A duration such as 7d, 12h, 30m, 90s, 1w, or a number of seconds (0: off) -> seconds."""
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        unit = _DURATION_UNITS.get(text[-1:], 0)
        number = text[:-1] if unit else text
        try:
            seconds = float(number) * (unit or 1)
        except ValueError:
            raise ValueError(f"not a duration (such as 7d, 12h, 30m): {value!r}") from None
    if not 0 <= seconds < float("inf"):
        raise ValueError(f"not a duration (such as 7d, 12h, 30m): {value!r}")
    return seconds


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mailsandbox"


@dataclass(frozen=True)
class Config:
    # listeners: None means off
    smtp: Listen | None = Listen("127.0.0.1", 1025)
    http: Listen | None = Listen("127.0.0.1", 8025)
    smtp_tls_port: Listen | None = None  # implicit TLS (the 465 style)
    pop3: Listen | None = Listen("127.0.0.1", 1110)
    pop3_tls_port: Listen | None = None
    imap: Listen | None = Listen("127.0.0.1", 1143)
    imap_tls_port: Listen | None = None
    dns: Listen | None = Listen("127.0.0.1", 5353)

    data_dir: Path = field(default_factory=default_data_dir)
    db: str | None = None  # default: data_dir/mailsandbox.db; ":memory:" for a throw-away store; postgresql://...
    max_message_size: int = 25 * 1024 * 1024
    max_messages: int = 0  # 0: keep everything
    max_age: float = 0.0  # seconds ("7d", "12h", "30m" in flags, env and TOML); 0: keep messages of any age
    ignore_duplicate_ids: bool = False  # drop a message whose Message-ID is already stored (Mailpit's flag)
    # tagging on arrival (Mailpit's flags): rules (a search query -> tags), sources turned off, casing, username
    tags: tuple[TagRule, ...] = ()
    tags_disable: tuple[str, ...] = ()  # x-tags, plus-addresses
    tags_title_case: bool = False  # Title Case the tags from X-Tags and plus-addresses
    tags_username: bool = False  # tag each message with its SMTP AUTH username
    # every TCP listener: at most this many connections, and this many from one client address (0: no limit)
    max_connections: int = 1000
    max_connections_per_client: int = 200
    fsync: bool = False  # fsync every group commit (power-loss safe); off: safe against process crashes
    hostname: str = "mailsandbox.local"
    event_loop: str = "auto"  # auto (uvloop where installed), uvloop, asyncio

    tls_cert: Path | None = None
    tls_key: Path | None = None
    require_tls: bool = False
    smtp_auth: dict[str, str] | None = None  # None: any credentials accepted and recorded
    smtp_auth_allow_insecure: bool = False
    smtp_auth_accept_any: bool = False  # with smtp_auth: still take mail from clients that send no AUTH
    # POP3/IMAP: which mailboxes each smtp_auth user may open (address globs); unlisted users their own
    mailbox_access: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # failed logins (SMTP, POP3, IMAP, HTTP) per client address: a growing delay, then a disconnect
    auth_failure_limit: int = 10
    auth_failure_delay: float = 1.0

    # web UI and API access
    allowed_hosts: tuple[str, ...] = ()  # Host names accepted besides loopback and the machine's own
    ui_auth_file: Path | None = None  # htpasswd style: user:password or user:bcrypt-hash lines
    api_token: str | None = None  # Authorization: Bearer TOKEN, for API clients
    api_cors: tuple[str, ...] = ()  # origins sent Access-Control-Allow-Origin ("*": any)

    # fake DNS and relay
    zones: tuple[Path, ...] = ()
    dns_strict: bool = False
    relay: bool = True
    retry_interval: float = 30 * 60
    warn_after: float = 4 * 3600
    give_up_after: float = 5 * 24 * 3600
    hosts: dict[str, Any] = field(default_factory=dict)  # simulated MTA behaviours by host name
    release: dict[str, Any] = field(default_factory=dict)  # upstream SMTP for release
    # email authentication: check SPF/DKIM/DMARC/ARC of every message on arrival (off: only when asked for)
    auth_checks: bool = True

    # chaos on the capture server (sandbox/chaos.py); any of these but the rate limits enables it
    enable_chaos: bool = False  # Mailpit's flag: chaos may be set through the API and UI
    chaos_triggers: str | None = None  # Mailpit's TRIGGER:CODE:PROBABILITY,... (Sender, Recipient, Authentication)
    chaos_rules: tuple[str, ...] = ()  # "STAGE[:CODE] every=N from=GLOB to=GLOB p=PERCENT delay=SECONDS"
    smtp_max_messages_per_minute: int = 0  # per client address; more get 451 at MAIL (0: no limit)
    smtp_max_connections_per_minute: int = 0  # per client address; more get 421 at connect (0: no limit)

    # message checks
    allow_internal_http_requests: bool = False  # the link check may reach loopback and private addresses
    spamassassin: Listen | None = None  # where spamd listens, for sa-check (not a listener of ours)

    # integrations (Mailpit's flags)
    webhook_url: str | None = None  # POST each new message's summary here
    webhook_limit: int = 1  # webhook requests per second; 0: no limit (waiting ones queue, not drop)
    webhook_delay: float = 0.0  # seconds a message waits before its webhook request
    enable_prometheus: Listen | bool = False  # /metrics: False, True (on --http) or a listener of its own

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def db_path(self) -> str:
        if self.db:
            return self.db
        return str(self.data_dir / "mailsandbox.db")

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **coerce(changes))

    @classmethod
    def load(
        cls,
        environ: Mapping[str, str] | None = None,
        config_file: str | Path | None = None,
        overrides: Mapping[str, Any] | None = None,
        override_names: Mapping[str, str] | None = None,
    ) -> Config:
        """Defaults < TOML file < environment < overrides (the CLI's flags).

        A bad value raises SettingError naming where it came from: the key in the file, the variable, or
        the flag (``override_names`` maps a setting to its flag; default ``--setting-name``).
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        where: dict[str, str] = {}
        config_file = config_file or environ.get(ENV_PREFIX + "CONFIG")
        if config_file:
            path = Path(config_file)
            from_file = from_toml(path)
            values.update(from_file)
            where.update({name: f"config file {path}: {name.replace('_', '-')}" for name in from_file})
        from_environ = from_env(environ)
        values.update(from_environ)
        where.update({name: ENV_PREFIX + name.upper() for name in from_environ})
        flags = {k.replace("-", "_"): v for k, v in (overrides or {}).items() if v is not None}
        values.update(flags)
        names = override_names or {}
        where.update({name: names.get(name, "--" + name.replace("_", "-")) for name in flags})
        try:
            return cls(**coerce(values))
        except SettingError as exc:
            label = where.get(exc.setting, exc.setting)
            raise SettingError(exc.setting, exc.problem, label) from None


NAMES = {f.name for f in fields(Config)}
_KINDS = {f.name: str(f.type) for f in fields(Config)}


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{value!r} is not a whole number")
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a whole number") from None


def _float(value: Any) -> float:
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a number of seconds")
    return number


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in _TRUE + _FALSE:
        raise ValueError(f"{value!r} is not true or false (use one of {', '.join(_TRUE + _FALSE[:-1])})")
    return text in _TRUE


def _path(value: Any) -> Path | None:
    return Path(value).expanduser() if value not in (None, "") else None


def _db(value: Any) -> str | None:
    if value in (None, ""):
        return None
    text = str(value)
    if text == ":memory:" or is_postgres(text):
        return text
    return str(Path(text).expanduser())


def is_postgres(db: str) -> bool:
    """A --db naming a PostgreSQL database (a libpq URI) rather than an SQLite file."""
    return db.startswith(("postgresql://", "postgres://"))


def _token(value: Any) -> str | None:
    return (str(value).strip() or None) if value is not None else None


def _zones(value: Any) -> tuple[Path, ...]:
    if isinstance(value, str | Path):
        value = [v for v in str(value).split(",") if v]
    return tuple(Path(v).expanduser() for v in value)


# How a string from a flag, the environment or TOML becomes each kind of field (by its annotation); a new
# field of one of these kinds needs no entry.
_CONVERTERS: dict[str, Any] = {
    "Listen | None": parse_listen,  # a bare port listens on loopback: secure by default
    "bool": _truthy,
    "int": _int,
    "float": _float,
    "Path": _path,
    "Path | None": _path,
    "tuple[Path, ...]": _zones,
    "dict[str, str] | None": _parse_credentials,
    "tuple[str, ...]": _parse_list,
    "dict[str, tuple[str, ...]]": _parse_access,
    "str | None": lambda v: str(v) if v not in (None, "") else None,
    "str": str,
}
def _prometheus(value: Any) -> Listen | bool:
    """Mailpit's --enable-prometheus: true (on the HTTP port), false, or HOST:PORT of its own listener."""
    if isinstance(value, bool | Listen):
        return value
    text = str(value).strip().lower()
    if text in _TRUE + _FALSE:
        return text in _TRUE
    try:
        listen = parse_listen(text)
    except ValueError:
        raise ValueError(f"{value!r} is not true, false or HOST:PORT") from None
    return listen if listen is not None else False


def _url(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    if not text:
        return None
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.port == 0:
        raise ValueError(f"{text!r} is not an http:// or https:// URL")
    return text


_BY_NAME: dict[str, Any] = {
    "db": _db, "api_token": _token, "max_age": parse_duration, "enable_prometheus": _prometheus,
    "webhook_url": _url, "webhook_delay": parse_duration, "tags": _tag_rules,
}  # fmt: skip


def coerce(values: Mapping[str, Any]) -> dict[str, Any]:
    """Turn strings (env, TOML, flags) into the field's type; unknown names and bad values are an error."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        name = name.replace("-", "_")
        if name not in NAMES:
            raise SettingError(name, "unknown setting (the settings are serve's flags: mailsandbox serve --help)")
        convert = _BY_NAME.get(name) or _CONVERTERS.get(_KINDS[name])
        try:
            out[name] = convert(value) if convert is not None else value
        except (TypeError, ValueError) as exc:
            raise SettingError(name, str(exc)) from None
    if out.get("data_dir") is None and "data_dir" in out:
        del out["data_dir"]
    return out


# The smallest value each number setting takes (every other int or float setting: 0).
_MINIMUM: dict[str, float] = {"max_message_size": 1, "retry_interval": 1}
_WHAT_ZERO_MEANS = {
    "max_messages": "0 keeps every message",
    "max_connections": "0: no limit",
    "max_connections_per_client": "0: no limit",
}


def _validate(config: Config) -> None:
    """Refuse values that would be accepted and then misbehave; a SettingError names the setting."""
    for name, kind in _KINDS.items():
        value = getattr(config, name)
        if kind in ("int", "float") and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise SettingError(name, f"{value!r} is not a number")
        if kind in ("int", "float") and not value >= _MINIMUM.get(name, 0):
            low = _MINIMUM.get(name, 0)
            hint = f" ({_WHAT_ZERO_MEANS[name]})" if name in _WHAT_ZERO_MEANS else ""
            raise SettingError(name, f"{value} is below {low:g}: give {low:g} or more{hint}")
    if (config.tls_cert is None) != (config.tls_key is None):
        given, missing = ("tls_cert", "tls_key") if config.tls_key is None else ("tls_key", "tls_cert")
        raise SettingError(given, f"needs --{missing.replace('_', '-')} too (a PEM certificate and its private key)")
    if not config.hostname.strip():
        raise SettingError("hostname", "must not be empty")
    from mailsandbox import event_loop

    try:
        event_loop.factory(config.event_loop)
    except ValueError as exc:
        raise SettingError("event_loop", str(exc)) from None
    for source in config.tags_disable:
        if source.lower() not in _TAG_SOURCES:
            raise SettingError("tags_disable", f"{source!r} is not one of x-tags, plus-addresses")
    from mailsandbox.store._search import compile_query  # the store's own reader of queries

    for tag_rule in config.tags:
        try:
            compile_query(tag_rule.query, 0.0)
        except ValueError as exc:
            raise SettingError("tags", f"the tagging rule {tag_rule.query!r} is not a search query: {exc}") from None

    from mailsandbox import chaos  # pure, and only needed to check these two

    try:
        chaos.parse_triggers(config.chaos_triggers or "")
    except ValueError as exc:
        raise SettingError("chaos_triggers", str(exc)) from None
    for text in config.chaos_rules:
        try:
            chaos.parse_rule(text)
        except ValueError as exc:
            raise SettingError("chaos_rules", str(exc)) from None


def from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or key == ENV_PREFIX + "CONFIG":
            continue
        name = key[len(ENV_PREFIX) :].lower()
        if name in NAMES:
            values[name] = value
    return values


def from_toml(path: Path) -> dict[str, Any]:
    """Top-level keys are settings (dashes or underscores); [hosts.NAME] and [release] are tables."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: not valid TOML: {exc}") from None
    values = {k.replace("-", "_"): v for k, v in data.items()}
    if "zone" in values and "zones" not in values:
        values["zones"] = values.pop("zone")
    if "zones" in values and isinstance(values["zones"], list):
        values["zones"] = [str(path.parent / z) if not os.path.isabs(z) else z for z in values["zones"]]
    unknown = sorted(set(values) - NAMES)
    if unknown:
        known = "the settings are serve's flags without '--': mailsandbox serve --help"
        raise ConfigError(f"config file {path}: unknown setting {unknown[0].replace('_', '-')!r} ({known})")
    return values
