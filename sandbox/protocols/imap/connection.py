"""ImapConnection: the sans-IO IMAP4rev1 server (RFC 3501). Bytes in, bytes out; storage via a Backend."""

from __future__ import annotations

import re

from mailsandbox.protocols.imap import commands as c
from mailsandbox.protocols.imap import responses as r
from mailsandbox.protocols.imap.backend import Backend, MessageCache, RecentTracker
from mailsandbox.protocols.imap.folders import FolderCommands
from mailsandbox.protocols.imap.grammar import ParseError
from mailsandbox.protocols.imap.messages import MessageCommands
from mailsandbox.protocols.imap.parser import BadCommand, decode_sasl, parse_command, read_tag
from mailsandbox.protocols.imap.responses import BAD, BYE, NO, OK, continuation, status, untagged
from mailsandbox.protocols.imap.session import ErrorLog, Login, Reply, State, accept_any

MAX_LINE = 64 * 1024
MAX_LITERAL = 25 * 1024 * 1024  # after login: the message size limit (APPENDLIMIT, RFC 7889)
# Before login a literal only carries a user name or password: no stranger makes us buffer megabytes.
MAX_LITERAL_PREAUTH = 4096  # RFC 7888 §5: LITERAL-'s bound on non-synchronizing literals
_LITERAL_AT_END = re.compile(rb"\{(\d{1,20})(\+?)\}\r?\n\Z")
_APPEND = re.compile(rb"[^ ]+ APPEND ", re.IGNORECASE)

_ANY = frozenset(State) - {State.LOGOUT}
_NOT_AUTH = frozenset({State.NOT_AUTHENTICATED})
_AUTH = frozenset({State.AUTHENTICATED, State.SELECTED})
_SELECTED = frozenset({State.SELECTED})
# RFC 3501 §6: the states in which each command is valid ("Rule 1" of h11: the state table is data).
ALLOWED: dict[str, frozenset[State]] = {
    **dict.fromkeys(("CAPABILITY", "NOOP", "LOGOUT", "ID"), _ANY),
    **dict.fromkeys(("STARTTLS", "LOGIN", "AUTHENTICATE"), _NOT_AUTH),
    **dict.fromkeys(
        "SELECT EXAMINE CREATE DELETE RENAME SUBSCRIBE UNSUBSCRIBE LIST LSUB STATUS APPEND IDLE NAMESPACE"
        " ENABLE".split(),
        _AUTH,
    ),
    **dict.fromkeys(
        [
            *"CHECK CLOSE UNSELECT EXPUNGE SEARCH FETCH STORE COPY MOVE".split(),
            *("UID " + name for name in "FETCH SEARCH STORE COPY MOVE EXPUNGE".split()),
        ],
        _SELECTED,
    ),
}
# RFC 3501 §7.4.1: no EXPUNGE response while a FETCH, STORE or SEARCH (by sequence number) runs.
_NO_EXPUNGE_NEWS = frozenset({"FETCH", "STORE", "SEARCH"})
_FORCE_REFRESH = frozenset({"NOOP", "CHECK", "IDLE"})


class ImapConnection(FolderCommands, MessageCommands):
    """One client session. Feed `receive_data`; write back what it returns.

    The adapter also watches `starttls_requested` (write the reply, upgrade, call `tls_started`),
    `closed` (write the reply, then close) and calls `notify()` when the store changes.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        login: Login = accept_any,
        tls_available: bool = False,
        tls_active: bool = False,
        cache: MessageCache | None = None,
        recent: RecentTracker | None = None,
        notified: bool = False,
        max_line: int = MAX_LINE,
        max_literal: int = MAX_LITERAL,
        max_literal_preauth: int = MAX_LITERAL_PREAUTH,
        log: ErrorLog | None = None,
    ) -> None:
        super().__init__(backend, login=login, cache=cache, recent=recent, notified=notified, log=log)
        self.tls_available = tls_available
        self.tls_active = tls_active
        self.starttls_requested = False
        self.closed = False
        self._max_line = max_line
        self._max_literal = max_literal
        self._max_literal_preauth = min(max_literal_preauth, max_literal)
        self._buffer = bytearray()
        self._command = bytearray()  # lines and literals of the command being assembled
        self._literal_left = 0
        self._discarding: str | None = None  # why the current command is being dropped
        self._discard_tag: str | None = None
        self._idle_tag: str | None = None
        self._auth_tag: str | None = None

    # -- the sans-IO surface -------------------------------------------------------------

    def greeting(self) -> bytes:
        return status(None, OK, "Mailsandbox IMAP4rev1 ready", self._capability_code())  # RFC 3501 §7.1.1

    @property
    def idling(self) -> bool:
        return self._idle_tag is not None

    @property
    def selected(self) -> tuple[str, str] | None:
        return (self.box.user, self.box.name) if self.box is not None else None

    def watches(self, message_ids: tuple[str, ...]) -> bool:
        """Does a change to these store messages concern the selected mailbox?"""
        box = self.box
        return box is not None and (not message_ids or any(m in box.message_ids for m in message_ids))

    def notify(self) -> bytes:
        """The store changed under the selected mailbox: news now while idling, else at the next command."""
        if self.box is None:
            return b""
        self._dirty = True
        if self._idle_tag is None:
            return b""
        return b"".join(self.refresh(expunge=True))  # RFC 2177: untagged updates flow during IDLE

    def tls_started(self) -> None:
        self.starttls_requested = False
        self.tls_active = True

    def receive_data(self, data: bytes) -> bytes:
        """Consume client bytes (b"" is EOF) and return every byte to send in reply."""
        if not data:
            self.closed = True
            return b""
        if self.closed or self.starttls_requested:
            return b""  # after STARTTLS's OK, plaintext must not be acted on (RFC 3501 §6.2.1)
        self._buffer += data
        out: list[bytes] = []
        while not (self.closed or self.starttls_requested):
            if self._literal_left:
                take = min(self._literal_left, len(self._buffer))
                if not take:
                    break
                if self._discarding is None:
                    self._command += self._buffer[:take]
                del self._buffer[:take]
                self._literal_left -= take
                continue
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > self._max_line:
                    # Memory stays bounded: drop the line so far; its end (maybe a literal) decides the rest.
                    self._start_discard("Line too long", bytes(self._buffer[:128]))
                    self._buffer.clear()
                break
            line = bytes(self._buffer[: end + 1])
            del self._buffer[: end + 1]
            if len(line) > self._max_line:
                self._start_discard("Line too long", line[:128])
            out.extend(self._line(line))
        if self.starttls_requested:
            self._buffer.clear()
        return b"".join(out)

    # -- framing: lines, literals, limits ------------------------------------------------

    def _start_discard(self, reason: str, head: bytes) -> None:
        if self._discarding is None:
            self._discarding = reason
            self._discard_tag = read_tag(bytes(self._command) or head)
            self._command.clear()

    def _line(self, line: bytes) -> Reply:
        if self._idle_tag is not None and self._discarding is None:
            return self._idle_line(line)
        if self._auth_tag is not None and self._discarding is None:
            return self._sasl_line(line)
        m = _LITERAL_AT_END.search(line)
        if self._discarding is not None:
            if m is not None:
                size = int(m.group(1))
                if m.group(2):  # a non-synchronizing literal arrives regardless; skip its bytes
                    self._literal_left = size
                    return []
            reason, tag = self._discarding, self._discard_tag
            self._discarding = self._discard_tag = None
            return [status(tag, BAD, reason)]
        if not self._command and line.strip() == b"":
            return []  # a stray empty line between commands is ignored
        self._command += line
        if m is None:
            return self._execute(self._take_command())
        size = int(m.group(1))
        limit = self._max_literal if self.state in _AUTH else self._max_literal_preauth
        if size > limit or len(self._command) + size > limit + self._max_line:
            return self._too_big(size, bool(m.group(2)))
        self._literal_left = size
        return [] if m.group(2) else [continuation("Ready for literal data")]  # RFC 3501 §7.5

    def _take_command(self) -> bytes:
        data = bytes(self._command)
        self._command.clear()  # one copy of a big APPEND at a time, not two
        return data

    def _too_big(self, size: int, non_synchronizing: bool) -> Reply:
        # Refused before a byte of it is buffered: a synchronizing literal never gets its "+" (RFC 7888 §4).
        command = bytes(self._command)
        self._command.clear()
        tag = read_tag(command)
        if self.state not in _AUTH:
            if non_synchronizing:  # its bytes are on their way: answer and hang up rather than read them
                self.closed = True
                return [status(tag, BAD, "Literal too large", r.TOOBIG), status(None, BYE, "Literal too large")]
            return [status(tag, BAD, "Literal too large before login", r.TOOBIG)]
        if non_synchronizing:  # the bytes come anyway; drop them, then the rest of the command
            self._discarding, self._discard_tag = "[TOOBIG] Literal too large", tag
            self._literal_left = size
            return []
        if _APPEND.match(command):  # RFC 7889 §4: an APPEND over APPENDLIMIT gets NO [TOOBIG]
            return [status(tag, NO, f"Message over the {self._max_literal} byte limit", r.TOOBIG)]
        return [status(tag, BAD, "Literal too large", r.TOOBIG)]

    def _idle_line(self, line: bytes) -> Reply:
        tag, self._idle_tag = self._idle_tag, None
        if line.strip().upper() == b"DONE":  # RFC 2177 §3
            return [*self.refresh(expunge=True), status(tag, OK, "IDLE terminated")]
        return [status(tag, BAD, "Expected DONE")]

    def _sasl_line(self, line: bytes) -> Reply:
        tag, self._auth_tag = self._auth_tag, None
        assert tag is not None
        if line.strip() == b"*":
            return [status(tag, BAD, "Authentication cancelled")]  # RFC 3501 §6.2.2
        try:
            response = decode_sasl(line.strip())
        except ParseError:
            return [status(tag, BAD, "Invalid base64")]
        return self._plain(tag, response)

    # -- dispatch ------------------------------------------------------------------------

    def _execute(self, data: bytes) -> Reply:
        try:
            cmd = parse_command(data)
        except BadCommand as exc:
            return [status(exc.tag, BAD, exc.message)]
        del data  # the command holds what it needs (an APPEND its literal): free the line while it runs
        if self.state not in ALLOWED[cmd.name]:
            return [status(cmd.tag, BAD, f"{cmd.name} is not allowed in the {self.state.value} state")]
        handler = getattr(self, "_cmd_" + cmd.name.lower().replace(" ", "_"))
        try:
            reply: Reply = handler(cmd)
        except Exception as exc:  # a store failure fails this command only; the session goes on
            self._report(cmd.name, exc)
            self._idle_tag = self._auth_tag = None
            reply = [status(cmd.tag, NO, "Server error, the command was not completed", r.SERVERBUG)]
        if self.box is not None and cmd.name not in ("SELECT", "EXAMINE", "LOGOUT"):
            if self._dirty or not self._notified or cmd.name in _FORCE_REFRESH:
                news = self.refresh(expunge=cmd.name not in _NO_EXPUNGE_NEWS)
                reply[-1:-1] = news
        return reply

    # -- any state ------------------------------------------------------------------------

    def capabilities(self) -> list[str]:
        # LITERAL- before login (RFC 7888 §5: non-synchronizing literals up to 4096 bytes), LITERAL+ after.
        literal = "LITERAL+" if self.state in _AUTH else "LITERAL-"
        caps = f"IMAP4rev1 {literal} SASL-IR ID ENABLE IDLE NAMESPACE UIDPLUS MOVE UNSELECT CHILDREN".split()
        caps += ["AUTH=PLAIN", f"APPENDLIMIT={self._max_literal}"]
        if self.tls_available and not self.tls_active and self.state is State.NOT_AUTHENTICATED:
            caps.append("STARTTLS")
        return caps

    def _capability_code(self) -> str:
        return "CAPABILITY " + " ".join(self.capabilities())

    def _cmd_capability(self, cmd: c.Command) -> Reply:
        line = b"CAPABILITY " + " ".join(self.capabilities()).encode("ascii")
        return [untagged(line), status(cmd.tag, OK, "CAPABILITY completed")]

    def _cmd_noop(self, cmd: c.Command) -> Reply:
        return [status(cmd.tag, OK, "NOOP completed")]

    def _cmd_logout(self, cmd: c.Command) -> Reply:
        self.state, self.box, self.closed = State.LOGOUT, None, True
        return [status(None, BYE, "Mailsandbox logging out"), status(cmd.tag, OK, "LOGOUT completed")]

    def _cmd_id(self, cmd: c.Id) -> Reply:
        # RFC 2971: the client's fields are accepted and not needed
        return [untagged(b'ID ("name" "Mailsandbox" "vendor" "Mailsandbox")'), status(cmd.tag, OK, "ID done")]

    # -- not authenticated ----------------------------------------------------------------

    def _cmd_starttls(self, cmd: c.Command) -> Reply:
        if not self.tls_available or self.tls_active:
            return [status(cmd.tag, BAD, "TLS is not available here")]
        self.starttls_requested = True
        return [status(cmd.tag, OK, "Begin TLS negotiation now")]

    def _logged_in(self, tag: str, user: str, password: str, what: str) -> Reply:
        owner = self._check_login(user, password)
        if owner is None:
            return self._no(tag, "Invalid credentials", r.AUTHENTICATIONFAILED)
        self.user, self.state = owner, State.AUTHENTICATED
        return [status(tag, OK, f"{what} completed", self._capability_code())]

    def _cmd_login(self, cmd: c.Login) -> Reply:
        return self._logged_in(cmd.tag, cmd.user, cmd.password, "LOGIN")

    def _cmd_authenticate(self, cmd: c.Authenticate) -> Reply:
        if cmd.mechanism != "PLAIN":
            return self._no(cmd.tag, "Unsupported authentication mechanism")
        if cmd.initial is not None:
            return self._plain(cmd.tag, cmd.initial)
        self._auth_tag = cmd.tag
        return [continuation()]

    def _plain(self, tag: str, response: bytes) -> Reply:
        # RFC 4616: message = [authzid] UTF8NUL authcid UTF8NUL passwd
        parts = response.split(b"\x00")
        if len(parts) != 3:
            return [status(tag, BAD, "Malformed PLAIN response")]
        authzid, authcid, password = (part.decode("utf-8", "surrogateescape") for part in parts)
        if authzid and authzid.lower() != authcid.lower():
            return self._no(tag, "Acting as another user is not allowed", r.AUTHENTICATIONFAILED)
        return self._logged_in(tag, authcid, password, "AUTHENTICATE")

    # -- authenticated --------------------------------------------------------------------

    def _cmd_idle(self, cmd: c.Command) -> Reply:
        self._idle_tag = cmd.tag
        return [continuation("idling")]

    def _cmd_namespace(self, cmd: c.Command) -> Reply:
        # RFC 2342: one personal namespace, no prefix, "/" as delimiter; nothing shared
        return [untagged(b'NAMESPACE (("" "/")) NIL NIL'), status(cmd.tag, OK, "NAMESPACE completed")]

    def _cmd_enable(self, cmd: c.Enable) -> Reply:
        return [untagged(b"ENABLED"), status(cmd.tag, OK, "ENABLE completed")]  # RFC 5161: nothing to enable
