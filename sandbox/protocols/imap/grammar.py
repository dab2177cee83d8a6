"""RFC 3501 §9 formal syntax: a cursor over one assembled command whose literals sit inline."""

from __future__ import annotations

import base64
import calendar
import datetime
import re
from dataclasses import dataclass

MAX_NUMBER = 4294967295  # RFC 3501 §9: number = 1*DIGIT ; unsigned 32-bit integer


class ParseError(Exception):
    """The client sent something the grammar does not allow: answered BAD, the session goes on."""


# ATOM-CHAR = <any CHAR except atom-specials>;
# atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards / quoted-specials / resp-specials
_ATOM = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\\]]+')
# ASTRING-CHAR = ATOM-CHAR / resp-specials
_ASTRING_ATOM = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\]+')
# tag = 1*<any ASTRING-CHAR except "+">
_TAG = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\+]+')
# list-char = ATOM-CHAR / list-wildcards / resp-specials
_LIST_ATOM = re.compile(rb'[^\x00-\x20\x7f-\xff(){"\\]+')
# quoted = DQUOTE *QUOTED-CHAR DQUOTE; 8-bit is tolerated because clients send UTF-8 for CHARSET UTF-8
_QUOTED = re.compile(rb'"((?:[^"\\\r\n]|\\["\\])*)"')
# literal = "{" number "}" CRLF *CHAR8, and RFC 7888 literal+ "{" number "+}"
_LITERAL = re.compile(rb"\{(\d{1,10})(\+?)\}\r?\n")
_NUMBER = re.compile(rb"\d+")
_SEQ_RANGE = re.compile(rb"(\d+|\*)(?::(\d+|\*))?")
SYSTEM_FLAGS = {f.lower(): f for f in "\\Seen \\Answered \\Flagged \\Deleted \\Draft \\Recent".split()}
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {name.upper(): index for index, name in enumerate(MONTHS, start=1)}  # not locale-dependent
_DATE = re.compile(rb"(\d{1,2})-([A-Za-z]{3})-(\d{4})")
# date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE
_DATE_TIME = re.compile(rb'" ?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"')


@dataclass(frozen=True)
class SeqSet:
    """sequence-set (RFC 3501 §9); None stands for "*", the largest number in use."""

    ranges: tuple[tuple[int | None, int | None], ...]

    def resolve(self, largest: int) -> list[tuple[int, int]]:
        """Ranges with "*" replaced and ends ordered; "n:m" equals "m:n" (RFC 3501 §9 seq-range)."""
        out = []
        for low, high in self.ranges:
            a = largest if low is None else low
            b = largest if high is None else high
            out.append((a, b) if a <= b else (b, a))
        return out

    def contains(self, number: int, largest: int) -> bool:
        return any(a <= number <= b for a, b in self.resolve(largest))


class Reader:
    """A cursor over one command; each method consumes one production or raises ParseError."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def peek(self, n: int = 1) -> bytes:
        return self.data[self.pos : self.pos + n]

    def expect(self, token: bytes) -> None:
        if self.data[self.pos : self.pos + len(token)].upper() != token.upper():
            raise ParseError(f"expected {token.decode()!r}")
        self.pos += len(token)

    def accept(self, token: bytes) -> bool:
        """Consume `token` (case-insensitively) if it comes next."""
        if self.data[self.pos : self.pos + len(token)].upper() == token.upper():
            self.pos += len(token)
            return True
        return False

    def sp(self) -> None:
        if self.peek() != b" ":
            raise ParseError("expected a space")
        self.pos += 1

    def end(self) -> None:
        if not self.at_end():
            raise ParseError("unexpected text after the command")

    def _match(self, pattern: re.Pattern[bytes], what: str) -> bytes:
        m = pattern.match(self.data, self.pos)
        if m is None:
            raise ParseError(f"expected {what}")
        self.pos = m.end()
        return m.group(0)

    def tag(self) -> str:
        return self._match(_TAG, "a tag").decode("ascii")

    def atom(self) -> str:
        return self._match(_ATOM, "an atom").decode("ascii")

    def keyword(self) -> str:
        """An atom compared case-insensitively: command names, search keys, fetch attributes."""
        return self.atom().upper()

    def number(self) -> int:
        value = int(self._match(_NUMBER, "a number"))
        if value > MAX_NUMBER:
            raise ParseError("number out of range")
        return value

    def nz_number(self) -> int:
        value = self.number()
        if value == 0:
            raise ParseError("zero is not allowed here")
        return value

    def quoted(self) -> bytes:
        m = _QUOTED.match(self.data, self.pos)
        if m is None:
            raise ParseError("bad quoted string")
        self.pos = m.end()
        return re.sub(rb'\\(["\\])', rb"\1", m.group(1))

    def literal(self) -> bytes:
        m = _LITERAL.match(self.data, self.pos)
        if m is None:
            raise ParseError("bad literal")
        size = int(m.group(1))
        start = m.end()
        if start + size > len(self.data):
            raise ParseError("literal shorter than announced")
        self.pos = start + size
        return self.data[start : self.pos]

    def string(self) -> bytes:
        head = self.peek()
        if head == b'"':
            return self.quoted()
        if head == b"{":
            return self.literal()
        raise ParseError("expected a string")

    def astring(self) -> bytes:
        if self.peek() in (b'"', b"{"):
            return self.string()
        return self._match(_ASTRING_ATOM, "an astring")

    def nstring(self) -> bytes | None:
        if self.peek(3).upper() == b"NIL" and not _ATOM.match(self.data, self.pos + 3):
            self.pos += 3
            return None
        return self.string()

    def text(self, raw: bytes) -> str:
        """Client strings are UTF-8 in practice; undecodable bytes survive as surrogates."""
        return raw.decode("utf-8", "surrogateescape")

    def mailbox(self) -> str:
        # mailbox = "INBOX" / astring; INBOX is case-insensitive (RFC 3501 §5.1)
        return mailbox_name(self.astring())

    def list_mailbox(self) -> str:
        # list-mailbox = 1*list-char / string
        if self.peek() in (b'"', b"{"):
            raw = self.string()
        else:
            raw = self._match(_LIST_ATOM, "a mailbox pattern")
        return decode_mailbox(raw)

    def seq_set(self) -> SeqSet:
        ranges: list[tuple[int | None, int | None]] = []
        while True:
            m = _SEQ_RANGE.match(self.data, self.pos)
            if m is None:
                raise ParseError("bad sequence set")
            self.pos = m.end()
            low = _seq_number(m.group(1))
            high = _seq_number(m.group(2)) if m.group(2) is not None else low
            ranges.append((low, high))
            if not self.accept(b","):
                return SeqSet(tuple(ranges))

    def flag(self) -> str:
        # flag = "\Answered" / ... / flag-keyword / flag-extension ("\" atom)
        if self.accept(b"\\"):
            name = "\\" + self.atom()
            return SYSTEM_FLAGS.get(name.lower(), name)  # system flags are case-insensitive
        return self.atom()

    def flag_list(self) -> tuple[str, ...]:
        # flag-list = "(" [flag *(SP flag)] ")"
        self.expect(b"(")
        flags: list[str] = []
        while not self.accept(b")"):
            if flags:
                self.sp()
            flags.append(self.flag())
        return tuple(flags)

    def date(self) -> datetime.date:
        # date = date-text / DQUOTE date-text DQUOTE
        quoted = self.accept(b'"')
        m = _DATE.match(self.data, self.pos)
        if m is None:
            raise ParseError("bad date, expected dd-Mon-yyyy")
        self.pos = m.end()
        if quoted:
            self.expect(b'"')
        return _make_date(m.group(1), m.group(2), m.group(3))

    def date_time(self) -> float:
        m = _DATE_TIME.match(self.data, self.pos)
        if m is None:
            raise ParseError('bad date-time, expected "dd-Mon-yyyy hh:mm:ss +zzzz"')
        self.pos = m.end()
        day = _make_date(m.group(1), m.group(2), m.group(3))
        hour, minute, second = int(m.group(4)), int(m.group(5)), int(m.group(6))
        if hour > 23 or minute > 59 or second > 60:
            raise ParseError("bad time")
        offset = (int(m.group(8)) * 60 + int(m.group(9))) * (1 if m.group(7) == b"+" else -1)
        stamp = datetime.datetime(day.year, day.month, day.day, hour, minute, min(second, 59))
        return calendar.timegm(stamp.timetuple()) - offset * 60


def _seq_number(token: bytes) -> int | None:
    if token == b"*":
        return None
    value = int(token)
    if value == 0 or value > MAX_NUMBER:
        raise ParseError("sequence numbers start at 1")  # seq-number = nz-number / "*"
    return value


def _make_date(day: bytes, month: bytes, year: bytes) -> datetime.date:
    number = _MONTHS.get(month.decode("ascii").upper())
    if number is None:
        raise ParseError("bad month name")
    try:
        return datetime.date(int(year), number, int(day))
    except ValueError as exc:
        raise ParseError("no such date") from exc


def mailbox_name(raw: bytes) -> str:
    name = decode_mailbox(raw)
    return "INBOX" if name.upper() == "INBOX" else name


# -- RFC 3501 §5.1.3 mailbox international naming convention (modified UTF-7) ----------------------

_SHIFTED = re.compile(rb"&([A-Za-z0-9+,]*)-")


def decode_mailbox(raw: bytes) -> str:
    """Modified UTF-7 to text; a name that is not valid modified UTF-7 is taken as UTF-8."""

    def shift(m: re.Match[bytes]) -> bytes:
        if not m.group(1):
            return b"&"
        chunk = m.group(1).replace(b",", b"/")
        chunk += b"=" * (-len(chunk) % 4)
        return base64.b64decode(chunk, validate=True).decode("utf-16-be").encode("utf-8", "surrogatepass")

    try:
        return _SHIFTED.sub(shift, raw).decode("utf-8")
    except (ValueError, UnicodeError):
        return raw.decode("utf-8", "surrogateescape")


def encode_mailbox(name: str) -> bytes:
    out = bytearray()
    pending: list[str] = []

    def flush() -> None:
        if pending:
            data = "".join(pending).encode("utf-16-be", "surrogatepass")
            out.extend(b"&" + base64.b64encode(data).rstrip(b"=").replace(b"/", b",") + b"-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.extend(b"&-" if char == "&" else char.encode("ascii"))
        else:
            pending.append(char)
    flush()
    return bytes(out)
