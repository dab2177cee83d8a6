"""Hostile headers cost the checks linear time (timed at n and 8n) and never raise out of them."""

from __future__ import annotations

from collections.abc import Callable

import dkim
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailsandbox.auth import authenticate
from mailsandbox.auth._lookup import CachedZone
from mailsandbox.auth.checks import _from_domains, rfc822_parse
from mailsandbox.models import Envelope
from mailsandbox.zone import Zone
from tests.test_linear_parsing import assert_linear

ENV = Envelope(mail_from="a@x.test", rcpt_tos=(), peer="192.0.2.1:25", helo="h.test")
SIG = "DKIM-Signature: v=1; a=rsa-sha256; d=x.test; s=s; h=from; bh=AA==; b=AA==\r\n"
SHAPES: dict[str, Callable[[int], str]] = {
    "From addresses": lambda n: "From: " + ", ".join(f"a{i}@d{i}.test" for i in range(n)) + "\r\n\r\nb\r\n",
    "nested comments in From": lambda n: "From: " + "(" * n + "a@x.test\r\n\r\nb\r\n",
    "quotes in From": lambda n: 'From: "' + '\\"' * n + '" <a@x.test>\r\n\r\nb\r\n',
    "DKIM signatures": lambda n: "From: a@x.test\r\n" + SIG * n + "\r\nb\r\n",
    "folded signature": lambda n: "From: a@x.test\r\n" + SIG.rstrip() + "\r\n AAAA" * n + "\r\n\r\nb\r\n",
    "ARC headers": lambda n: (
        "From: a@x.test\r\n"
        + "".join(f"ARC-Seal: i={i % 50 + 1}; cv=none; a=rsa-sha256; d=x.test; s=s; b=AA==\r\n" for i in range(n))
        + "\r\nb\r\n"
    ),
    "signed body": lambda n: "From: a@x.test\r\n" + SIG + "\r\n" + "x \t y  \r\n" * n,
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_checks_are_linear(shape: str) -> None:
    zone = CachedZone(Zone())
    assert_linear(lambda text: authenticate(zone, text.encode(), ENV, "mx.test"), SHAPES[shape])


def test_nested_comments_do_not_reach_a_recursive_parser() -> None:
    raw = b"From: " + b"(" * 200_000 + b"a@x.test\r\n\r\nb\r\n"
    assert _from_domains(raw) == []  # all of it is one unclosed comment
    report = authenticate(Zone(), raw, ENV, "mx.test")
    assert report.dmarc.result == "permerror"


_LINES = st.sampled_from(
    [b"From: a@x.test", b"Subject: hi", b" folded", b"\tfolded tab", b"DKIM-Signature: v=1; a=rsa-sha256;",
     b"  b=AAAA", b"From mbox-line", b"X-Empty:", b"Bad line", b"", b"body line", b"x:y:z"]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(_LINES, max_size=12), st.sampled_from([b"\r\n", b"\n"]))
def test_our_header_parse_is_dkimpys(lines: list[bytes], newline: bytes) -> None:
    # dkimpy's own parse is quadratic in folded lines; ours must read every message exactly as it does.
    raw = newline.join(lines)
    try:
        theirs: object = dkim.rfc822_parse(raw)
    except (dkim.MessageFormatError, IndexError):  # IndexError: a first line that continues nothing
        theirs = "error"
    try:
        ours: object = rfc822_parse(raw)
    except dkim.MessageFormatError:
        ours = "error"
    assert ours == theirs
