"""MIME, read one way everywhere: the part tree over the raw bytes (tree.py: RFC 3501 numbering,
encapsulated messages), header text (words.py: RFC 2047, RFC 6532), parameters (params.py: RFC 2231),
the attachment/inline rule (parts.py) and the listing summary (summary.py). Pure functions."""

from __future__ import annotations

from mailsandbox.mime.html_text import html_to_text
from mailsandbox.mime.parts import ENCAPSULATED, Parsed, PartInfo, Role, find_part, header_pairs, parse, role
from mailsandbox.mime.summary import SNIPPET_CHARS, summarize
from mailsandbox.mime.tree import Header, Message, Part
from mailsandbox.mime.words import addresses, decode_words, header_text

__all__ = [
    "ENCAPSULATED",
    "SNIPPET_CHARS",
    "Header",
    "Message",
    "Parsed",
    "Part",
    "PartInfo",
    "Role",
    "addresses",
    "decode_words",
    "find_part",
    "header_pairs",
    "header_text",
    "html_to_text",
    "parse",
    "role",
    "summarize",
]
