"""One assembled command (literals inline) -> a Command dataclass, or BadCommand (RFC 3501 §6, §9)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from mailsandbox.protocols.imap import commands as c
from mailsandbox.protocols.imap.fetch import parse_items
from mailsandbox.protocols.imap.grammar import ParseError, Reader
from mailsandbox.protocols.imap.search import parse_search

_STATUS_ITEMS = ("MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN")


class BadCommand(Exception):
    """A command that does not parse; `tag` is None when not even the tag could be read."""

    def __init__(self, tag: str | None, message: str) -> None:
        super().__init__(message)
        self.tag = tag
        self.message = message


def _bare(r: Reader, tag: str, name: str, uid: bool) -> c.Command:
    return c.Bare(tag, name)


def _login(r: Reader, tag: str, name: str, uid: bool) -> c.Command:
    # login = "LOGIN" SP userid SP password
    r.sp()
    user = r.text(r.astring())
    r.sp()
    return c.Login(tag, name, user, r.text(r.astring()))


def _authenticate(r: Reader, tag: str, name: str, uid: bool) -> c.Command:
    # authenticate = "AUTHENTICATE" SP auth-type [SP (base64 / "=")]  (RFC 4959 SASL-IR)
    r.sp()
    mechanism = r.keyword()
    initial = None
    if r.accept(b" "):
        initial = decode_sasl(r.atom().encode("ascii"))
    return c.Authenticate(tag, name, mechanism, initial)


def decode_sasl(token: bytes) -> bytes:
    if token.strip() == b"=":
        return b""  # RFC 4959: "=" is an empty initial response
    try:
        return base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ParseError("invalid base64") from exc


def _mailbox(r: Reader, tag: str, name: str, uid: bool) -> c.Command:
    r.sp()
    return c.MailboxCommand(tag, name, r.mailbox())


def _rename(r: Reader, tag: str, name: str, uid: bool) -> c.Command:
    r.sp()
    old = r.mailbox()
    r.sp()
    return c.Rename(tag, name, old, r.mailbox())


def _list(r: Reader, tag: str, name: str, uid: bool) -> c.Command:
    # list = "LIST" SP mailbox SP list-mailbox; the reference is not INBOX-folded
    r.sp()
    reference = r.list_mailbox() if r.peek() not in (b'"', b"{") else r.text(r.string())
    r.sp()
    return c.ListCommand(tag, name, reference, r.list_mailbox())


def _status(r: Reader, tag: str, name: str, uid: bool) -> c.Command:
    # status = "STATUS" SP mailbox SP "(" status-att *(SP status-att) ")"
    r.sp()
    mailbox = r.mailbox()
    r.sp()
    r.expect(b"(")
    items = [r.keyword()]
    while not r.accept(b")"):
        r.sp()
        items.append(r.keyword())
    for item in items:
        if item not in _STATUS_ITEMS:
            raise ParseError(f"unknown status item {item}")
    return c.Status(tag, name, mailbox, tuple(items))


def _append(r: Reader, tag: str, name: str, uid: bool) -> c.Command:
    # append = "APPEND" SP mailbox [SP flag-list] [SP date-time] SP literal
    r.sp()
    mailbox = r.mailbox()
    r.sp()
    flags: tuple[str, ...] = ()
    if r.peek() == b"(":
        flags = r.flag_list()
        r.sp()
    date = None
    if r.peek() == b'"':
        date = r.date_time()
        r.sp()
    return c.Append(tag, name, mailbox, flags, date, r.literal())


def _search(r: Reader, tag: str, name: str, uid: bool) -> c.Command:
    charset, key = parse_search(r)
    return c.Search(tag, name, charset, key, uid)


def _fetch(r: Reader, tag: str, name: str, uid: bool) -> c.Command:
    r.sp()
    numbers = r.seq_set()
    r.sp()
    return c.Fetch(tag, name, numbers, parse_items(r), uid)


def _store(r: Reader, tag: str, name: str, uid: bool) -> c.Command:
    # store-att-flags = (["+" / "-"] "FLAGS" [".SILENT"]) SP (flag-list / (flag *(SP flag)))
    r.sp()
    numbers = r.seq_set()
    r.sp()
    mode: c.StoreMode = "add" if r.accept(b"+") else "remove" if r.accept(b"-") else "set"
    r.expect(b"FLAGS")
    silent = r.accept(b".SILENT")
    r.sp()
    if r.peek() == b"(":
        flags = r.flag_list()
    else:
        found = [r.flag()]
        while r.accept(b" "):
            found.append(r.flag())
        flags = tuple(found)
    if "\\Recent" in flags:
        raise ParseError("\\Recent cannot be stored")  # RFC 3501 §2.3.2: only the server sets it
    return c.Store(tag, name, numbers, mode, silent, flags, uid)


def _copy(r: Reader, tag: str, name: str, uid: bool) -> c.Command:
    r.sp()
    numbers = r.seq_set()
    r.sp()
    return c.Copy(tag, name, numbers, r.mailbox(), uid)


def _uid_expunge(r: Reader, tag: str, name: str, uid: bool) -> c.Command:
    r.sp()  # RFC 4315 §2.1: UID EXPUNGE sequence-set
    return c.UidExpunge(tag, name, r.seq_set())


def _id(r: Reader, tag: str, name: str, uid: bool) -> c.Command:
    # RFC 2971: id_params_list ::= "(" #(string SPACE nstring) ")" / nil
    r.sp()
    if r.accept(b"NIL"):
        return c.Id(tag, name, None)
    r.expect(b"(")
    params: list[tuple[str, str | None]] = []
    while not r.accept(b")"):
        if params:
            r.sp()
        key = r.text(r.string())
        r.sp()
        value = r.nstring()
        params.append((key, None if value is None else r.text(value)))
        if len(params) > 30:
            raise ParseError("too many ID fields")  # RFC 2971 §3.3 caps the list at 30 pairs
    return c.Id(tag, name, tuple(params))


def _enable(r: Reader, tag: str, name: str, uid: bool) -> c.Command:
    # RFC 5161: "ENABLE" 1*(SP capability)
    caps = []
    while r.accept(b" "):
        caps.append(r.keyword())
    if not caps:
        raise ParseError("ENABLE needs a capability")
    return c.Enable(tag, name, tuple(caps))


_Parser = Callable[[Reader, str, str, bool], c.Command]
_PARSERS: dict[str, _Parser] = {
    **dict.fromkeys(
        "CAPABILITY NOOP LOGOUT STARTTLS CHECK CLOSE EXPUNGE IDLE NAMESPACE UNSELECT".split(),
        _bare,
    ),
    "LOGIN": _login,
    "AUTHENTICATE": _authenticate,
    **dict.fromkeys("SELECT EXAMINE CREATE DELETE SUBSCRIBE UNSUBSCRIBE".split(), _mailbox),
    "RENAME": _rename,
    "LIST": _list,
    "LSUB": _list,
    "STATUS": _status,
    "APPEND": _append,
    "SEARCH": _search,
    "FETCH": _fetch,
    "STORE": _store,
    "COPY": _copy,
    "MOVE": _copy,
    "ID": _id,
    "ENABLE": _enable,
}
_UID_PARSERS: dict[str, _Parser] = {
    "FETCH": _fetch,
    "SEARCH": _search,
    "STORE": _store,
    "COPY": _copy,
    "MOVE": _copy,
    "EXPUNGE": _uid_expunge,
}


def read_tag(data: bytes) -> str | None:
    try:
        return Reader(data).tag()
    except ParseError:
        return None


def parse_command(data: bytes) -> c.Command:
    """Parse one command line (its final CRLF optional); raises BadCommand."""
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    r = Reader(data)
    tag: str | None = None
    try:
        tag = r.tag()
        r.sp()
        name = r.keyword()
        uid = False
        parser = _PARSERS.get(name)
        if name == "UID":  # RFC 3501 §6.4.8
            r.sp()
            sub = r.keyword()
            parser = _UID_PARSERS.get(sub)
            name, uid = f"UID {sub}", True
        if parser is None:
            raise ParseError(f"unknown command {name}")
        command = parser(r, tag, name, uid)
        r.end()
        return command
    except ParseError as exc:
        raise BadCommand(tag, str(exc)) from exc
    except RecursionError as exc:
        raise BadCommand(tag, "command nested too deeply") from exc
