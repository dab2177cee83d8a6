"""One MIME model, three views: for generated messages, the API's Attachments and Inline, the plugin's
msg.attachments and msg.inline, and the leaves of IMAP BODYSTRUCTURE (read by imaplib, classified here
by the rule written out again) list the same parts, and every part number fetches the same bytes through
GET /api/v1/message/{ID}/part/{PartID} and through IMAP BODY[n]."""

from __future__ import annotations

import base64
import binascii
import email.header
import email.utils
import hashlib
import imaplib
import itertools
import quopri
import re
import smtplib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mailsandbox.app import SandboxThread
from mailsandbox.pytest_plugin.message import CapturedMessage
from tests.conftest import free_config

USER = "bob@example.test"

# -- generated messages -------------------------------------------------------------------------------

NAMES = st.sampled_from(["", "report.pdf", "notes.txt", "Grüße.txt", "€ rate.csv", "a b.png", "x.eml"])
NAMING = st.sampled_from(["plain", "rfc2231", "rfc2047", "name"])  # how the filename is written
DISPOSITIONS = st.sampled_from(["", "inline", "attachment"])
ENCODINGS = st.sampled_from(["7bit", "base64", "quoted-printable"])
LEAF_TYPES = st.sampled_from(["text/plain", "text/html", "image/png", "application/pdf", "text/csv"])
CONTENT = st.binary(max_size=64) | st.text(max_size=40).map(lambda t: t.encode())


def _encode(data: bytes, cte: str) -> bytes:
    if cte == "base64":
        return base64.encodebytes(data).replace(b"\n", b"\r\n")
    if cte == "quoted-printable":
        return quopri.encodestring(data).replace(b"\r\n", b"\n").replace(b"\n", b"=\r\n")
    return data


def _filename_params(name: str, naming: str) -> tuple[str, str]:
    """(Content-Disposition params, Content-Type params) carrying `name`."""
    if not name:
        return "", ""
    if naming == "rfc2231":
        return f"; filename*=utf-8''{quote(name)}", ""
    if naming == "rfc2047":
        encoded = email.header.Header(name, "utf-8").encode()
        return f'; filename="{encoded}"', ""
    if naming == "name":
        return "", f'; name="{name}"'
    return f'; filename="{name}"', ""


@st.composite
def leaf(draw: st.DrawFn) -> bytes:
    ctype = draw(LEAF_TYPES)
    disposition = draw(DISPOSITIONS)
    name = draw(NAMES)
    naming = draw(NAMING)
    cte = draw(ENCODINGS)
    data = draw(CONTENT)
    if cte == "7bit":
        data = re.sub(rb"[^\x20-\x7e]", b"", data)  # 7bit: printable lines only
    cd_params, ct_params = _filename_params(name, naming)
    if not disposition and cd_params:
        disposition = "attachment" if draw(st.booleans()) else "inline"
    head = f"Content-Type: {ctype}{'; charset=utf-8' if ctype.startswith('text/') else ''}{ct_params}\r\n"
    if disposition:
        head += f"Content-Disposition: {disposition}{cd_params}\r\n"
    if draw(st.booleans()):
        head += f"Content-ID: <c{draw(st.integers(0, 99))}@example.test>\r\n"
    head += f"Content-Transfer-Encoding: {cte}\r\n"
    return head.encode() + b"\r\n" + _encode(data, cte)


_boundaries = itertools.count()


def multipart(subtype: str, parts: list[bytes]) -> bytes:
    boundary = f"=_b{next(_boundaries)}_{subtype}"  # unique: a nested part reusing its parent's is malformed
    out = f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n'.encode()
    for part in parts:
        out += f"--{boundary}\r\n".encode() + part + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def encapsulated(inner: bytes) -> bytes:
    head = b"Content-Type: message/rfc822\r\n"
    head += b'Content-Disposition: attachment; filename="fwd.eml"\r\n' if len(inner) % 2 else b""
    return head + b"\r\nSubject: inner\r\nFrom: c@example.test\r\n" + inner


def entity(depth: int) -> st.SearchStrategy[bytes]:
    if depth == 0:
        return leaf()
    children = st.lists(entity(depth - 1), min_size=1, max_size=3)
    return st.one_of(
        leaf(),
        st.builds(multipart, st.sampled_from(["mixed", "alternative", "related"]), children),
        entity(depth - 1).map(encapsulated),
    )


def message(body: bytes, n: int) -> bytes:
    head = f"From: a@example.test\r\nTo: {USER}\r\nSubject: generated {n}\r\nMIME-Version: 1.0\r\n"
    return head.encode() + body


# -- IMAP BODYSTRUCTURE, read and classified independently of sandbox.mime --------------------------------

_TOKEN = re.compile(rb'\s*(?:(\()|(\))|"((?:[^"\\]|\\.)*)"|\{(\d+)\}\r\n|([^\s()"]+))', re.S)


def sexp(data: bytes) -> list[Any]:
    stack: list[list[Any]] = [[]]
    pos = 0
    while pos < len(data):
        match = _TOKEN.match(data, pos)
        if match is None:
            if data[pos:].strip():
                raise ValueError(data[pos:])
            break
        pos = match.end()
        opened, closed, quoted, size, atom = match.groups()
        if opened:
            stack.append([])
        elif closed:
            done = stack.pop()
            stack[-1].append(done)
        elif quoted is not None:
            stack[-1].append(re.sub(rb"\\(.)", rb"\1", quoted).decode("utf-8"))
        elif size is not None:
            stack[-1].append(data[pos : pos + int(size)].decode("utf-8"))
            pos += int(size)
        else:
            stack[-1].append(None if atom.upper() == b"NIL" else atom.decode())
    return stack[0]


def fetch_items(imap: imaplib.IMAP4, number: int, items: str) -> bytes:
    typ, data = imap.fetch(str(number), items)
    assert typ == "OK"
    joined = b""
    for piece in data:
        if isinstance(piece, tuple):
            joined += piece[0] + b"\r\n" + piece[1]  # a literal: "{n}", then its bytes
        elif piece is not None:
            joined += piece
    return joined


def fetch_section(imap: imaplib.IMAP4, number: int, section: str) -> bytes:
    typ, data = imap.fetch(str(number), f"(BODY.PEEK[{section}])")
    assert typ == "OK", (section, data)
    first = data[0]
    if isinstance(first, tuple):
        return first[1]  # a literal: the bytes as sent
    assert first is not None
    value = sexp(first)[1][1]  # "" or NIL
    return (value or "").encode()


def _pairs(params: list[Any] | None) -> list[tuple[str, str]]:
    return list(zip(params[::2], params[1::2], strict=True)) if params else []


def _param(params: list[Any] | None, name: str) -> str:
    decoded = email.utils.decode_params([("x", ""), *_pairs(params)])[1:]  # RFC 2231 joined (stdlib)
    for key, value in decoded:
        if key.lower() == name:
            text = email.utils.unquote(email.utils.collapse_rfc2231_value(value))
            return str(email.header.make_header(email.header.decode_header(text)))  # RFC 2047
    return ""


def leaves(body: list[Any], number: str) -> Iterator[tuple[str, list[Any]]]:
    """(section number, body) for every non-multipart body, encapsulated ones included (RFC 3501 §6.4.5)."""
    if isinstance(body[0], list):  # multipart: its bodies first, then the subtype and extensions
        children = []
        for item in body:
            if not isinstance(item, list):
                break
            children.append(item)
        for i, child in enumerate(children, 1):
            yield from leaves(child, f"{number}.{i}" if number else str(i))
        return
    yield number or "1", body
    if body[0].lower() == "message" and body[1].lower() == "rfc822":
        inner = body[8]
        if isinstance(inner[0], list):
            yield from leaves(inner, number or "1")
        else:
            yield from leaves(inner, f"{number or '1'}.1")


def listed(structure: list[Any]) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """(attachments, inline) as (part, type, name-or-cid), by the rule in sandbox/mime/parts.py."""
    attachments: list[tuple[str, str, str]] = []
    inline: list[tuple[str, str, str]] = []
    bodies: set[str] = set()
    encapsulated: list[str] = []
    for number, body in leaves(structure, ""):
        if any(number.startswith(prefix + ".") for prefix in encapsulated):
            continue  # inside an attached message: that message is one attachment
        ctype = f"{body[0]}/{body[1]}".lower()
        extension = 10 if ctype == "message/rfc822" else 8 if body[0].lower() == "text" else 7
        disposition = body[extension + 1] if len(body) > extension + 1 else None
        kind = (disposition[0] or "").lower() if disposition else ""
        name = _param(disposition[1], "filename") if disposition else ""
        name = (name or _param(body[2], "name")).strip()
        cid = (body[3] or "").strip().strip("<>")
        entry = (number, ctype, name or cid)
        if ctype == "message/rfc822":
            encapsulated.append(number)
            attachments.append(entry)
        elif kind == "attachment":
            attachments.append(entry)
        elif ctype in ("text/plain", "text/html") and not name:
            bodies.add(ctype)
        elif kind == "inline" or cid:
            inline.append(entry)
        else:
            attachments.append(entry)
    return attachments, inline


def decode(data: bytes, cte: str) -> bytes:
    cte = cte.lower()
    if cte == "base64":
        return binascii.a2b_base64(data)
    if cte == "quoted-printable":
        return binascii.a2b_qp(data)
    return data


# -- the test ----------------------------------------------------------------------------------------------


class World:
    def __init__(self, tmp: Path) -> None:
        self.thread = SandboxThread(free_config(tmp))
        sandbox = self.thread.start()
        self.smtp = sandbox.address("smtp")
        http = sandbox.address("http")
        self.api = httpx.Client(base_url=f"http://{http.host}:{http.port}", timeout=30, trust_env=False)
        imap = sandbox.address("imap")
        self.imap = imaplib.IMAP4(imap.host, imap.port, timeout=30)
        self.imap.login(USER, "any password")
        self.sent = 0

    def send(self, raw: bytes) -> int:
        with smtplib.SMTP(self.smtp.host, self.smtp.port, timeout=30) as client:
            client.sendmail("a@example.test", [USER], raw)
        self.sent += 1
        typ, data = self.imap.select("INBOX")
        assert typ == "OK" and int(data[0] or 0) == self.sent
        return self.sent

    def close(self) -> None:
        self.imap.logout()
        self.api.close()
        self.thread.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = World(tmp_path_factory.mktemp("views"))
    yield w
    w.close()


def _api_list(items: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(a["PartID"], a["ContentType"], a["FileName"]) for a in items]


TEXT = b"Content-Type: text/plain\r\n\r\nhello\r\n"
PDF = b"Content-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n"
# Where the views could disagree: text + an unnamed PNG + a named text/plain; an attached message's inner PDF.
TRICKY_SHAPES = [
    multipart(
        "mixed", [TEXT, b"Content-Type: image/png\r\n\r\nPNG\r\n", b"Content-Type: text/plain; name=n.txt\r\n\r\nn"]
    ),
    multipart("mixed", [TEXT, encapsulated(multipart("mixed", [TEXT, PDF]))]),
]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=entity(2), n=st.integers(0, 10**6))
@example(body=TRICKY_SHAPES[0], n=0)
@example(body=TRICKY_SHAPES[1], n=1)
def test_api_plugin_and_imap_see_the_same_parts(world: World, body: bytes, n: int) -> None:
    raw = message(body, n)
    number = world.send(raw)
    summary = world.api.get("/api/v1/messages", params={"limit": 1}).json()["messages"][0]
    api = world.api.get(f"/api/v1/message/{summary['ID']}").json()
    stored = world.api.get(f"/api/v1/message/{summary['ID']}/raw").content
    plugin = CapturedMessage(stored)
    structure = sexp(fetch_items(world.imap, number, "(BODYSTRUCTURE)"))[1][1]
    imap_attachments, imap_inline = listed(structure)

    assert _api_list(api["Attachments"]) == imap_attachments
    assert _api_list(api["Inline"]) == imap_inline
    assert [(a.part_id, a.content_type, a.filename or a.content_id) for a in plugin.attachments] == imap_attachments
    assert [(a.part_id, a.content_type, a.filename or a.content_id) for a in plugin.inline] == imap_inline
    assert summary["Attachments"] == len(imap_attachments)

    by_part = {a.part_id: a.content for a in (*plugin.attachments, *plugin.inline)}
    for item in (*api["Attachments"], *api["Inline"]):
        assert item["Checksums"]["SHA256"] == hashlib.sha256(by_part[item["PartID"]]).hexdigest()
        assert item["Size"] == len(by_part[item["PartID"]])
    for section, leaf_body in leaves(structure, ""):
        from_imap = decode(fetch_section(world.imap, number, section), leaf_body[5] or "7bit")
        part = world.api.get(f"/api/v1/message/{summary['ID']}/part/{section}")
        assert part.status_code == 200, section
        assert part.content == from_imap, section
