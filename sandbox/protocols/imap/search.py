"""SEARCH (RFC 3501 §6.4.4): the search-key grammar and its evaluation against one message."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_tz
from typing import Literal, Protocol

from mailsandbox.mime.tree import Header, Message
from mailsandbox.mime.words import decode_words
from mailsandbox.protocols.imap.grammar import ParseError, Reader, SeqSet

MAX_NESTING = 64  # parenthesised/NOT/OR depth a client may use; deeper is BAD, not a stack overflow

DateOp = Literal["before", "on", "since"]


@dataclass(frozen=True)
class All:
    pass


@dataclass(frozen=True)
class HasFlag:
    flag: str
    present: bool


@dataclass(frozen=True)
class IsRecent:
    present: bool


@dataclass(frozen=True)
class Field:
    name: str  # lower-cased header field name
    value: str


@dataclass(frozen=True)
class Text:
    value: str
    body_only: bool  # BODY searches the body, TEXT the header and the body


@dataclass(frozen=True)
class InternalDate:
    op: DateOp
    day: datetime.date


@dataclass(frozen=True)
class SentDate:
    op: DateOp
    day: datetime.date


@dataclass(frozen=True)
class Size:
    larger: bool
    size: int


@dataclass(frozen=True)
class Numbers:
    numbers: SeqSet
    uid: bool


@dataclass(frozen=True)
class Not:
    key: Key


@dataclass(frozen=True)
class Or:
    left: Key
    right: Key


@dataclass(frozen=True)
class And:
    keys: tuple[Key, ...]


Key = All | HasFlag | IsRecent | Field | Text | InternalDate | SentDate | Size | Numbers | Not | Or | And

_FLAG_KEYS: dict[str, tuple[str, bool]] = {
    "ANSWERED": ("\\Answered", True),
    "DELETED": ("\\Deleted", True),
    "DRAFT": ("\\Draft", True),
    "FLAGGED": ("\\Flagged", True),
    "SEEN": ("\\Seen", True),
    "UNANSWERED": ("\\Answered", False),
    "UNDELETED": ("\\Deleted", False),
    "UNDRAFT": ("\\Draft", False),
    "UNFLAGGED": ("\\Flagged", False),
    "UNSEEN": ("\\Seen", False),
}
_FIELD_KEYS = {"BCC": "bcc", "CC": "cc", "FROM": "from", "SUBJECT": "subject", "TO": "to"}
_DATE_KEYS: dict[str, tuple[bool, DateOp]] = {
    "BEFORE": (False, "before"),
    "ON": (False, "on"),
    "SINCE": (False, "since"),
    "SENTBEFORE": (True, "before"),
    "SENTON": (True, "on"),
    "SENTSINCE": (True, "since"),
}


def parse_search(r: Reader) -> tuple[str | None, Key]:
    """After "SEARCH": [SP "CHARSET" SP astring] 1*(SP search-key); returns (charset, key)."""
    r.sp()
    charset = None
    if r.accept(b"CHARSET "):
        charset = r.text(r.astring()).upper()
        r.sp()
    keys = [parse_key(r, 0)]
    while not r.at_end():
        r.sp()
        keys.append(parse_key(r, 0))
    return charset, keys[0] if len(keys) == 1 else And(tuple(keys))


def parse_key(r: Reader, depth: int) -> Key:
    if depth > MAX_NESTING:
        raise ParseError("search keys nested too deeply")
    head = r.peek()
    if head == b"(":  # "(" search-key *(SP search-key) ")"
        r.pos += 1
        keys = [parse_key(r, depth + 1)]
        while not r.accept(b")"):
            r.sp()
            keys.append(parse_key(r, depth + 1))
        return keys[0] if len(keys) == 1 else And(tuple(keys))
    if head.isdigit() or head == b"*":
        return Numbers(r.seq_set(), uid=False)
    name = r.keyword()
    if name in _FLAG_KEYS:
        flag, present = _FLAG_KEYS[name]
        return HasFlag(flag, present)
    if name == "ALL":
        return All()
    if name in ("NEW", "OLD", "RECENT"):
        if name == "NEW":  # RFC 3501: NEW is "RECENT UNSEEN"
            return And((IsRecent(True), HasFlag("\\Seen", False)))
        return IsRecent(name == "RECENT")
    if name in ("KEYWORD", "UNKEYWORD"):
        r.sp()
        return HasFlag(r.flag(), name == "KEYWORD")
    if name == "NOT":
        r.sp()
        return Not(parse_key(r, depth + 1))
    if name == "OR":
        r.sp()
        left = parse_key(r, depth + 1)
        r.sp()
        return Or(left, parse_key(r, depth + 1))
    r.sp()
    if name in _FIELD_KEYS:
        return Field(_FIELD_KEYS[name], r.text(r.astring()))
    if name == "HEADER":
        field_name = r.text(r.astring()).lower()
        r.sp()
        return Field(field_name, r.text(r.astring()))
    if name in ("BODY", "TEXT"):
        return Text(r.text(r.astring()), body_only=name == "BODY")
    if name in _DATE_KEYS:
        sent, op = _DATE_KEYS[name]
        day = r.date()
        return SentDate(op, day) if sent else InternalDate(op, day)
    if name in ("LARGER", "SMALLER"):
        return Size(name == "LARGER", r.number())
    if name == "UID":
        return Numbers(r.seq_set(), uid=True)
    raise ParseError(f"unknown search key {name}")


class Candidate(Protocol):
    """What a search key may look at: one message of the selected mailbox."""

    @property
    def seq(self) -> int: ...

    @property
    def uid(self) -> int: ...

    @property
    def flags(self) -> frozenset[str]: ...

    @property
    def recent(self) -> bool: ...

    @property
    def internaldate(self) -> float: ...

    @property
    def size(self) -> int: ...

    def header(self) -> Header: ...

    def message(self) -> Message: ...


@dataclass(frozen=True)
class Scope:
    """Values "*" stands for during one SEARCH."""

    largest_seq: int
    largest_uid: int


Test = Callable[[Candidate], bool]


def _contains(haystack: str, needle: str) -> bool:
    """needle is casefolded already; RFC 3501 leaves case to us and every client expects it ignored."""
    return needle in haystack.casefold() or ("=?" in haystack and needle in decode_words(haystack).casefold())


def _compare(op: DateOp, wanted: datetime.date) -> Callable[[datetime.date], bool]:
    if op == "before":
        return lambda day: day < wanted
    if op == "on":
        return lambda day: day == wanted
    return lambda day: day >= wanted


def _sent_day(candidate: Candidate) -> datetime.date:
    value = candidate.header().text("date")
    parsed = parsedate_tz(value) if value else None
    if parsed is not None:
        try:
            return datetime.date(parsed[0], parsed[1], parsed[2])  # the date as written, its zone ignored
        except ValueError:
            pass
    return _internal_day(candidate)  # no usable Date: the internal date stands in, as Dovecot does


def _internal_day(candidate: Candidate) -> datetime.date:
    return datetime.datetime.fromtimestamp(candidate.internaldate, datetime.UTC).date()


def _field_test(name: str, value: str) -> Test:
    needle = value.casefold()

    def test(candidate: Candidate) -> bool:
        found = candidate.header().values(name)
        if not needle:
            return bool(found)  # HEADER name "" matches every message that has the field
        return any(_contains(raw.decode("utf-8", "surrogateescape"), needle) for raw in found)

    return test


def _text_test(value: str, body_only: bool) -> Test:
    needle = value.casefold()

    def test(candidate: Candidate) -> bool:
        message = candidate.message()
        if needle in message.body_text().casefold():
            return True
        return not body_only and _contains(message.header.raw.decode("utf-8", "surrogateescape"), needle)

    return test


def compile_key(key: Key, scope: Scope) -> Test:
    """One SEARCH key as a test on one message, built once per command. Cheap keys never load the message."""
    if isinstance(key, And):
        tests = [compile_key(k, scope) for k in key.keys]
        return lambda candidate: all(test(candidate) for test in tests)
    if isinstance(key, Or):
        left, right = compile_key(key.left, scope), compile_key(key.right, scope)
        return lambda candidate: left(candidate) or right(candidate)
    if isinstance(key, Not):
        inner = compile_key(key.key, scope)
        return lambda candidate: not inner(candidate)
    if isinstance(key, HasFlag):
        flag, present = key.flag, key.present
        return lambda candidate: (flag in candidate.flags) == present
    if isinstance(key, All):
        return lambda candidate: True
    if isinstance(key, Numbers):
        if key.uid:
            uids = key.numbers.resolve(scope.largest_uid)
            return lambda candidate: any(a <= candidate.uid <= b for a, b in uids)
        seqs = key.numbers.resolve(scope.largest_seq)
        return lambda candidate: any(a <= candidate.seq <= b for a, b in seqs)
    if isinstance(key, IsRecent):
        present = key.present
        return lambda candidate: candidate.recent == present
    if isinstance(key, Size):
        size = key.size
        if key.larger:
            return lambda candidate: candidate.size > size
        return lambda candidate: candidate.size < size
    if isinstance(key, InternalDate):
        internal = _compare(key.op, key.day)
        return lambda candidate: internal(_internal_day(candidate))
    if isinstance(key, SentDate):
        sent = _compare(key.op, key.day)
        return lambda candidate: sent(_sent_day(candidate))
    if isinstance(key, Field):
        return _field_test(key.name, key.value)
    return _text_test(key.value, key.body_only)


def matches(key: Key, candidate: Candidate, scope: Scope) -> bool:
    """Does one message satisfy `key`?"""
    return compile_key(key, scope)(candidate)
