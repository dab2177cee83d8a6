"""CapturedMessage and MailFilter on raw bytes: parsing, links, attachments, filters and their explanations."""

from __future__ import annotations

import re
import subprocess
import sys
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailsandbox.pytest_plugin.controls import record, zone_records
from mailsandbox.pytest_plugin.filters import MailFilter
from mailsandbox.pytest_plugin.message import CapturedMessage, Hop


def build(
    subject: str = "Reset your password",
    text: str | None = "Hi Ann,\nreset here: https://app.example/reset/abc123.\nCode: 424242\n",
    html: str | None = '<p>Hi <a href="https://app.example/reset/abc123">reset</a>'
    ' or <a href="https://app.example/help?a=1&amp;b=2">help</a></p>',
    attach: bool = True,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = "App <noreply@app.example>"
    msg["To"] = "Ann <ann@example.test>, bob@example.test"
    msg["Cc"] = "carol@example.test"
    msg["Subject"] = subject
    msg["Message-ID"] = "<1@app.example>"
    msg["X-Kind"] = "reset"
    if text is not None:
        msg.set_content(text)
    if html is not None:
        if text is None:
            msg.set_content(html, subtype="html")
        else:
            msg.add_alternative(html, subtype="html")
    if attach:
        msg.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="invoice.pdf")
    return msg.as_bytes()


def message(raw: bytes | None = None, **kwargs: object) -> CapturedMessage:
    return CapturedMessage(
        raw or build(),
        id="m1",
        envelope_from="bounce@app.example",
        envelope_to=["ann@example.test", "bob@example.test", "carol@example.test", "dave@example.test"],
        **kwargs,  # type: ignore[arg-type]
    )


def test_fields_from_headers_and_envelope() -> None:
    msg = message()
    assert msg.subject == "Reset your password"
    assert msg.sender == "noreply@app.example"
    assert msg.envelope_from == "bounce@app.example"
    assert msg.to == ["ann@example.test", "bob@example.test"]
    assert msg.cc == ["carol@example.test"]
    assert msg.bcc == ["dave@example.test"]  # an envelope recipient no header names
    assert msg.headers["x-kind"] == "reset"
    assert "Subject" in msg.headers and "subject" in msg.headers
    assert msg.message_id == "<1@app.example>"
    assert isinstance(msg.email, EmailMessage)
    assert msg.raw.startswith(b"From: ")


def test_bodies_links_and_find() -> None:
    msg = message()
    assert "Code: 424242" in msg.text
    assert "<a href" in msg.html
    # text links first (trailing sentence dot dropped), then HTML-only ones, entities decoded
    assert msg.links == ["https://app.example/reset/abc123", "https://app.example/help?a=1&b=2"]
    assert msg.find(r"Code: (\d{6})") == "424242"
    assert msg.find(re.compile(r"reset/\w+")) == "reset/abc123"
    assert msg.find(r"help\?a=\d") == "help?a=1"  # only in the HTML part
    assert msg.find("nothing like this") is None


def test_attachments() -> None:
    (att,) = message().attachments
    assert (att.filename, att.content_type, bytes(att), att.size) == (
        "invoice.pdf",
        "application/pdf",
        b"%PDF-1.4 fake",
        13,
    )


def test_html_only_and_text_only() -> None:
    html_only = message(build(text=None, attach=False))
    assert html_only.text == "" and "reset" in html_only.html
    assert html_only.links[0] == "https://app.example/reset/abc123"
    text_only = message(build(html=None, attach=False))
    assert text_only.html == "" and text_only.attachments == []


def test_envelope_defaults_to_headers() -> None:
    msg = CapturedMessage(b"From: a@x.test\r\nTo: b@x.test\r\nBcc: c@x.test\r\nSubject: s\r\n\r\nhi\r\n")
    assert msg.envelope_from == "a@x.test"
    assert msg.envelope_to == ["b@x.test", "c@x.test"]
    assert msg.bcc == ["c@x.test"]
    assert msg.trace == []


def test_trace_is_fetched_through_the_loader() -> None:
    hop = {
        "Hop": 1,
        "Host": "mx.example.test",
        "Recipient": "ann@example.test",
        "Code": 250,
        "Reply": "ok",
        "Timestamp": 1.5,
        "Preference": 10,
        "Dialogue": ["EHLO x", "250 ok"],
        "Status": "accepted",
    }
    msg = message(trace_loader=lambda: [Hop.from_json(hop)])
    (got,) = msg.trace
    assert (got.hop, got.host, got.code, got.preference, got.dialogue) == (
        1,
        "mx.example.test",
        250,
        10,
        ("EHLO x", "250 ok"),
    )


def test_filters_match() -> None:
    msg = message()
    for filters in (
        {"to": "ann@example.test"},
        {"to": "ANN@Example.Test"},
        {"to": "Ann <ann@example.test>"},
        {"to": ["ann@example.test", "dave@example.test"]},  # dave only in the envelope
        {"to": re.compile(r"^bob@")},
        {"cc": "carol@example.test"},
        {"bcc": "dave@example.test"},
        {"sender": "noreply@app.example"},
        {"sender": "bounce@app.example"},
        {"subject": "Reset"},
        {"subject": re.compile(r"^Reset your \w+$")},
        {"contains": "424242"},
        {"contains": "help?a=1&amp;b=2"},  # the HTML part, as written
        {"contains": re.compile(r"Code: \d+")},
        {"header": {"X-Kind": "reset", "message-id": re.compile("app.example"), "Subject": None}},
    ):
        assert MailFilter.from_kwargs(filters).matches(msg), filters


def test_filters_explain_mismatches() -> None:
    msg = message()
    flt = MailFilter.from_kwargs(
        {
            "to": "zed@example.test",
            "subject": "Welcome",
            "contains": "Confirm",
            "header": {"X-Kind": "welcome"},
            "cc": "ann@example.test",
            "bcc": re.compile("nobody"),
        }
    )
    why = "\n".join(flt.mismatches(msg))
    assert "to: 'zed@example.test' not among ann@example.test, bob@example.test" in why
    assert "subject: 'Welcome' not in 'Reset your password'" in why
    assert "    - Welcome" in why and "    + Reset your password" in why
    assert "contains: 'Confirm' in neither part" in why
    assert "header X-Kind: expected 'welcome', got 'reset'" in why
    assert "cc: 'ann@example.test' not among carol@example.test" in why
    assert "bcc: no address matches re.compile('nobody')" in why
    assert str(flt).startswith("to='zed@example.test', cc='ann@example.test', bcc=re.compile('nobody')")


def test_unknown_filter_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="unknown mail filter recipient; the filters are to, cc"):
        MailFilter.from_kwargs({"recipient": "x"})


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_parse_without_escaping_errors(raw: bytes) -> None:
    msg = CapturedMessage(raw)
    # every accessor works on garbage, as failure reports touch them all
    assert isinstance(msg.summary(), str)
    assert isinstance(msg.links, list) and isinstance(msg.attachments, list)
    MailFilter.from_kwargs({"to": "a@b", "subject": "x", "contains": "y", "header": {"X": "1"}}).mismatches(msg)


def test_zone_text_becomes_records() -> None:
    text = '$ORIGIN marker.test.\n$TTL 1h\n@ IN MX 10 mx\n  IN TXT "v=spf1 -all"\nmx 300 IN A 127.0.0.2 ; the MX\n'
    assert zone_records(text) == [
        {"name": "marker.test", "type": "MX", "value": "10 mx.marker.test.", "ttl": 3600},
        {"name": "marker.test", "type": "TXT", "value": '"v=spf1 -all"', "ttl": 3600},
        {"name": "mx.marker.test", "type": "A", "value": "127.0.0.2", "ttl": 300},
    ]
    assert zone_records("www A 127.0.0.3", origin="other.test") == [
        {"name": "www.other.test", "type": "A", "value": "127.0.0.3", "ttl": 300}
    ]


def test_record_forms() -> None:
    assert record(("Example.TEST.", "mx", "10 mx.example.test")) == {
        "name": "example.test",
        "type": "MX",
        "value": "10 mx.example.test",
    }
    assert record({"Name": "a.test", "Type": "A", "Value": "127.0.0.1", "TTL": 60})["ttl"] == 60
    with pytest.raises(TypeError, match="lacks value"):
        record({"name": "a.test", "type": "A"})


def test_exported_names() -> None:
    import mailsandbox.pytest_plugin

    assert mailsandbox.pytest_plugin.__all__ == sorted(mailsandbox.pytest_plugin.__all__)
    for name in mailsandbox.pytest_plugin.__all__:
        assert getattr(mailsandbox.pytest_plugin, name).__name__ == name
    with pytest.raises(AttributeError):
        mailsandbox.pytest_plugin.Nothing  # noqa: B018


def test_loading_the_plugin_imports_neither_httpx_nor_the_sandbox() -> None:
    # Every pytest run of a project that installed the package loads the plugin: keep that cheap.
    code = "import sys, mailsandbox.pytest_plugin.plugin; print(sorted({'httpx', 'mailsandbox.app'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_smtputf8_addresses_are_text() -> None:
    msg = CapturedMessage(
        "From: Jörg <jörg@exämple.test>\r\nTo: Zoë <zoë@exämple.test>\r\nSubject: hi\r\n\r\nx".encode()
    )
    assert msg.to == ["zoë@exämple.test"] and msg.sender == "jörg@exämple.test"
