"""The text a reader of an HTML body sees, read through the linear tokenizer (sandbox/html_tokens.py)."""

from __future__ import annotations

import html as html_lib

from mailsandbox import html_tokens
from mailsandbox.html_tokens import Kind

# What a reader of the rendered HTML does not see, and what ends a line.
_HIDDEN_RAW = frozenset({"script", "style", "title", "iframe", "noembed", "noframes"})
_HEAD_CONTENT = frozenset({"title", "style", "script", "meta", "link", "base", "noscript", "template", "basefont"})
_LINE_ENDS = frozenset({"p", "div", "tr", "li", "br", *(f"h{i}" for i in range(10))})


def html_to_text(markup: str) -> str:
    """The text a reader sees: <head>, scripts and styles dropped, each tag a space, the ends of
    paragraphs, blocks and rows and each <br> a newline, character references decoded."""
    pieces: list[str] = []
    in_head = False
    head_possible = True  # a <head> after body content is ignored (HTML §13.2.6.4.7)
    hidden = ""  # the element whose content is dropped, while inside it
    for token in html_tokens.tokens(markup):
        kind, name = token.kind, token.name
        if kind is Kind.TEXT:
            text = markup[token.start : token.end]
            if in_head and text.strip(" \t\n\r\x0c"):
                in_head = False  # text ends the head; a browser shows it
            if not in_head:
                pieces.append(text)
                head_possible = head_possible and not text.strip()
        elif kind is Kind.RAW:
            if not in_head and name not in _HIDDEN_RAW:
                pieces.append(markup[token.start : token.end])
        elif kind is Kind.START:
            if in_head and name not in _HEAD_CONTENT:
                in_head = False
            if in_head:
                continue
            if name == "head" and head_possible:
                in_head, head_possible = True, False
            elif name not in ("html", "head"):
                head_possible = False
            if name in _HIDDEN_RAW and not token.foreign:
                hidden = name
            pieces.append("\n" if name == "br" else " ")
        elif kind is Kind.END:
            if in_head:
                in_head = name != "head"
            elif token.closes_raw and name == hidden:
                hidden = ""  # the dropped element with its tags counts as one space
            else:
                pieces.append("\n" if name in _LINE_ENDS else " ")
        elif kind is Kind.OTHER and not in_head:
            pieces.append(" ")
    return html_lib.unescape("".join(pieces))
