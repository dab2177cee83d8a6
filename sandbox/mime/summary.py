"""The listing summary the store keeps per message: the byte scanner (_scan.py) for the common shapes,
the part tree (parts.py) for the rest; a test holds the two to the same answers."""

from __future__ import annotations

import contextlib
from email.utils import parsedate_to_datetime

from mailsandbox.mime import _scan
from mailsandbox.mime.html_text import html_to_text
from mailsandbox.mime.parts import parse
from mailsandbox.mime.words import addresses, decode_words
from mailsandbox.models import Summary

SNIPPET_CHARS = 250


def summarize(raw: bytes) -> Summary:
    """The fields the store keeps per message for listing and full-text search."""
    with contextlib.suppress(Exception):  # _scan.Unsupported, or anything odd: the full parser decides
        return _fast_summarize(raw)
    try:
        return _summarize(raw)
    except Exception:  # a message we cannot parse is still stored, just not summarized
        return Summary("", None, (), (), (), (), "", None, len(raw), 0, "", raw[:4096].decode("utf-8", "replace"))


def _summary(
    headers: list[tuple[str, str]], size: int, text: str, html: str, attachments: int, names: list[str],
    inline: int = 0,
) -> Summary:  # fmt: skip
    index: dict[str, list[str]] = {}  # lower-case name -> values, in order
    for key, value in headers:
        index.setdefault(key.lower(), []).append(value)

    def values(name: str) -> list[str]:
        return index.get(name, [])

    def first(name: str) -> str:
        found = index.get(name)
        return found[0] if found else ""

    date: float | None = None
    if first("date"):
        try:
            date = parsedate_to_datetime(first("date")).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            date = None
    body = text or (html_to_text(html) if html else "")
    froms = addresses(values("from"))
    return Summary(
        message_id=first("message-id").strip().strip("<>"),
        from_=froms[0] if froms else None,
        to=addresses(values("to")),
        cc=addresses(values("cc")),
        bcc=addresses(values("bcc")),
        reply_to=addresses(values("reply-to")),
        subject=decode_words(first("subject")),
        date=date,
        size=size,
        attachments=attachments,
        snippet=_snippet(body),
        text=body + "".join(" " + n for n in names),
        inline=inline,
    )


def _snippet(body: str) -> str:
    # The words of the first SNIPPET_CHARS * 4 characters, one space apart, cut at SNIPPET_CHARS. The words
    # of a shorter prefix give a prefix of that text (a cut word is a prefix of its word): when that prefix
    # is long enough, it is the answer, without splitting the rest.
    short = " ".join(body[: SNIPPET_CHARS + SNIPPET_CHARS // 2].split())
    if len(short) >= SNIPPET_CHARS or len(body) <= SNIPPET_CHARS + SNIPPET_CHARS // 2:
        return short[:SNIPPET_CHARS]
    return " ".join(body[: SNIPPET_CHARS * 4].split())[:SNIPPET_CHARS]


def _fast_summarize(raw: bytes) -> Summary:
    head, body_start = _scan.head_of(raw, 0, len(raw))
    headers = _scan.parse_headers(head)
    scan = _scan.Scan()
    _scan.scan_part(headers, raw, body_start, len(raw), scan, 0)
    return _summary(headers, len(raw), scan.text or "", scan.html or "", scan.attachments, scan.filenames,
                    scan.inline)  # fmt: skip


def _summarize(raw: bytes) -> Summary:
    parsed = parse(raw)
    headers = list(parsed.message.header.items())
    names = [a.filename for a in parsed.attachments if a.filename]
    return _summary(headers, len(raw), parsed.text, parsed.html, len(parsed.attachments), names, len(parsed.inline))
