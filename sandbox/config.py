"""Config: one frozen dataclass; defaults < TOML file < MAILSANDBOX_* environment < CLI flags."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ENV_PREFIX = "MAILSANDBOX_"


@dataclass(frozen=True)
class Listen:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen(value: str | Listen | None, default_host: str = "127.0.0.1") -> Listen | None:
    """"HOST:PORT", ":PORT", "PORT" or "off" -> Listen | None."""
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
        raise ValueError(f"not a HOST:PORT: {value!r}")
    return Listen(host or default_host, int(port))


def _parse_credentials(value: str | Mapping[str, str] | None) -> dict[str, str] | None:
    """"user:pass,user2:pass2", "@/path/file" (one user:pass a line), or a mapping."""
    if value is None or isinstance(value, Mapping):
        return dict(value) if value is not None else None
    text = str(value).strip()
    if not text:
        return None
    if text.startswith("@"):
        text = Path(text[1:]).read_text().replace("\n", ",")
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
    db: str | None = None  # default: data_dir/mailsandbox.db; ":memory:" for a throw-away store
    max_message_size: int = 25 * 1024 * 1024
    max_messages: int = 0  # 0: keep everything
    max_age: float = 0.0  # seconds ("7d", "12h", "30m" in flags, env and TOML); 0: keep messages of any age
    ignore_duplicate_ids: bool = False  # drop a message whose Message-ID is already stored (Mailpit's flag)
    # every TCP listener: at most this many connections, and this many from one client address (0: no limit)
    max_connections: int = 1000
    max_connections_per_client: int = 200
    fsync: bool = False  # fsync every group commit (power-loss safe); off: safe against process crashes
    hostname: str = "mailsandbox.local"

    tls_cert: Path | None = None
    tls_key: Path | None = None
    require_tls: bool = False
    smtp_auth: dict[str, str] | None = None  # None: any credentials accepted and recorded
    smtp_auth_allow_insecure: bool = False

    # fake DNS and relay
    zones: tuple[Path, ...] = ()
    dns_strict: bool = False
    relay: bool = True
    retry_interval: float = 30 * 60
    warn_after: float = 4 * 3600
    give_up_after: float = 5 * 24 * 3600
    hosts: dict[str, Any] = field(default_factory=dict)  # simulated MTA behaviours by host name
    release: dict[str, Any] = field(default_factory=dict)  # upstream SMTP for release

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
    ) -> Config:
        """Defaults < TOML file < environment < overrides (the CLI's flags)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        config_file = config_file or environ.get(ENV_PREFIX + "CONFIG")
        if config_file:
            values.update(from_toml(Path(config_file)))
        values.update(from_env(environ))
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return cls(**coerce(values))


_LISTENERS = {f.name for f in fields(Config) if "Listen" in str(f.type)}
_BOOLS = {f.name for f in fields(Config) if f.type in ("bool", bool)}
_FLOATS = {"retry_interval", "warn_after", "give_up_after"}
_INTS = {"max_message_size", "max_messages", "max_connections", "max_connections_per_client"}
_PATHS = {"data_dir", "tls_cert", "tls_key"}
NAMES = {f.name for f in fields(Config)}


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def coerce(values: Mapping[str, Any]) -> dict[str, Any]:
    """Turn strings (env, TOML, flags) into the field's type; unknown names are an error."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        name = name.replace("-", "_")
        if name not in NAMES:
            raise ValueError(f"unknown setting: {name}")
        if name in _LISTENERS:
            value = parse_listen(value)  # a bare port listens on loopback: secure by default
        elif name in _BOOLS:
            value = _truthy(value)
        elif name in _FLOATS:
            value = float(value)
        elif name == "max_age":
            value = parse_duration(value)
        elif name in _INTS:
            value = int(value)
        elif name in _PATHS:
            value = Path(value).expanduser() if value not in (None, "") else None
        elif name == "smtp_auth":
            value = _parse_credentials(value)
        elif name == "zones":
            if isinstance(value, str):
                value = [v for v in value.split(",") if v]
            value = tuple(Path(v).expanduser() for v in value)
        elif name == "db" and value is not None:
            value = str(value)
        out[name] = value
    if out.get("data_dir") is None and "data_dir" in out:
        del out["data_dir"]
    return out


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
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    values = {k.replace("-", "_"): v for k, v in data.items()}
    if "zone" in values and "zones" not in values:
        values["zones"] = values.pop("zone")
    if "zones" in values and isinstance(values["zones"], list):
        values["zones"] = [str(path.parent / z) if not os.path.isabs(z) else z for z in values["zones"]]
    return values
