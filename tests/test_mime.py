"""The fast summary scanner must agree with the full MIME parser on every message it accepts."""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox import mime
from sandbox._fastmime import Unsupported, _parse_header_bytes, parse_headers, split_multipart
from sandbox.models import Address


def build(
    subject: str, text: str | None, html: str | None, attachments: list[tuple[str, bytes]], inline: bool, cte: str
) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Ann Example <ann@example.test>"
    msg["To"] = "bob@example.test, Zoë <zoe@example.test>"
    msg["Cc"] = "cc@example.test"
    msg["Subject"] = subject
    msg["Date"] = "Mon, 23 Nov 2026 10:00:00 +0000"
    msg["Message-ID"] = "<id-1@example.test>"
    if text is not None:
        msg.set_content(text, cte=cte if cte != "8bit" or text.isascii() else "8bit")
    if html is not None:
        if text is None:
            msg.set_content(html, subtype="html")
        else:
            msg.add_alternative(html, subtype="html")
    if inline and html is not None:
        html_part = msg.get_body(preferencelist=("html",))
        assert html_part is not None
        html_part.add_related(b"\x89PNG fake", maintype="image", subtype="png", cid="<logo@x>")
    for name, data in attachments:
        msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return msg.as_bytes()


CORPUS = [
    b"From: a@example.test\r\nTo: b@example.test\r\nSubject: plain\r\n\r\nHello\r\n",
    b"Subject: =?utf-8?q?caf=C3=A9?=\nFrom: =?utf-8?b?SsO2cmc=?= <j@x.test>\n\nbare LF body\n",
    "From: Jörg <jörg@exämple.test>\r\nSubject: Grüße\r\n\r\nSchöne Grüße\r\n".encode(),
    b"Subject: no body",
    b"\r\nbody without headers\r\n",
    b"Content-Type: multipart/mixed; boundary=XX\r\nSubject: preamble\r\n\r\npreamble\r\n--XX\r\n"
    b"Content-Type: text/plain\r\n\r\nfirst\r\n--XX\r\nContent-Type: application/pdf; name=a.pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--XX--\r\nepilogue\r\n",
    b"Content-Type: multipart/alternative; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=iso-8859-1"
    b"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9 soft=\r\nbreak\r\n--b\r\n"
    b"Content-Type: text/html\r\n\r\n<p>caf&eacute;</p>\r\n--b--\r\n",
    b"Content-Type: multipart/mixed; boundary=outer\r\n\r\n--outer\r\nContent-Type: multipart/alternative;"
    b" boundary=inner\r\n\r\n--inner\r\nContent-Type: text/plain\r\n\r\nnested text\r\n--inner\r\n"
    b"Content-Type: text/html\r\n\r\n<b>nested</b>\r\n--inner--\r\n--outer\r\nContent-Type: message/rfc822\r\n\r\n"
    b"Subject: inner\r\n\r\nattached message\r\n--outer--\r\n",
    b"Content-Type: text/html; charset=utf-8\r\n\r\n<html><head><style>p{}</style></head><body><p>Only"
    b" <a href='x'>HTML</a></p><script>evil()</script></body></html>\r\n",
]


@pytest.mark.parametrize("raw", CORPUS)
def test_fast_summary_matches_full_parser(raw: bytes) -> None:
    try:
        fast = mime._fast_summarize(raw)
    except Unsupported:
        return  # the caller falls back to the full parser; nothing to compare
    assert fast == mime._summarize(raw)


texts = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=300)


@settings(max_examples=150, deadline=None)
@given(
    subject=st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=60),
    text=st.none() | texts,
    html=st.none() | texts.map(lambda t: f"<p>{t}</p>"),
    attachments=st.lists(st.tuples(st.from_regex(r"[a-z]{1,8}\.(pdf|bin|txt)", fullmatch=True),
                                   st.binary(max_size=2000)), max_size=3),
    inline=st.booleans(),
    cte=st.sampled_from(["quoted-printable", "base64", "8bit"]),
)
def test_generated_messages_agree(
    subject: str, text: str | None, html: str | None, attachments: list[tuple[str, bytes]], inline: bool, cte: str
) -> None:
    if text is None and html is None:
        text = ""
    raw = build(subject, text, html, attachments, inline, cte)
    assert mime._fast_summarize(raw) == mime._summarize(raw)


@given(st.binary(max_size=2000))
def test_summarize_never_raises(raw: bytes) -> None:
    summary = mime.summarize(raw)
    assert summary.size == len(raw)


header_pieces = st.sampled_from(
    [b"a", b"B", b":", b" ", b"\t", b"\r", b"\n", b"\r\n", b"From ", b"\xc3\xa9", b"\xe9", b"\x1c", b"\x0b", b"=?"]
)


@settings(max_examples=500)
@given(st.lists(header_pieces, max_size=30).map(b"".join))
def test_header_text_path_agrees_with_the_byte_loop(block: bytes) -> None:
    try:
        expected: list[tuple[str, str]] | None = _parse_header_bytes(block)
    except Unsupported:
        expected = None
    if expected is None:
        with pytest.raises(Unsupported):
            parse_headers(block)
    else:
        assert parse_headers(block) == expected


@given(st.text(alphabet="ab \n\t\r\u00a0", max_size=1200))
def test_snippet_is_the_start_of_the_first_words(body: str) -> None:
    assert mime._snippet(body) == " ".join(body[: mime.SNIPPET_CHARS * 4].split())[: mime.SNIPPET_CHARS]


def test_split_multipart_keeps_delimiter_crlf_out_of_parts() -> None:
    body = b"pre\r\n--b\r\nA: 1\r\n\r\none\r\n--b\r\n\r\ntwo\r\n--b--\r\n"
    assert split_multipart(body, b"b") == [b"A: 1\r\n\r\none", b"\r\ntwo"]


def _stdlib_addresses(value: str) -> list[Address]:
    from email.utils import getaddresses

    return [Address(n, a) for n, a in getaddresses([value]) if a or n]


address_text = st.text(alphabet="abcXYZ09 .-_@<>,\"'()+", max_size=40)


@settings(max_examples=400)
@given(address_text)
def test_simple_address_path_agrees_with_stdlib(value: str) -> None:
    simple = mime._simple_addresses(value)
    if simple is not None:
        assert simple == _stdlib_addresses(value)


@pytest.mark.parametrize(
    "value",
    ["bob@example.test", "Bob Example <bob@example.test>", "a@x.test, B <b@y.test>", " spaced@x.test ",
     "Dr. Who <who@tardis.test>", "o'brien@x.test"],
)
def test_simple_address_shapes_take_the_fast_path(value: str) -> None:
    assert mime._simple_addresses(value) == _stdlib_addresses(value)
