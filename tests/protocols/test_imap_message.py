"""MIME part tree, section numbers, ENVELOPE and BODYSTRUCTURE (RFC 3501 §6.4.5, §7.4.2)."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailsandbox.mime.tree import Header, Message
from mailsandbox.protocols.imap.bodystructure import body_structure, envelope, parse_addresses
from mailsandbox.protocols.imap.responses import sexp

INNER = (
    b"From: Carol <carol@example.test>\r\n"
    b"Subject: inner\r\n"
    b"Content-Type: multipart/alternative; boundary=in\r\n"
    b"\r\n"
    b"--in\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"inner plain\r\n"
    b"--in\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"\r\n"
    b"<p>inner</p>\r\n"
    b"--in--\r\n"
)

NESTED = (
    b'From: "Alice A." <alice@example.test>\r\n'
    b"To: bob@example.test, Team: carol@example.test, dave@example.test;\r\n"
    b"Subject: =?utf-8?q?caf=C3=A9?= report\r\n"
    b"Date: Tue, 2 Jan 2024 10:00:00 +0100\r\n"
    b"Message-ID: <m1@example.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="outer"\r\n'
    b"\r\n"
    b"preamble\r\n"
    b"--outer\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"caf=C3=A9 body\r\n"
    b"--outer\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n" + INNER + b"--outer\r\n"
    b'Content-Type: application/pdf; name="r.pdf"\r\n'
    b'Content-Disposition: attachment; filename="r.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"JVBERi0=\r\n"
    b"--outer--\r\n"
    b"epilogue\r\n"
)


def test_header_fields_and_selection() -> None:
    header = Header(b"Subject: a\r\n b\r\nFrom: x@y\r\nX-Two: 1\r\nx-two: 2\r\n\r\n")
    assert header.get("subject") == b"a b"
    assert header.values("X-TWO") == [b"1", b"2"]
    assert header.select(frozenset({b"subject"}), exclude=False) == b"Subject: a\r\n b\r\n\r\n"
    assert header.select(frozenset({b"subject", b"x-two"}), exclude=True) == b"From: x@y\r\n\r\n"


def test_part_numbers() -> None:
    message = Message(NESTED)
    assert message.header.get("message-id") == b"<m1@example.test>"
    assert message.text.startswith(b"preamble")
    assert [child.type for child in message.root.children] == ["text", "message", "application"]
    one = message.part((1,))
    assert one is not None and one.body == b"caf=C3=A9 body" and one.decoded() == "café body".encode()
    two = message.part((2,))
    assert two is not None and two.body == INNER.removesuffix(b"\r\n")
    assert two.message is not None and two.message.header.get("subject") == b"inner"
    inner_html = message.part((2, 2))
    assert inner_html is not None and inner_html.body == b"<p>inner</p>"
    assert message.part((2, 1, 1)) is None
    assert message.part((3,)) is not None and message.part((4,)) is None
    assert message.part((1, 1)) is None  # a leaf has no sub-parts
    single = Message(b"Subject: x\r\n\r\nbody\r\n")
    assert single.part((1,)) is single.root and single.part((2,)) is None
    assert "café body" in message.body_text() and "inner plain" in message.body_text()


def test_bare_lf_and_missing_body() -> None:
    message = Message(b"Subject: lf\n\nbody\n")
    assert message.header.get("subject") == b"lf" and message.text == b"body\n"
    headless = Message(b"no header break at all")
    assert headless.text == b"" and headless.root.body == b""


def test_addresses() -> None:
    assert parse_addresses('"Doe, John" <john@x.test>, jane@y.test (Jane)') == [
        ("Doe, John", None, "john", "x.test"),
        ("Jane", None, "jane", "y.test"),
    ]
    assert parse_addresses("undisclosed-recipients:;") == [(None, None, "undisclosed-recipients", None),
                                                           (None, None, None, None)]  # fmt: skip
    assert parse_addresses("<@relay.test:user@z.test>") == [(None, "@relay.test", "user", "z.test")]
    assert parse_addresses("root") == [(None, None, "root", "")]


def test_envelope() -> None:
    data = sexp(envelope(Message(NESTED).header))
    assert data == (
        b'("Tue, 2 Jan 2024 10:00:00 +0100" "=?utf-8?q?caf=C3=A9?= report" '
        b'(("Alice A." NIL "alice" "example.test")) (("Alice A." NIL "alice" "example.test")) '
        b'(("Alice A." NIL "alice" "example.test")) '
        b'((NIL NIL "bob" "example.test") (NIL NIL "Team" NIL) (NIL NIL "carol" "example.test") '
        b'(NIL NIL "dave" "example.test") (NIL NIL NIL NIL)) NIL NIL NIL "<m1@example.test>")'
    )
    assert sexp(envelope(Header(b""))) == b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"


def test_bodystructure() -> None:
    root = Message(NESTED).root
    structure = sexp(body_structure(root, extensible=True))
    assert structure.startswith(
        b'(("text" "plain" ("charset" "utf-8") NIL NIL "QUOTED-PRINTABLE" 14 1 NIL NIL NIL NIL)'
        b'("message" "rfc822" NIL NIL NIL "7BIT" '
    )
    assert b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 11 1 NIL NIL NIL NIL)' in structure
    assert b'"alternative" ("boundary" "in") NIL NIL NIL)' in structure
    assert structure.endswith(
        b'("application" "pdf" ("name" "r.pdf") NIL NIL "BASE64" 8 NIL'
        b' ("attachment" ("filename" "r.pdf")) NIL NIL)'
        b' "mixed" ("boundary" "outer") NIL NIL NIL)'
    )
    body = sexp(body_structure(root, extensible=False))
    assert body.endswith(b'("application" "pdf" ("name" "r.pdf") NIL NIL "BASE64" 8) "mixed")')
    plain = sexp(body_structure(Message(b"Subject: x\r\n\r\none\r\ntwo").root, extensible=False))
    assert plain == b'("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 8 2)'


def test_degenerate_multipart() -> None:
    broken = Message(b"Content-Type: multipart/mixed\r\n\r\nno boundary given\r\n")
    assert sexp(body_structure(broken.root, extensible=False)) == (
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 0 0) "mixed")'
    )
    deep = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(100))
    assert sexp(body_structure(Message(deep).root, extensible=True)).count(b"mixed") <= 40


MIME_PIECES = [
    b"Content-Type: multipart/mixed; boundary=x\r\n", b"Content-Type: message/rfc822\r\n",
    b"Content-Type: text/plain; charset=\"utf-8\"\r\n", b"Content-Type: multipart/digest; boundary=y\r\n",
    b"Content-Transfer-Encoding: base64\r\n", b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"Content-Disposition: attachment; filename*=utf-8''%e2%82%ac\r\n", b"Subject: =?utf-8?b?!!?=\r\n",
    b"From: \"unterminated <a@b>, (comment\r\n", b"To: group: a@b, <c@d>;, e\r\n", b" folded\r\n",
    b"\r\n", b"\n", b"--x\r\n", b"--x--\r\n", b"--y\r\n", b"body =C3=\r\n", b"QUJD\r\n", b"\x00\xff",
]  # fmt: skip


@given(st.lists(st.sampled_from(MIME_PIECES), max_size=30).map(b"".join) | st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
@example(raw=b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: message/rfc822\r\n--x\r\n")
def test_any_message_renders(raw: bytes) -> None:
    """Whatever a sender put in a message, FETCH and SEARCH can describe it."""
    message = Message(raw)
    sexp(body_structure(message.root, extensible=True))
    sexp(envelope(message.header))
    message.body_text()
    for path in ((1,), (1, 1), (2, 1, 1), (3,)):
        part = message.part(path)
        if part is not None:
            assert part.body_start <= part.end <= len(raw)
