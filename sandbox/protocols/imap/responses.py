"""Response encoding (RFC 3501 §7, §9): status replies, strings, parenthesised lists, dates."""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Sequence
from typing import Union

from mailsandbox.protocols.imap.grammar import MONTHS, encode_mailbox

# Status responses (RFC 3501 §7.1)
OK = b"OK"
NO = b"NO"
BAD = b"BAD"
BYE = b"BYE"

# Response codes (RFC 3501 §7.1, RFC 4315, RFC 5530)
ALERT = "ALERT"
ALREADYEXISTS = "ALREADYEXISTS"
BADCHARSET = "BADCHARSET (US-ASCII UTF-8)"
CANNOT = "CANNOT"
CLIENTBUG = "CLIENTBUG"
NONEXISTENT = "NONEXISTENT"
READ_ONLY = "READ-ONLY"
READ_WRITE = "READ-WRITE"
SERVERBUG = "SERVERBUG"
TOOBIG = "TOOBIG"
TRYCREATE = "TRYCREATE"
AUTHENTICATIONFAILED = "AUTHENTICATIONFAILED"
PRIVACYREQUIRED = "PRIVACYREQUIRED"

_SAFE_QUOTED = re.compile(rb"[^\x00\r\n\x80-\xff]*")


class Atom(bytes):
    """Bytes sent as they are (NIL-like keywords, flags), never quoted."""


class Concat(list["Sexp"]):
    """Items joined without spaces: body-type-mpart = 1*body SP media-subtype (RFC 3501 §9)."""


Sexp = Union[None, int, bytes, str, Atom, Sequence["Sexp"], Concat]  # noqa: UP007 (a recursive alias)


def string(value: bytes | str) -> bytes:
    """A string as quoted if it can be (RFC 3501 §4.3), otherwise as a literal."""
    data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    if len(data) < 1024 and _SAFE_QUOTED.fullmatch(data):
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return literal(data)


_ATOM_SAFE = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\\]]+')


def astring(value: bytes) -> bytes:
    """An atom when the bytes allow it (echoing header names as the client spelt them), else a string."""
    return value if _ATOM_SAFE.fullmatch(value) else string(value)


def literal(data: bytes) -> bytes:
    return b"{%d}\r\n" % len(data) + data


def nstring(value: bytes | str | None) -> bytes:
    return b"NIL" if value is None else string(value)


def mailbox(name: str) -> bytes:
    return string(encode_mailbox(name))


def sexp(value: Sexp) -> bytes:
    if value is None:
        return b"NIL"
    if isinstance(value, Atom):
        return bytes(value)
    if isinstance(value, bool):
        raise TypeError("booleans have no IMAP form")
    if isinstance(value, int):
        return b"%d" % value
    if isinstance(value, (bytes, str)):
        return string(value)
    if isinstance(value, Concat):
        return b"".join(sexp(item) for item in value)
    return b"(" + b" ".join(sexp(item) for item in value) + b")"


def flag_list(flags: Iterable[str]) -> bytes:
    return b"(" + " ".join(flags).encode("utf-8", "surrogateescape") + b")"


def date_time(stamp: float) -> bytes:
    """date-time (RFC 3501 §9), always in UTC so every session shows the same INTERNALDATE."""
    moment = datetime.datetime.fromtimestamp(stamp, datetime.UTC)
    return b'"%02d-%s-%04d %02d:%02d:%02d +0000"' % (
        moment.day,
        MONTHS[moment.month - 1].encode("ascii"),
        moment.year,
        moment.hour,
        moment.minute,
        moment.second,
    )


def untagged(text: bytes) -> bytes:
    return b"* " + text + b"\r\n"


def status(tag: str | None, kind: bytes, text: str, code: str | None = None) -> bytes:
    """A tagged (or, without a tag, untagged) OK/NO/BAD/BYE line, with an optional [response code]."""
    head = tag.encode("ascii") if tag else b"*"
    bracket = b"[" + code.encode("utf-8", "surrogateescape") + b"] " if code else b""
    safe = re.sub(r"[\r\n\x00]", " ", text).encode("utf-8", "replace")
    return head + b" " + kind + b" " + bracket + safe + b"\r\n"


def continuation(text: str = "") -> bytes:
    return b"+ " + text.encode("ascii") + b"\r\n" if text else b"+ \r\n"
