"""Sans-IO POP3 server core (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 AUTH)."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from mailsandbox.protocols import sasl
from mailsandbox.protocols.accounts import Accounts, fold

# Reply prefixes (RFC 1939 §3; "+ " is the SASL continuation of RFC 5034 §4).
OK = b"+OK"
ERR = b"-ERR"
CONTINUE = b"+ "
CRLF = b"\r\n"
TERMINATOR = b".\r\n"

MAX_COMMAND = 255  # RFC 2449 §4: a command line is at most 255 octets, CRLF included
MAX_SASL_LINE = 2048  # AUTH lines carry base64, longer than a command (RFC 5034 §4)

# Replies, named so tests and adapters share them.
ERR_IN_USE = b"-ERR [IN-USE] maildrop already locked by another session"  # RFC 2449 §8.1.1
ERR_AUTH = b"-ERR [AUTH] invalid user name or password"  # RFC 3206 §4
ERR_SYS_TEMP = b"-ERR [SYS/TEMP] maildrop unavailable, try again"  # RFC 3206 §4
ERR_TOO_MANY_FAILURES = b"-ERR [SYS/TEMP] too many failed logins, try again later"
ERR_TOO_LONG = b"-ERR command line too long"
ERR_UNKNOWN = b"-ERR unknown command"
ERR_STATE = b"-ERR command not valid in this state"
ERR_SYNTAX = b"-ERR syntax error"
ERR_NO_SUCH = b"-ERR no such message"
ERR_DELETED = b"-ERR message already deleted"
ERR_NO_USER = b"-ERR USER first"
ERR_TLS_ACTIVE = b"-ERR TLS already active"
ERR_NO_TLS = b"-ERR STLS not available"
ERR_MECHANISM = b"-ERR unsupported SASL mechanism"
ERR_CANCELLED = b"-ERR AUTH cancelled"
ERR_UPDATE = b"-ERR [SYS/TEMP] some deleted messages not removed"


class State(Enum):
    """RFC 1939 §3 session states, plus CLOSED once the session is over."""

    AUTHORIZATION = "AUTHORIZATION"
    TRANSACTION = "TRANSACTION"
    UPDATE = "UPDATE"
    CLOSED = "CLOSED"


class MaildropItem(Protocol):
    """What the core needs of one maildrop message; `sandbox.models.MailEntry` fits as it is."""

    @property
    def uid(self) -> int: ...

    @property
    def message_id(self) -> str: ...

    @property
    def size(self) -> int: ...


# -- events: what the adapter must do -------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """Bytes to write. `multiline` replies end with the "." terminator (RFC 1939 §3)."""

    data: bytes
    multiline: bool = False


@dataclass(frozen=True)
class MaildropRequested:
    """Authenticated: lock and list `user`'s maildrop, then call `answer_maildrop`."""

    user: str


@dataclass(frozen=True)
class MessageRequested:
    """RETR or TOP needs the raw bytes: call `answer_message`."""

    message_id: str


@dataclass(frozen=True)
class StartTlsRequested:
    """Run the TLS handshake (RFC 2595 §4), then call `tls_started`."""


@dataclass(frozen=True)
class UpdateRequested:
    """QUIT in TRANSACTION (RFC 1939 §6): remove `uids`, unlock, then call `answer_update`."""

    user: str
    uids: tuple[int, ...]


@dataclass(frozen=True)
class CloseRequested:
    """Close the connection once the replies before it are written."""


@dataclass(frozen=True)
class LoginFailed:
    """Wrong credentials (their -ERR [AUTH] is the Reply after this): the adapter may delay it."""

    user: str


Event = (
    Reply | MaildropRequested | MessageRequested | StartTlsRequested | UpdateRequested | CloseRequested | LoginFailed
)

_Check = Callable[[str], bool]  # does this stored secret match what the client proved?
_Column = Callable[[int], str]  # one LIST/UIDL column for a 0-based index

_LINE_BREAK = re.compile(rb"\r?\n")
_UIDL_SAFE = re.compile(r"[!-~]{1,70}")
_UIDL_UNSAFE = re.compile(r"[^!-~]")
_DIGITS = re.compile(r"[0-9]{1,9}")


def unique_id(item: MaildropItem) -> str:
    """UIDL value: stable across sessions and unique in the maildrop (RFC 1939 §7).

    The uid makes it unique; the store's message id lets a person match it to the web UI.
    Only 0x21-0x7E, at most 70 octets.
    """
    text = f"{item.uid}.{item.message_id}"
    if not _UIDL_SAFE.fullmatch(text):
        text = _UIDL_UNSAFE.sub("_", text)[:70]
    return text


def wire_lines(raw: bytes) -> list[bytes]:
    """Split a message into lines, byte-stuffing any that start with "." (RFC 1939 §3)."""
    if raw.endswith(b"\r\n"):
        raw = raw[:-2]
    elif raw.endswith(b"\n"):
        raw = raw[:-1]
    if not raw:
        return []
    return [b"." + line if line.startswith(b".") else line for line in _LINE_BREAK.split(raw)]


class Pop3Connection:
    """One POP3 session. Feed bytes to `receive_data`; act on the events it returns.

    Nothing here does I/O: the adapter answers request events (`answer_maildrop`,
    `answer_message`, `answer_update`, `tls_started`) and each answer returns more events.
    Input that arrives while a request is pending stays buffered (RFC 2449 §6.6 PIPELINING).
    """

    def __init__(
        self,
        hostname: str = "mailsandbox.local",
        credentials: Mapping[str, str] | None = None,
        *,
        access: Mapping[str, Sequence[str]] | None = None,
        tls_available: bool = False,
        tls_active: bool = False,
        banner_id: str = "0",
        locked_out: Callable[[], bool] | None = None,
    ) -> None:
        self.hostname = hostname
        self.state = State.AUTHORIZATION
        self.tls_active = tls_active
        self.user: str | None = None
        self._accounts = Accounts(credentials, access)
        self._locked_out = locked_out  # past the failed-login limit: logins fail unchecked (see SMTP's)
        self._tls_available = tls_available
        self._timestamp = f"<{banner_id}@{hostname}>"  # RFC 1939 §7 APOP banner
        self._buffer = bytearray()
        self._discarding = False  # inside an over-long line, dropping bytes up to its LF
        self._pending: str | None = None  # which answer we wait for
        self._sasl: sasl.SaslServer | None = None  # next line is a SASL response (RFC 5034 §4)
        self._candidate: str | None = None  # USER given, PASS awaited
        self._drop: Sequence[MaildropItem] = ()
        self._uidls: list[str] | None = None  # computed on the first UIDL
        self._deleted: set[int] = set()  # 0-based indexes marked by DELE
        self._top_lines: int | None = None  # None: RETR

    # -- public API ------------------------------------------------------------------

    def greeting(self) -> list[Event]:
        return [Reply(OK + f" {self.hostname} POP3 ready {self._timestamp}".encode() + CRLF)]

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the peer; b"" means EOF."""
        if self.state is State.CLOSED or self.state is State.UPDATE:
            return []  # nothing after QUIT is read; an UPDATE under way still finishes
        if not data:
            # RFC 1939 §6: a session that ends without QUIT never enters UPDATE.
            self.state = State.CLOSED
            return []
        self._buffer += data
        return self._run()

    def answer_maildrop(self, items: Sequence[MaildropItem] | None, refusal: bytes = ERR_IN_USE) -> list[Event]:
        """The maildrop; or None and the `-ERR` reply when it can't be opened (another session
        holds its lock, RFC 1939 §4; or the store failed: ERR_SYS_TEMP)."""
        self._expect("maildrop")
        if items is None:
            self.user = None
            return [Reply(refusal + CRLF), *self._run()]
        self._drop = items
        self._uidls = None
        self._deleted.clear()
        self.state = State.TRANSACTION  # RFC 1939 §4
        total = sum(i.size for i in self._drop)
        reply = OK + f" maildrop has {len(self._drop)} messages ({total} octets)".encode() + CRLF
        return [Reply(reply), *self._run()]

    def answer_message(self, raw: bytes | None) -> list[Event]:
        """The raw message asked for, or None if it vanished from the store."""
        self._expect("message")
        if raw is None:
            return [Reply(ERR_NO_SUCH + CRLF), *self._run()]
        lines = wire_lines(raw)
        if self._top_lines is not None:  # RFC 1939 §7 TOP: headers, blank line, n body lines
            try:
                blank = lines.index(b"")
            except ValueError:
                blank = len(lines)
            lines = lines[: blank + 1 + self._top_lines]
        body = b"".join(line + CRLF for line in lines)
        octets = len(body) - sum(1 for line in lines if line.startswith(b"."))  # before stuffing, as LIST
        reply = Reply(OK + f" {octets} octets".encode() + CRLF + body + TERMINATOR, multiline=True)
        return [reply, *self._run()]

    def answer_update(self, ok: bool) -> list[Event]:
        """Deletions committed (or not) and lock released: say goodbye (RFC 1939 §6)."""
        self._expect("update")
        self.state = State.CLOSED
        text = OK + f" {self.hostname} POP3 signing off".encode() if ok else ERR_UPDATE
        return [Reply(text + CRLF), CloseRequested()]

    def tls_started(self) -> list[Event]:
        """Handshake done: forget everything learned in plain text (RFC 2595 §4)."""
        self._expect("tls")
        self.tls_active = True
        self._candidate = None
        return self._run()

    # -- engine ----------------------------------------------------------------------

    def _expect(self, what: str) -> None:
        if self._pending != what:
            raise RuntimeError(f"no {what} answer is awaited (pending: {self._pending})")
        self._pending = None

    def _run(self) -> list[Event]:
        events: list[Event] = []
        while self._pending is None and self.state is not State.CLOSED:
            line = self._next_line(events)
            if line is None:
                break
            events.extend(self._dispatch(line))
        return events

    def _next_line(self, events: list[Event]) -> bytes | None:
        while True:
            end = self._buffer.find(b"\n")
            if self._discarding:  # the rest of an over-long line, already answered
                if end < 0:
                    self._buffer.clear()
                    return None
                del self._buffer[: end + 1]
                self._discarding = False
                continue
            long_ok = self._sasl is not None or self._buffer[:5].upper() == b"AUTH "
            limit = MAX_SASL_LINE if long_ok else MAX_COMMAND
            if end < 0:
                if len(self._buffer) >= limit:  # no LF within the limit: refuse, skip to the LF
                    self._buffer.clear()
                    self._discarding = True
                    self._sasl = None
                    events.append(Reply(ERR_TOO_LONG + CRLF))
                return None
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            if len(line) + 1 <= limit:  # counting the LF; a CR is inside `line`
                return line.removesuffix(b"\r")
            self._sasl = None
            events.append(Reply(ERR_TOO_LONG + CRLF))

    def _dispatch(self, line: bytes) -> list[Event]:
        text = line.decode("utf-8", "surrogateescape")
        if self._sasl is not None:
            return self._sasl_result(self._sasl.step(text))
        keyword, _, rest = text.partition(" ")
        keyword = keyword.upper()
        table = _AUTH_COMMANDS if self.state is State.AUTHORIZATION else _TX_COMMANDS
        handler = table.get(keyword)
        if handler is None:
            if keyword in _AUTH_COMMANDS or keyword in _TX_COMMANDS:
                return [Reply(ERR_STATE + CRLF)]
            return [Reply((ERR_UNKNOWN if keyword else ERR_SYNTAX) + CRLF)]
        return handler(self, rest)

    def _ok(self, text: str = "") -> list[Event]:
        return [Reply(OK + (b" " + text.encode() if text else b"") + CRLF)]

    def _err(self, reply: bytes) -> list[Event]:
        return [Reply(reply + CRLF)]

    # -- AUTHORIZATION (RFC 1939 §4, §7) ------------------------------------------------

    def _capa(self, rest: str) -> list[Event]:
        caps = ["TOP", "USER", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]  # RFC 2449 §6
        caps.append("SASL " + " ".join(sasl.MECHANISMS))  # RFC 5034 §5
        if self._tls_available and not self.tls_active and self.state is State.AUTHORIZATION:
            caps.append("STLS")  # RFC 2595 §4
        caps.append("IMPLEMENTATION mailsandbox")
        body = b"".join(c.encode() + CRLF for c in caps)
        return [Reply(OK + b" capability list follows" + CRLF + body + TERMINATOR, multiline=True)]

    def _stls(self, rest: str) -> list[Event]:
        if self.tls_active:
            return self._err(ERR_TLS_ACTIVE)
        if not self._tls_available:
            return self._err(ERR_NO_TLS)
        # Drop anything pipelined after STLS: it arrived in plain text (RFC 2595 §4, CVE-2011-0411).
        self._buffer.clear()
        self._pending = "tls"
        return [*self._ok("begin TLS negotiation"), StartTlsRequested()]

    def _user(self, rest: str) -> list[Event]:
        name = rest.strip()
        if not name:
            return self._err(ERR_SYNTAX)
        self._candidate = name
        return self._ok("send PASS")

    def _pass(self, rest: str) -> list[Event]:
        if self._candidate is None:
            return self._err(ERR_NO_USER)
        user, self._candidate = self._candidate, None
        # RFC 1939 §7 allows spaces in the password: take the whole rest of the line.
        return self._login(user, lambda secret: hmac.compare_digest(secret.encode(), rest.encode()))

    def _apop(self, rest: str) -> list[Event]:
        parts = rest.split()
        if len(parts) != 2:
            return self._err(ERR_SYNTAX)
        user, digest = parts

        def check(secret: str) -> bool:  # RFC 1939 §7: MD5(timestamp + secret) in hex
            expected = hashlib.md5((self._timestamp + secret).encode(), usedforsecurity=False).hexdigest()
            return hmac.compare_digest(expected, digest.lower())

        return self._login(user, check)

    def _auth(self, rest: str) -> list[Event]:
        args = rest.split()
        if not args:  # RFC 5034 §4 allows listing mechanisms with a bare AUTH
            listing = b"".join(m.encode() + CRLF for m in sasl.MECHANISMS)
            return [Reply(OK + CRLF + listing + TERMINATOR, multiline=True)]
        mechanism = args[0].upper()
        if mechanism not in sasl.MECHANISMS or len(args) > 2:
            return self._err(ERR_MECHANISM)
        self._sasl = sasl.SaslServer(mechanism, self.hostname)
        return self._sasl_result(self._sasl.start(args[1] if len(args) == 2 else ""))

    def _sasl_result(self, step: sasl.Step) -> list[Event]:
        if isinstance(step, sasl.Challenge):
            return [Reply(CONTINUE + step.data + CRLF)]  # RFC 5034 §4
        self._sasl = None
        if isinstance(step, sasl.Failed):
            if step.reason == "cancelled":
                return self._err(ERR_CANCELLED)
            return self._err(b"-ERR invalid SASL response" if step.reason == "malformed" else ERR_AUTH)
        return self._login(step.user, step.check)

    def _login(self, name: str, check: _Check) -> list[Event]:
        locked = self._locked_out is not None and not self._accounts.accept_any and self._locked_out()
        user = None if locked else self._accounts.login(name, check)
        if user is None:
            if self._accounts.accept_any:  # an empty name: nothing to throttle
                return self._err(ERR_AUTH)
            return [LoginFailed(fold(name)), *self._err(ERR_AUTH)]
        self.user = user
        self._pending = "maildrop"
        return [MaildropRequested(user)]

    def _quit(self, rest: str) -> list[Event]:
        if self.state is State.TRANSACTION:
            self.state = State.UPDATE  # RFC 1939 §6
            self._pending = "update"
            uids = tuple(self._drop[i].uid for i in sorted(self._deleted))
            return [UpdateRequested(self.user or "", uids)]
        self.state = State.CLOSED
        return [*self._ok(f"{self.hostname} POP3 signing off"), CloseRequested()]

    # -- TRANSACTION (RFC 1939 §5) ------------------------------------------------------

    def _message(self, arg: str) -> int | list[Event]:
        """A message-number argument -> 0-based index, or the error reply."""
        if not _DIGITS.fullmatch(arg):
            return self._err(ERR_SYNTAX if not arg.isdigit() else ERR_NO_SUCH)
        index = int(arg) - 1
        if not 0 <= index < len(self._drop):
            return self._err(ERR_NO_SUCH)
        if index in self._deleted:
            return self._err(ERR_DELETED)
        return index

    def _live(self) -> list[int]:
        return [i for i in range(len(self._drop)) if i not in self._deleted]

    def _stat(self, rest: str) -> list[Event]:
        live = self._live()
        return self._ok(f"{len(live)} {sum(self._drop[i].size for i in live)}")

    def _list(self, rest: str) -> list[Event]:
        return self._scan(rest, lambda i: str(self._drop[i].size))

    def _uidl(self, rest: str) -> list[Event]:
        if self._uidls is None:
            self._uidls = [unique_id(item) for item in self._drop]
        uidls = self._uidls
        return self._scan(rest, lambda i: uidls[i])

    def _scan(self, rest: str, column: _Column) -> list[Event]:
        args = rest.split()
        if len(args) > 1:
            return self._err(ERR_SYNTAX)
        if args:
            index = self._message(args[0])
            if not isinstance(index, int):
                return index
            return self._ok(f"{index + 1} {column(index)}")
        body = "".join(f"{i + 1} {column(i)}\r\n" for i in self._live()).encode()
        return [Reply(OK + CRLF + body + TERMINATOR, multiline=True)]

    def _retr(self, rest: str) -> list[Event]:
        args = rest.split()
        if len(args) != 1:
            return self._err(ERR_SYNTAX)
        return self._fetch(args[0], None)

    def _top(self, rest: str) -> list[Event]:
        args = rest.split()
        if len(args) != 2 or not _DIGITS.fullmatch(args[1]):
            return self._err(ERR_SYNTAX)
        return self._fetch(args[0], int(args[1]))

    def _fetch(self, arg: str, lines: int | None) -> list[Event]:
        index = self._message(arg)
        if not isinstance(index, int):
            return index
        self._top_lines = lines
        self._pending = "message"
        return [MessageRequested(self._drop[index].message_id)]

    def _dele(self, rest: str) -> list[Event]:
        args = rest.split()
        if len(args) != 1:
            return self._err(ERR_SYNTAX)
        index = self._message(args[0])
        if not isinstance(index, int):
            return index
        self._deleted.add(index)  # RFC 1939 §5: only marked; removed in UPDATE
        return self._ok(f"message {index + 1} deleted")

    def _noop(self, rest: str) -> list[Event]:
        return self._ok()

    def _rset(self, rest: str) -> list[Event]:
        self._deleted.clear()
        return self._stat("")


_Handler = Callable[[Pop3Connection, str], list[Event]]

_AUTH_COMMANDS: dict[str, _Handler] = {
    "CAPA": Pop3Connection._capa,
    "STLS": Pop3Connection._stls,
    "USER": Pop3Connection._user,
    "PASS": Pop3Connection._pass,
    "APOP": Pop3Connection._apop,
    "AUTH": Pop3Connection._auth,
    "QUIT": Pop3Connection._quit,
}
_TX_COMMANDS: dict[str, _Handler] = {
    "CAPA": Pop3Connection._capa,
    "STAT": Pop3Connection._stat,
    "LIST": Pop3Connection._list,
    "UIDL": Pop3Connection._uidl,
    "RETR": Pop3Connection._retr,
    "TOP": Pop3Connection._top,
    "DELE": Pop3Connection._dele,
    "NOOP": Pop3Connection._noop,
    "RSET": Pop3Connection._rset,
    "QUIT": Pop3Connection._quit,
}
