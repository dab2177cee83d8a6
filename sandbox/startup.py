"""Why the sandbox could not start, as one line naming the file, address or setting and what to do."""

from __future__ import annotations

import errno
import os
import re
import socket
import sqlite3
from pathlib import Path

from mailsandbox.config import Config, Listen

# Listener names as Sandbox records them -> the setting (and flag) that chose the address.
_SETTING = {
    "smtp_tls": "smtp_tls_port", "pop3_tls": "pop3_tls_port", "imap_tls": "imap_tls_port",
    "metrics": "enable_prometheus",
}  # fmt: skip


class StartupError(Exception):
    """The sandbox cannot start; the message is one line for the user."""


def _flag(setting: str) -> str:
    return "--" + setting.replace("_", "-")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, socket.gaierror) and exc.errno and exc.errno > 0:
        return os.strerror(exc.errno)  # asyncio's bind errors wrap it in a long sentence
    return (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)) or type(exc).__name__


def listen_failed(name: str, config: Config, exc: OSError) -> StartupError:
    """A listener could not bind its address."""
    setting = _SETTING.get(name, name)
    flag = _flag(setting)
    listen: Listen | None = getattr(config, setting, None)
    where = f"{flag} {listen}" if listen else flag
    if exc.errno == errno.EADDRINUSE:
        todo = f"stop what is listening there, or choose another port with {flag} HOST:PORT ('off' disables it)"
        return StartupError(f"{where}: the address is already in use; {todo}")
    if exc.errno == errno.EACCES:
        return StartupError(f"{where}: permission denied (ports below 1024 need root); choose a port above 1023")
    # Python 3.13's create_server drops EADDRNOTAVAIL and raises "could not bind on any address" instead.
    unavailable = exc.errno == errno.EADDRNOTAVAIL or (exc.errno is None and "could not bind" in str(exc))
    if isinstance(exc, socket.gaierror) or unavailable:
        todo = "use an address of this machine, such as 127.0.0.1, ::1 or 0.0.0.0 (every interface)"
        reason = os.strerror(errno.EADDRNOTAVAIL) if exc.errno is None else _reason(exc)
        return StartupError(f"{where}: not an address this machine can listen on ({reason}); {todo}")
    return StartupError(f"{where}: cannot listen there: {_reason(exc)}")


def prepare_data_dir(path: Path) -> None:
    """Create the data directory (the sandbox's own, so its parents too); --db's directory is not made."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        todo = "choose a writable one with --data-dir (or MAILSANDBOX_DATA_DIR)"
        raise StartupError(f"data directory {path}: cannot create it ({_reason(exc)}); {todo}") from exc


def database_failed(path: str, exc: BaseException) -> StartupError:
    """The store could not open or create its SQLite file: say which case, and what to do."""
    db = Path(path).expanduser()
    where = f"database {path}"
    if db.is_dir():
        return StartupError(f"{where}: is a directory; give --db a file path, such as {db / 'mailsandbox.db'}")
    if not db.parent.is_dir():
        return StartupError(f"{where}: the directory {db.parent} does not exist; create it, or choose another --db")
    if isinstance(exc, sqlite3.DatabaseError) and "not a database" in str(exc):
        todo = "choose another --db (the file was left as it is)"
        return StartupError(f"{where}: the file is not an SQLite database; {todo}")
    if not os.access(db.parent, os.W_OK) or (db.exists() and not os.access(db, os.W_OK)):
        return StartupError(f"{where}: not writable; choose a writable place with --db or --data-dir")
    todo = f"check that {db.parent} is writable, or choose another --db"
    return StartupError(f"{where}: cannot be opened ({_reason(exc)}); {todo}")


def postgres_failed(dsn: str, exc: BaseException) -> StartupError:
    """The PostgreSQL store could not start: the driver is missing, or the database would not have us."""
    where = f"database {redact_dsn(dsn)}"
    if isinstance(exc, ImportError):
        return StartupError(f"{where}: PostgreSQL needs psycopg; install it with pip install 'mailsandbox[postgresql]'")
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    todo = "check the URL and that the server runs"
    return StartupError(f"{where}: cannot connect or set up the schema ({reason}); {todo}")


def redact_dsn(dsn: str) -> str:
    """A database URL without its password, for messages and /api/v1/info."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", dsn)


def tls_failed(cert: Path, key: Path, exc: BaseException) -> StartupError:
    """The user's certificate and key could not be loaded: name the file at fault."""
    for flag, path, marker in (("--tls-cert", cert, "CERTIFICATE-----"), ("--tls-key", key, "PRIVATE KEY-----")):
        try:
            text = path.read_bytes()
        except OSError as read_error:
            return StartupError(f"{flag} {path}: cannot read it ({_reason(read_error)})")
        if b"-----BEGIN " not in text or marker.encode() not in text:
            what = "certificate" if flag == "--tls-cert" else "private key"
            return StartupError(f"{flag} {path}: not a PEM {what} (no '-----BEGIN ...{marker}' line)")
    if "KEY_VALUES_MISMATCH" in str(exc) or "key values mismatch" in str(exc).lower():
        return StartupError(f"--tls-key {key}: does not match the certificate in --tls-cert {cert}")
    return StartupError(f"--tls-cert {cert} / --tls-key {key}: cannot be used ({_reason(exc)})")
