"""The fast summary scanner must agree with the full MIME parser on every message it accepts."""

from __future__ import annotations

import base64
import os
import re
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailsandbox import mime
from mailsandbox.mime import summary, tree, words
from mailsandbox.mime._scan import Unsupported, _parse_header_bytes, parse_headers
from mailsandbox.models import Address
from tests.conftest import heap_peak
from tests.servers.test_mime_views import entity


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
        fast = summary._fast_summarize(raw)
    except Unsupported:
        return  # the caller falls back to the full parser; nothing to compare
    assert fast == summary._summarize(raw)


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
    assert summary._fast_summarize(raw) == summary._summarize(raw)


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


@given(st.text(alphabet="a \t\r\n", max_size=400))
def test_unfolding_removes_exactly_the_breaks_white_space_follows(value: str) -> None:
    # RFC 5322 §2.2.3, said as the regex the code no longer uses (it held the interpreter lock on 150,000 folds)
    expected = re.sub(r"\r?\n(?=[ \t])", "", value)
    assert words.unfold(value) == expected
    assert words.unfold_bytes(value.encode()) == expected.encode()


@given(st.text(alphabet="ab \n\t\r\u00a0", max_size=1200))
def test_snippet_is_the_start_of_the_first_words(body: str) -> None:
    assert summary._snippet(body) == " ".join(body[: summary.SNIPPET_CHARS * 4].split())[: summary.SNIPPET_CHARS]


def test_split_multipart_keeps_delimiter_crlf_out_of_parts() -> None:
    body = b"pre\r\n--b\r\nA: 1\r\n\r\none\r\n--b\r\n\r\ntwo\r\n--b--\r\n"
    parts = [body[a:b] for a, b in tree.split_multipart(body, 0, len(body), b"b")]
    assert parts == [b"A: 1\r\n\r\none", b"\r\ntwo"]


def _stdlib_addresses(value: str) -> list[Address]:
    from email.utils import getaddresses

    return [Address(n, a) for n, a in getaddresses([value]) if a or n]


address_text = st.text(alphabet="abcXYZ09 .-_@<>,\"'()+", max_size=40)


@settings(max_examples=400)
@given(address_text)
def test_simple_address_path_agrees_with_stdlib(value: str) -> None:
    simple = words._simple_addresses(value)
    if simple is not None:
        assert simple == _stdlib_addresses(value)


@pytest.mark.parametrize(
    "value",
    ["bob@example.test", "Bob Example <bob@example.test>", "a@x.test, B <b@y.test>", " spaced@x.test ",
     "Dr. Who <who@tardis.test>", "o'brien@x.test"],
)
def test_simple_address_shapes_take_the_fast_path(value: str) -> None:
    assert words._simple_addresses(value) == _stdlib_addresses(value)


def test_encoded_words_beside_raw_utf8_decode() -> None:
    assert mime.decode_words("Grüße =?utf-8?q?caf=C3=A9?= und =?utf-8?b?bWVocg==?=") == "Grüße café und mehr"
    assert mime.decode_words("=?utf-8?q?=E2=82?= =?utf-8?q?=AC?=") == "€"  # one character split over two words
    assert mime.decode_words("=?unknown-x?q?a?=") == "a"


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf", "résumé.pdf"),
        ("attachment; filename*0*=utf-8''%E2%82%AC; filename*1=\" rate\"; filename*2*=.csv", "€ rate.csv"),
        ("attachment; filename*=iso-8859-1'de'Gr%FC%DFe.txt", "Grüße.txt"),
        ('attachment; filename="=?utf-8?q?caf=C3=A9?=.txt"', "café.txt"),
        ('attachment; filename="a \\"quoted\\" name; with semicolon"', 'a "quoted" name; with semicolon'),
        ("attachment; FileName=plain.txt; filename=second.txt", "plain.txt"),
    ],
)
def test_rfc2231_and_rfc2047_filenames(value: str, name: str) -> None:
    raw = f"Content-Type: application/octet-stream\r\nContent-Disposition: {value}\r\n\r\nx".encode()
    [attachment] = mime.parse(raw).attachments
    assert attachment.filename == name


NESTED = (
    b"Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: text/plain\r\n\r\nouter\r\n"
    b"--o\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nContent-Type: multipart/mixed; boundary=i\r\n"
    b"\r\n--i\r\nContent-Type: text/plain\r\n\r\ninner text\r\n--i\r\nContent-Type: application/pdf; name=in.pdf\r\n"
    b"\r\n%PDF\r\n--i--\r\n--o--\r\n"
)


def test_an_attached_message_is_one_attachment_and_its_parts_number_as_imap_does() -> None:
    parsed = mime.parse(NESTED)
    assert [(a.part_id, a.content_type) for a in parsed.attachments] == [("2", "message/rfc822")]
    assert parsed.text == "outer"
    assert parsed.attachments[0].content().startswith(b"Subject: inner\r\n")
    found = mime.find_part(NESTED, "2.2")  # RFC 3501: not 2.1.2
    assert found is not None and found.decoded() == b"%PDF" and found.filename == "in.pdf"
    assert mime.find_part(NESTED, "2.1.2") is None
    assert summary._fast_summarize(NESTED) == summary._summarize(NESTED)


def test_text_png_and_named_text_are_two_attachments() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nbody\r\n"
        b"--b\r\nContent-Type: image/png\r\n\r\nPNG\r\n--b\r\nContent-Type: text/plain; name=n.txt\r\n\r\nn\r\n--b--\r\n"
    )
    parsed = mime.parse(raw)
    assert [a.part_id for a in parsed.attachments] == ["2", "3"] and parsed.text == "body"
    assert mime.summarize(raw).attachments == 2


@settings(max_examples=200, deadline=None)
@given(body=entity(3))
def test_the_fast_scanner_agrees_with_the_part_tree(body: bytes) -> None:
    raw = b"From: a@example.test\r\nSubject: s\r\n" + body
    try:
        fast = summary._fast_summarize(raw)
    except Unsupported:
        return  # the caller falls back to the tree
    assert fast == summary._summarize(raw)


def test_the_fast_scanner_does_not_copy_attachments() -> None:
    """The listing summary of a message with a 8 MB attachment, two multiparts deep, allocates next to
    nothing: the scanner reads parts in place. It sliced each part out, a copy per level (3x the size)."""
    attachment = base64.encodebytes(os.urandom(6_000_000)).replace(b"\n", b"\r\n")
    raw = (
        b"Subject: big\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=out\r\n\r\n"
        b"--out\r\nContent-Type: multipart/alternative; boundary=in\r\n\r\n"
        b"--in\r\nContent-Type: text/plain\r\n\r\nhello\r\n--in\r\nContent-Type: text/html\r\n\r\n<p>hello</p>\r\n--in--\r\n"
        b"--out\r\nContent-Type: multipart/mixed; boundary=deep\r\n\r\n"
        b'--deep\r\nContent-Type: application/octet-stream; name="big.bin"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + attachment + b"--deep--\r\n--out--\r\n"
    )  # fmt: skip
    found, grown = heap_peak(lambda: summary._fast_summarize(raw))
    assert (found.text, found.attachments) == ("hello big.bin", 1)
    assert found == summary._summarize(raw)
    assert grown < len(raw) // 10, f"summarizing {len(raw):,} octets allocated {grown:,}"
