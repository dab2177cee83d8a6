"""Sans-IO ESMTP server core (RFC 5321 with PIPELINING, SIZE, 8BITMIME, SMTPUTF8, STARTTLS, AUTH, CHUNKING)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from mailsandbox.protocols import sasl

CRLF = b"\r\n"
MAX_COMMAND = 2048  # RFC 5321 §4.5.3.1.4 says 512, plus room for extension parameters (§4.5.3.1.2)
MAX_AUTH_LINE = 12288  # RFC 4954 §4: SASL responses may be long
MAX_RECIPIENTS = 1000  # RFC 5321 §4.5.3.1.8 asks for at least 100
PIECE = 1 << 16  # content is kept in pieces of at least this many octets (a slow client's tiny reads merge)

# Replies, named so tests and the adapter share them (enhanced codes: RFC 3463, RFC 2034).
OK = b"250 2.0.0 Ok\r\n"
SENDER_OK = b"250 2.1.0 Ok\r\n"
RCPT_OK = b"250 2.1.5 Ok\r\n"
START_DATA = b"354 End data with <CR><LF>.<CR><LF>\r\n"
BYE = b"221 2.0.0 Bye\r\n"
AUTH_OK = b"235 2.7.0 Authentication successful\r\n"
READY_TLS = b"220 2.0.0 Ready to start TLS\r\n"
VRFY_REPLY = b"252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery\r\n"
TIMEOUT = b"421 4.4.2 Timeout: closing connection\r\n"
TOO_MANY_CONNECTIONS = b"421 4.7.0 Too many connections, try again later\r\n"
TOO_MANY_FAILURES = b"421 4.7.0 Too many failed logins, try again later\r\n"
TEMP_ERROR = b"451 4.3.0 Error: local problem, message not stored; try again\r\n"
TOO_MANY_RCPTS = b"452 4.5.3 Too many recipients\r\n"
TLS_UNAVAILABLE = b"454 4.7.0 TLS not available\r\n"
UNKNOWN = b"500 5.5.2 Error: command not recognized\r\n"
TOO_LONG = b"500 5.5.2 Error: line too long\r\n"
BAD_SYNTAX = b"501 5.5.4 Syntax error in parameters or arguments\r\n"
BAD_SENDER = b"501 5.1.7 Bad sender address syntax\r\n"
BAD_RECIPIENT = b"501 5.1.3 Bad recipient address syntax\r\n"
BAD_BASE64 = b"501 5.5.2 Cannot decode response\r\n"
AUTH_CANCELLED = b"501 5.7.0 Authentication cancelled\r\n"
NOT_IMPLEMENTED = b"502 5.5.1 Command not implemented\r\n"
NEED_HELO = b"503 5.5.1 Error: send HELO first\r\n"
NEED_EHLO = b"503 5.5.1 Error: send EHLO first\r\n"
NEED_MAIL = b"503 5.5.1 Error: need MAIL command\r\n"
NEED_RCPT = b"503 5.5.1 Error: need RCPT command\r\n"
NESTED_MAIL = b"503 5.5.1 Error: nested MAIL command\r\n"
ALREADY_AUTH = b"503 5.5.1 Error: already authenticated\r\n"
AUTH_IN_TX = b"503 5.5.1 Error: AUTH not permitted during a mail transaction\r\n"
ALREADY_TLS = b"503 5.5.1 Error: TLS already active\r\n"
RCPT_AFTER_BDAT = b"503 5.5.1 Error: RCPT after BDAT\r\n"
BDAT_MIXED = b"503 5.5.1 Error: DATA after BDAT\r\n"
BAD_MECHANISM = b"504 5.5.4 Unrecognized authentication type\r\n"
NEED_TLS = b"530 5.7.0 Must issue a STARTTLS command first\r\n"
NEED_AUTH = b"530 5.7.0 Authentication required\r\n"  # RFC 4954 §6
AUTH_FAILED = b"535 5.7.8 Authentication credentials invalid\r\n"
AUTH_NEEDS_TLS = b"538 5.7.11 Encryption required for requested authentication mechanism\r\n"
TOO_BIG = b"552 5.3.4 Error: message too big\r\n"
NEEDS_SMTPUTF8 = b"553 5.6.7 Non-ASCII address needs SMTPUTF8\r\n"
BAD_PARAMETER = b"555 5.5.4 Unsupported MAIL/RCPT parameter\r\n"


class State(Enum):
    COMMAND = "COMMAND"  # reading command lines
    DATA = "DATA"  # reading a dot-terminated message (RFC 5321 §4.1.1.4)
    BDAT = "BDAT"  # reading a counted chunk (RFC 3030 §2)
    AUTH = "AUTH"  # reading a SASL response line (RFC 4954 §4)
    WAITING = "WAITING"  # an answer from the adapter is due; input stays buffered
    CLOSED = "CLOSED"


@dataclass
class Transaction:
    """One mail transaction: MAIL, its RCPTs, then the content (RFC 5321 §3.3)."""

    mail_from: str
    mail_options: list[str] = field(default_factory=list)
    rcpt_tos: list[str] = field(default_factory=list)
    rcpt_options: list[str] = field(default_factory=list)
    smtputf8: bool = False
    body_8bit: bool = False


# -- events: what the adapter must do -------------------------------------------------


@dataclass(frozen=True)
class Reply:
    data: bytes


@dataclass(frozen=True)
class MessageReceived:
    """Content complete: store it, then call `message_stored` with the reply to send (the 250 only after
    commit). The content, in `parts`, has the transparency dots removed; line endings are as the client
    sent them. It comes in pieces so that the adapter can join them once, with its trace line, off the loop."""

    transaction: Transaction
    parts: list[bytes]
    helo: str
    auth_user: str | None
    tls: bool
    esmtp: bool = True  # EHLO, not HELO: the trace line says ESMTP rather than SMTP (RFC 3848)

    @property
    def content(self) -> bytes:
        return b"".join(self.parts)

    @property
    def size(self) -> int:
        return sum(map(len, self.parts))

    def take(self) -> list[bytes]:
        """Hand the pieces over; the event keeps none, so a large message is not held twice."""
        parts = self.parts[:]
        self.parts.clear()
        return parts


@dataclass(frozen=True)
class StartTlsRequested:
    """Run the server side of the TLS handshake (RFC 3207), then call `tls_started`."""


@dataclass(frozen=True)
class CloseRequested:
    """Close the connection once the replies before it are written."""


@dataclass(frozen=True)
class LoginFailed:
    """A client's credentials were wrong (its 535 is the Reply after this): the adapter may delay it."""

    user: str


@dataclass(frozen=True)
class Hold:
    """Hold the replies from here on (and stop reading) for `seconds`: a fault's delay."""

    seconds: float


Event = Reply | MessageReceived | StartTlsRequested | CloseRequested | LoginFailed | Hold

# A fault hook (the adapter's chaos rules): (stage, sender, recipients) -> None to go on as usual, or
# (reply, delay): that reply instead of the usual one (None: the usual one), after `delay` seconds.
# Stages asked here: "ehlo", "mail", "rcpt", "data", "auth".
FaultHook = Callable[[str, str, Sequence[str]], "tuple[bytes | None, float] | None"]

_TERMINATOR_STARTS = tuple((n, b"\r\n.\r\n"[:n]) for n in (4, 3, 2, 1))
_MAIL_PARAMS = frozenset({"SIZE", "BODY", "SMTPUTF8", "AUTH"})


class SmtpConnection:
    """One SMTP session. Feed bytes to `receive_data`; act on the events it returns.

    Nothing here does I/O: the adapter answers `MessageReceived` with `message_stored` and
    `StartTlsRequested` with `tls_started`. Pipelined input (RFC 2920) waits in the buffer meanwhile.
    `credentials` None accepts any login (recorded as the user); otherwise user -> password.
    `require_auth` refuses MAIL until a login succeeded (RFC 4954 §6: 530 5.7.0).
    `locked_out` says the client's address is past its failed-login limit: a login then fails unchecked, so
    connections opened before the cut-off cannot go on guessing.
    """

    def __init__(
        self,
        hostname: str = "mailsandbox.local",
        *,
        max_message_size: int = 0,
        tls_available: bool = False,
        tls_active: bool = False,
        require_tls: bool = False,
        credentials: Mapping[str, str] | None = None,
        allow_insecure_auth: bool = False,
        require_auth: bool = False,
        ident: str = "Mailsandbox ESMTP",
        challenge: str | None = None,
        fault: FaultHook | None = None,
        locked_out: Callable[[], bool] | None = None,
    ) -> None:
        self.hostname = hostname
        self.max_message_size = max_message_size
        self.tls_active = tls_active
        self.state = State.COMMAND
        self.helo: str | None = None
        self.extended = False  # EHLO (not HELO) was used
        self.auth_user: str | None = None
        self.transaction: Transaction | None = None
        self._tls_available = tls_available
        self._require_tls = require_tls
        self._credentials = credentials
        self._allow_insecure_auth = allow_insecure_auth
        self._require_auth = require_auth
        self._locked_out = locked_out
        self._ident = ident
        self._challenge = challenge  # CRAM-MD5's, for tests; by default each exchange makes its own
        self._buffer = bytearray()
        self._discarding = False  # inside an over-long command line, dropping up to its LF
        self._pieces: list[bytes] = []  # DATA or BDAT content so far, dots removed
        self._small = bytearray()  # its last piece while it is under PIECE octets
        self._size = 0  # octets of content so far
        self._lead = 0  # DATA: octets of the CRLF before the first line, still to drop
        self._too_big = False  # content over the limit: keep reading, store nothing, say 552
        self._chunk_left = 0  # BDAT: octets of the current chunk still to come
        self._chunk_last = False
        self._chunk_error: bytes | None = None  # the chunk is read, then this is the reply
        self._bdat = False  # this transaction's content comes by BDAT
        self._sasl: sasl.SaslServer | None = None  # an AUTH exchange under way
        self._fault = fault
        self._hold = 0.0  # a fault's delay for the reply of the command being answered

    # -- public API ------------------------------------------------------------------

    def greeting(self) -> list[Event]:
        return [Reply(f"220 {self.hostname} {self._ident}\r\n".encode())]

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the peer; b"" means EOF (an unfinished transaction is dropped)."""
        if self.state is State.CLOSED:
            return []
        if not data:
            self.state = State.CLOSED
            return []
        self._buffer += data
        if self.state is State.WAITING:
            return []
        return self._run()

    def message_stored(self, reply: bytes) -> list[Event]:
        """The store's answer to `MessageReceived`: "250 ..." once committed, or a 4xx."""
        if self.state is State.CLOSED:  # the client left first (sent QUIT and hung up): nobody to tell
            return []
        self._expect_waiting()
        self.state = State.COMMAND
        self.transaction = None
        self._bdat = False
        if reply.startswith(b"421"):  # RFC 5321 §3.8: 421 closes the channel
            self.state = State.CLOSED
            return [Reply(reply), CloseRequested()]
        return [Reply(reply), *self._run()]

    def tls_started(self) -> list[Event]:
        """Handshake done: the session starts over (RFC 3207 §4.2), nothing learned in clear is kept."""
        if self.state is State.CLOSED:
            return []
        self._expect_waiting()
        self.state = State.COMMAND
        self._buffer.clear()  # bytes that came in clear before the handshake are not trusted
        self.tls_active = True
        self.helo = None
        self.extended = False
        self.auth_user = None
        self._reset_transaction()
        return self._run()

    def timed_out(self) -> list[Event]:
        """The adapter's idle timer fired (RFC 5321 §4.5.3.2)."""
        self.state = State.CLOSED
        return [Reply(TIMEOUT), CloseRequested()]

    @property
    def buffered(self) -> int:
        """Input received and not yet consumed (pipelined ahead of an answer). Content being received
        does not count: it is consumed as it arrives, up to the size limit."""
        return len(self._buffer)

    # -- engine ----------------------------------------------------------------------

    def _expect_waiting(self) -> None:
        if self.state is not State.WAITING:
            raise RuntimeError(f"no answer is awaited (state {self.state.value})")

    def _run(self) -> list[Event]:
        events: list[Event] = []
        while True:
            state = self.state
            if state is State.COMMAND or state is State.AUTH:
                line = self._next_line(events)
                if line is None:
                    return events
                if self.state is State.AUTH:  # not `state`: an over-long line in between ends the exchange
                    answer = self._sasl_response(line)
                else:
                    answer = self._dispatch(line)
                if self._hold:
                    answer.insert(0, Hold(self._hold))
                    self._hold = 0.0
                events.extend(answer)
            elif state is State.DATA:
                if not self._read_data(events):
                    return events
            elif state is State.BDAT:
                if not self._read_chunk(events):
                    return events
            else:
                return events

    def _next_line(self, events: list[Event]) -> bytes | None:
        buffer = self._buffer
        while True:
            end = buffer.find(b"\n")
            if self._discarding:
                if end < 0:
                    buffer.clear()
                    return None
                del buffer[: end + 1]
                self._discarding = False
                continue
            limit = MAX_AUTH_LINE if self.state is State.AUTH or buffer[:5].upper() == b"AUTH " else MAX_COMMAND
            if end < 0:
                if len(buffer) > limit:  # no LF within the limit: refuse now, drop up to the LF
                    buffer.clear()
                    self._discarding = True
                    self._reset_sasl()
                    events.append(Reply(TOO_LONG))
                return None
            line = bytes(buffer[:end])
            del buffer[: end + 1]
            if end < limit:
                return line[:-1] if line.endswith(b"\r") else line
            self._reset_sasl()
            events.append(Reply(TOO_LONG))

    def _reset_sasl(self) -> None:
        if self.state is State.AUTH:
            self.state = State.COMMAND
            self._sasl = None

    def _dispatch(self, line: bytes) -> list[Event]:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            return [Reply(BAD_SYNTAX)]
        verb, _, arg = text.partition(" ")
        handler = _COMMANDS.get(verb.upper())
        if handler is None:
            return [Reply(UNKNOWN)]
        return handler(self, arg.strip())

    # -- content: DATA (RFC 5321 §4.1.1.4, §4.5.2) and BDAT (RFC 3030) ---------------

    def _read_data(self, events: list[Event]) -> bool:
        """Consume buffered bytes into the content up to CRLF.CRLF, unstuffing dots as they pass (RFC 5321
        §4.5.2); False when more input is needed. Only a tail that may start a terminator stays buffered."""
        buffer = self._buffer
        end = buffer.find(b"\r\n.\r\n")
        if end >= 0:
            self._consume_data(end + 2)  # the content keeps the CRLF before the dot
            del buffer[:3]
            self.state = State.COMMAND
            if self._too_big:
                self._drop_content()
                events.append(Reply(TOO_BIG))
            else:
                events.append(self._complete(self._take_content()))
            return True
        # Hold back the longest tail that is a start of CRLF.CRLF: every CRLF. then lies whole on one side.
        keep = next((n for n, tail in _TERMINATOR_STARTS if buffer.endswith(tail)), 0)
        self._consume_data(len(buffer) - keep)
        return False

    def _consume_data(self, count: int) -> None:
        if count <= 0:
            return
        if not self._too_big:
            with memoryview(self._buffer) as view:
                piece = bytes(view[:count])
            if b"\r\n." in piece:
                piece = piece.replace(b"\r\n.", b"\r\n")
            if self._lead:  # the CRLF that ended the DATA line: it let a first line's dot be found
                piece, self._lead = piece[self._lead :], 0
            self._append(piece)
        del self._buffer[:count]

    def _read_chunk(self, events: list[Event]) -> bool:
        buffer = self._buffer
        take = min(self._chunk_left, len(buffer))
        if self._chunk_error is None and not self._too_big and take:
            with memoryview(buffer) as view:
                self._append(bytes(view[:take]))
        del buffer[:take]
        self._chunk_left -= take
        if self._chunk_left:
            return False
        self.state = State.COMMAND
        if self._chunk_error is not None:
            events.append(Reply(self._chunk_error))
            self._chunk_error = None
        elif not self._chunk_last:
            received = f"250 2.0.0 {self._size} octets received\r\n".encode()
            events.append(Reply(TOO_BIG if self._too_big else received))
        elif self._too_big:  # RFC 3030 §2: the error is reported once the chunk has been read
            self._bdat = False
            self._drop_content()
            events.append(Reply(TOO_BIG))
        else:
            events.append(self._complete(self._take_content()))
        return True

    def _append(self, piece: bytes) -> None:
        """Add content; past the size limit keep nothing more (the reply will be 552)."""
        self._size += len(piece)
        if self.max_message_size and self._size > self.max_message_size:
            self._too_big = True
            self._pieces.clear()
            self._small.clear()
            return
        small = self._small
        if len(piece) >= PIECE and not small:
            self._pieces.append(piece)
            return
        small += piece
        if len(small) >= PIECE:
            self._pieces.append(bytes(small))
            small.clear()

    def _take_content(self) -> list[bytes]:
        if self._small:
            self._pieces.append(bytes(self._small))
        parts, self._pieces = self._pieces, []
        self._drop_content()
        return parts

    def _drop_content(self) -> None:
        """The content goes (stored, refused or reset); so does the transaction when it was too big."""
        if self._too_big:
            self.transaction = None
        self._pieces = []
        self._small.clear()
        self._size = self._lead = 0
        self._too_big = False

    def _complete(self, parts: list[bytes]) -> MessageReceived:
        assert self.transaction is not None
        self.state = State.WAITING
        return MessageReceived(
            self.transaction, parts, self.helo or "", self.auth_user, self.tls_active, esmtp=self.extended
        )

    # -- faults (chaos rules): a reply instead of the usual one, or a delay ----------------

    def _faulted(self, stage: str, sender: str = "", recipients: Sequence[str] = ()) -> list[Event] | None:
        """Ask the fault hook (set) at a command that would succeed: None goes on as usual (a delay alone
        is left in `_hold` for `_run`), else the events that refuse it, the state unchanged."""
        assert self._fault is not None
        fault = self._fault(stage, sender, recipients)
        if fault is None:
            return None
        reply, delay = fault
        if reply is None:
            self._hold = delay
            return None
        events: list[Event] = [Hold(delay)] if delay > 0 else []
        events.append(Reply(reply))
        if reply.startswith(b"421"):  # RFC 5321 §3.8: 421 closes the channel
            self.state = State.CLOSED
            events.append(CloseRequested())
        return events

    # -- commands --------------------------------------------------------------------

    def _helo(self, arg: str) -> list[Event]:
        if not arg:
            return [Reply(b"501 5.5.4 Syntax: HELO hostname\r\n")]
        if self._fault is not None and (refused := self._faulted("ehlo")) is not None:
            return refused
        self.helo, self.extended = arg, False
        self._reset_transaction()  # RFC 5321 §4.1.4
        return [Reply(f"250 {self.hostname}\r\n".encode())]

    def _ehlo(self, arg: str) -> list[Event]:
        if not arg:
            return [Reply(b"501 5.5.4 Syntax: EHLO hostname\r\n")]
        if self._fault is not None and (refused := self._faulted("ehlo")) is not None:
            return refused
        self.helo, self.extended = arg, True
        self._reset_transaction()
        lines = [self.hostname, "PIPELINING", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING"]
        if self.max_message_size:
            lines.append(f"SIZE {self.max_message_size}")
        else:
            lines.append("SIZE")
        if self._tls_available and not self.tls_active:
            lines.append("STARTTLS")
        if self._auth_offered():
            lines.append("AUTH PLAIN LOGIN CRAM-MD5")
        lines.append("HELP")
        text = "".join(f"250-{line}\r\n" for line in lines[:-1]) + f"250 {lines[-1]}\r\n"
        return [Reply(text.encode())]

    def _auth_offered(self) -> bool:
        return self.tls_active or self._allow_insecure_auth

    def _mail(self, arg: str) -> list[Event]:
        if self.helo is None:
            return [Reply(NEED_HELO)]
        if self._require_tls and not self.tls_active:
            return [Reply(NEED_TLS)]
        if self._require_auth and self.auth_user is None:
            return [Reply(NEED_AUTH)]
        if self.transaction is not None:
            return [Reply(NESTED_MAIL)]
        if arg[:5].upper() != "FROM:":
            return [Reply(b"501 5.5.4 Syntax: MAIL FROM:<address>\r\n")]
        parsed = _path(arg[5:], reverse=True)
        if parsed is None:
            return [Reply(BAD_SENDER)]
        address, params = parsed
        txn = Transaction(address)
        for param in params:
            key, _, value = param.partition("=")
            key = key.upper()
            if key not in _MAIL_PARAMS or not self.extended:  # RFC 5321 §4.1.1.11: only after EHLO
                return [Reply(BAD_PARAMETER)]
            if key == "SIZE":  # RFC 1870 §6
                if not _is_number(value):
                    return [Reply(BAD_SYNTAX)]
                if self.max_message_size and int(value) > self.max_message_size:
                    return [Reply(TOO_BIG)]
            elif key == "BODY":  # RFC 6152
                if value.upper() not in ("7BIT", "8BITMIME"):
                    return [Reply(BAD_SYNTAX)]
                txn.body_8bit = value.upper() == "8BITMIME"
            elif key == "SMTPUTF8":  # RFC 6531 §3.4
                if value:
                    return [Reply(BAD_SYNTAX)]
                txn.smtputf8 = True
            txn.mail_options.append(param)
        if not txn.smtputf8 and not address.isascii():  # RFC 6531 §3.7.4.1 (5.6.7, RFC 6533 §3)
            return [Reply(NEEDS_SMTPUTF8)]
        if self._fault is not None and (refused := self._faulted("mail", address)) is not None:
            return refused
        self.transaction = txn
        return [Reply(SENDER_OK)]

    def _rcpt(self, arg: str) -> list[Event]:
        txn = self.transaction
        if txn is None:
            return [Reply(NEED_MAIL)]
        if self._bdat:
            return [Reply(RCPT_AFTER_BDAT)]
        if arg[:3].upper() != "TO:":
            return [Reply(b"501 5.5.4 Syntax: RCPT TO:<address>\r\n")]
        parsed = _path(arg[3:], reverse=False)
        if parsed is None:
            return [Reply(BAD_RECIPIENT)]
        address, params = parsed
        if params:
            return [Reply(BAD_PARAMETER)]  # DSN's NOTIFY/ORCPT are not offered
        if not txn.smtputf8 and not address.isascii():
            return [Reply(NEEDS_SMTPUTF8)]
        if len(txn.rcpt_tos) >= MAX_RECIPIENTS:
            return [Reply(TOO_MANY_RCPTS)]
        if self._fault is not None and (refused := self._faulted("rcpt", txn.mail_from, (address,))) is not None:
            return refused
        txn.rcpt_tos.append(address)
        return [Reply(RCPT_OK)]

    def _data(self, arg: str) -> list[Event]:
        if arg:
            return [Reply(b"501 5.5.4 Syntax: DATA\r\n")]
        if self.transaction is None:
            return [Reply(NEED_MAIL)]
        if self._bdat:
            return [Reply(BDAT_MIXED)]  # RFC 3030 §2: DATA and BDAT never mix in one transaction
        if not self.transaction.rcpt_tos:
            return [Reply(NEED_RCPT)]
        txn = self.transaction
        if self._fault is not None and (refused := self._faulted("data", txn.mail_from, txn.rcpt_tos)) is not None:
            return refused
        self.state = State.DATA
        self._drop_content()
        self._buffer[:0] = CRLF  # so a dot or the terminator on the first line is found like any other
        self._lead = len(CRLF)
        return [Reply(START_DATA)]

    def _bdat_command(self, arg: str) -> list[Event]:
        words = arg.split()
        if not words or not _is_number(words[0]) or len(words) > 2 or (len(words) == 2 and words[1].upper() != "LAST"):
            return [Reply(b"501 5.5.4 Syntax: BDAT size [LAST]\r\n")]
        # RFC 3030 §2: the chunk follows whatever the reply will be, so it is read (and dropped) on errors too.
        self._chunk_left = int(words[0])
        self._chunk_last = len(words) == 2
        self.state = State.BDAT
        if self.transaction is None:
            self._chunk_error = NEED_MAIL
        elif not self.transaction.rcpt_tos:
            self._chunk_error = NEED_RCPT
        elif not self._bdat:
            self._bdat = True
            self._drop_content()
        return []

    def _rset(self, arg: str) -> list[Event]:
        self._reset_transaction()
        return [Reply(OK)]

    def _reset_transaction(self) -> None:
        self.transaction = None
        self._bdat = False  # a half-sent BDAT transaction goes too, or RCPT stays refused and its chunks linger
        self._drop_content()

    def _noop(self, arg: str) -> list[Event]:
        return [Reply(OK)]

    def _vrfy(self, arg: str) -> list[Event]:
        return [Reply(VRFY_REPLY if arg else b"501 5.5.4 Syntax: VRFY address\r\n")]

    def _expn(self, arg: str) -> list[Event]:
        return [Reply(NOT_IMPLEMENTED)]  # RFC 5321 §7.3: mailing lists are not expanded to strangers

    def _help(self, arg: str) -> list[Event]:
        return [Reply(b"214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY STARTTLS AUTH HELP\r\n")]

    def _quit(self, arg: str) -> list[Event]:
        self.state = State.CLOSED
        return [Reply(BYE), CloseRequested()]

    def _starttls(self, arg: str) -> list[Event]:
        if arg:
            return [Reply(b"501 5.5.4 Syntax: STARTTLS\r\n")]
        if self.tls_active:
            return [Reply(ALREADY_TLS)]
        if not self._tls_available:
            return [Reply(TLS_UNAVAILABLE)]
        # RFC 3207 §4.2 / CVE-2011-0411: anything pipelined after STARTTLS came in clear; drop it.
        self._buffer.clear()
        self.state = State.WAITING
        return [Reply(READY_TLS), StartTlsRequested()]

    # -- AUTH (RFC 4954; the mechanisms are in protocols/sasl.py) --------------------------

    def _auth(self, arg: str) -> list[Event]:
        if self.helo is None or not self.extended:  # AUTH is an ESMTP extension (RFC 4954 §4)
            return [Reply(NEED_EHLO)]
        if self.auth_user is not None:
            return [Reply(ALREADY_AUTH)]
        if self.transaction is not None:
            return [Reply(AUTH_IN_TX)]
        if not self._auth_offered():
            return [Reply(AUTH_NEEDS_TLS)]
        mechanism, _, initial = arg.partition(" ")
        mechanism = mechanism.upper()
        initial = initial.strip()
        if mechanism not in sasl.MECHANISMS or (initial and mechanism == "CRAM-MD5"):  # RFC 2195: server first
            return [Reply(BAD_MECHANISM)]
        self._sasl = sasl.SaslServer(mechanism, self.hostname, self._challenge)
        return self._sasl_result(self._sasl.start(initial))

    def _sasl_response(self, line: bytes) -> list[Event]:
        self.state = State.COMMAND
        assert self._sasl is not None
        return self._sasl_result(self._sasl.step(line.decode("ascii", "replace")))

    def _sasl_result(self, step: sasl.Step) -> list[Event]:
        if isinstance(step, sasl.Challenge):
            self.state = State.AUTH
            return [Reply(b"334 " + step.data + CRLF)]
        self._sasl = None
        if isinstance(step, sasl.Failed):
            if step.reason == "cancelled":  # RFC 4954 §4
                return [Reply(AUTH_CANCELLED)]
            return [Reply(BAD_BASE64 if step.reason == "malformed" else AUTH_FAILED)]
        if self._credentials is not None:
            secret = self._credentials.get(step.user)
            locked = self._locked_out is not None and self._locked_out()
            if locked or secret is None or not step.check(secret):
                return [LoginFailed(step.user), Reply(AUTH_FAILED)]
        if self._fault is not None and (refused := self._faulted("auth", step.user)) is not None:
            return refused
        self.auth_user = step.user  # with no credentials configured, any login works and is recorded
        return [Reply(AUTH_OK)]


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()  # str.isdigit alone takes "²", which int() refuses


# RFC 5321 §4.1.2 paths, with RFC 6531 §3.3's UTF-8 in local parts and domains (C1 controls excluded: the
# caller answers 553 5.6.7 to UTF-8 without SMTPUTF8). No pattern can match one text two ways, so matching
# is linear in the argument. One leniency: "_" in domain labels (container and host names have them).
_UTF8 = "\u00a0-\U0010ffff"
_ATOM = f"[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~{_UTF8}-]+"
_QUOTED = f'"(?:[\\x20\\x21\\x23-\\x5b\\x5d-\\x7e{_UTF8}]|\\\\[\\x20-\\x7e])*"'  # qtextSMTP, quoted-pairSMTP
_LABEL = f"[A-Za-z0-9_{_UTF8}]+(?:-+[A-Za-z0-9_{_UTF8}]+)*"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})*"
_MAILBOX = rf"(?:{_ATOM}(?:\.{_ATOM})*|{_QUOTED})@(?:{_DOMAIN}|\[(?P<literal>[\x21-\x5a\x5e-\x7e]+)\])"
_BARE_PATH = re.compile(_MAILBOX)
# A source route (@a,@b:) is read and dropped (RFC 5321 §C); "<>" and "<Postmaster>" are checked by the caller.
_ANGLE_PATH = re.compile(rf"<(?:@{_DOMAIN}(?:,@{_DOMAIN})*:)?(?P<mailbox>{_MAILBOX}|(?i:postmaster))?>")


def _path(text: str, *, reverse: bool) -> tuple[str, list[str]] | None:
    """RFC 5321 §4.1.2 Reverse-path (`reverse`: "<>" allowed) or Forward-path ("<Postmaster>" allowed, §4.5.1)
    and its parameters; None if malformed: a comma list, a control character, a stray quote or bracket.
    Lenient only in the framing, as deployed servers are: a space after the colon, or no angle brackets."""
    text = text.lstrip(" ")
    match = (_ANGLE_PATH if text.startswith("<") else _BARE_PATH).match(text)
    if match is None:
        return None
    address = match["mailbox"] if match.re is _ANGLE_PATH else match[0]
    if address is None:
        if not reverse or match[0] != "<>":
            return None
        address = ""
    elif "@" not in address and reverse:
        return None  # postmaster without a domain is a recipient only
    if match["literal"] is not None and not _is_address_literal(match["literal"]):
        return None
    rest = text[match.end() :]
    if rest and (not rest.startswith(" ") or not rest.isprintable()):  # parameters: SP-separated, no controls
        return None
    return address, rest.split()


def _is_address_literal(text: str) -> bool:
    """RFC 5321 §4.1.3: an IPv4 address, "IPv6:" and an IPv6 address, or a tag and its content."""
    tag, colon, content = text.partition(":")
    if not colon:
        return _is_ip(ipaddress.IPv4Address, text)
    if tag.upper() == "IPV6":
        return _is_ip(ipaddress.IPv6Address, content)
    return re.fullmatch(r"[A-Za-z0-9]+(?:-+[A-Za-z0-9]+)*", tag) is not None and bool(content)


def _is_ip(kind: type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address], text: str) -> bool:
    try:
        kind(text)
    except ValueError:
        return False
    return True


_COMMANDS: dict[str, Callable[[SmtpConnection, str], list[Event]]] = {
    "HELO": SmtpConnection._helo,
    "EHLO": SmtpConnection._ehlo,
    "MAIL": SmtpConnection._mail,
    "RCPT": SmtpConnection._rcpt,
    "DATA": SmtpConnection._data,
    "BDAT": SmtpConnection._bdat_command,
    "RSET": SmtpConnection._rset,
    "NOOP": SmtpConnection._noop,
    "VRFY": SmtpConnection._vrfy,
    "EXPN": SmtpConnection._expn,
    "HELP": SmtpConnection._help,
    "QUIT": SmtpConnection._quit,
    "STARTTLS": SmtpConnection._starttls,
    "AUTH": SmtpConnection._auth,
}
