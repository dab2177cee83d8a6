"""An HTML tokenizer in linear time that keeps source positions: the WHATWG tokenizer's states
(HTML Living Standard §13.2.5) for tags, attributes, comments, RAWTEXT/RCDATA/script data and
PLAINTEXT, with the tree builder's switches between them, so the preview rewrites exactly the tags
a browser would see and leaves every other byte as the sender wrote it.

Each step is an anchored match or a forward search with possessive quantifiers: no pattern can
backtrack over what an earlier step consumed, so the cost is linear in the input (a browser drops
a tag still open at end of input; so do we, in one step, without rescanning the rest).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

_WS = "\t\n\x0c\r "  # CR counts: input preprocessing turns it into LF (§13.2.3.5)

# Attributes, bare "/" and whitespace after a tag name, up to the closing "/>" or ">" (§13.2.5.32-40).
_TAG_BODY = (
    rf"""(?:[{_WS}]++|/(?!>)|[^{_WS}/>][^{_WS}/>=]*+(?:[{_WS}]*+=[{_WS}]*+(?:"[^"]*+"?|'[^']*+'?|[^{_WS}>]*+))?)*+"""
)
_TAG_REST = re.compile(rf"{_TAG_BODY}(/?)>")
# The next markup: a tag (groups: "/" of an end tag, name, then "/" and ">" unless input ends inside it),
# or "<!" / "<?" / "</" + other. Any other "<" is text. A tag cut off by the end of input still
# matches (without its ">"), so the search never retries from a later "<" over the same text.
_NEXT = re.compile(rf"<(/?)([A-Za-z][^{_WS}/>]*+)(?:{_TAG_BODY}(/?)(>))?|<[/!?]")
_TAG_ITEM = re.compile(_TAG_BODY[:-2])  # one step of _TAG_BODY
# A regex call holds the GIL until it returns, and the event loop shares that GIL with the thread that
# renders a preview: no single call may scan more than this many characters (a few milliseconds).
WINDOW = 1 << 16


_TAG_NAME = re.compile(rf"[A-Za-z][^{_WS}/>]*+")
_ATTR = re.compile(rf"""([^{_WS}/>][^{_WS}/>=]*+)(?:[{_WS}]*+=[{_WS}]*+("[^"]*+"|'[^']*+'|[^{_WS}>]*+))?|[{_WS}]++|/""")
_COMMENT_END = re.compile(r"--!?>")
_DASHES = re.compile(r"-*+")
_SCRIPT_DATA = re.compile(rf"<!--|</script[{_WS}/>]", re.I | re.A)
_SCRIPT_ESCAPED = re.compile(rf"-->|</script[{_WS}/>]|<script[{_WS}/>]", re.I | re.A)
_SCRIPT_DOUBLE = re.compile(rf"-->|</script[{_WS}/>]", re.I | re.A)

RAWTEXT = frozenset({"style", "xmp", "iframe", "noembed", "noframes"})  # noscript too, but previews run no script
RCDATA = frozenset({"title", "textarea"})
_RAW = RAWTEXT | RCDATA | {"script", "plaintext"}
_RAW_CLOSE = {name: re.compile(rf"</{name}[{_WS}/>]", re.I | re.A) for name in RAWTEXT | RCDATA}
_BREAKOUT = frozenset(
    "b big blockquote body br center code dd div dl dt em embed h1 h2 h3 h4 h5 h6 head hr i img li listing"
    " menu meta nobr ol p pre ruby s small span strong strike sub sup table tt u ul var".split()
)
_SVG_HTML_POINTS = frozenset({"foreignobject", "desc", "title"})
_MATH_TEXT_POINTS = frozenset({"mi", "mo", "mn", "ms", "mtext"})


def _search(pattern: re.Pattern[str], markup: str, pos: int, longest: int) -> re.Match[str] | None:
    """pattern.search in windows of WINDOW characters; `longest`: the most a match of it can span."""
    size = len(markup)
    while True:
        end = min(size, pos + WINDOW)
        found = pattern.search(markup, pos, end)
        if found is not None or end == size:
            return found
        pos = max(pos + 1, end - longest + 1)


def _tag(markup: str, at: int) -> tuple[str | None, bool, bool, int]:
    """The markup at `at` (a "<" that _START found): (tag name or None, end tag, self-closing, end; -1
    when input ends inside the tag). A tag longer than WINDOW is stepped one attribute at a time."""
    found = _NEXT.match(markup, at, min(len(markup), at + WINDOW))
    assert found is not None, "not at markup"
    name = found.group(2)
    if name is None:
        return None, False, False, found.end()
    if found.group(4) is not None:
        return name, bool(found.group(1)), found.group(3) == "/", found.end()
    if at + WINDOW >= len(markup):
        return name, bool(found.group(1)), False, -1
    whole = _TAG_NAME.match(markup, found.start(2))  # a character class runs at memory speed
    assert whole is not None
    name = whole.group()
    pos = whole.end()
    while True:
        step = _TAG_ITEM.match(markup, pos)
        if step is None or step.end() == pos:
            break
        pos = step.end()
    if markup.startswith("/>", pos):
        return name, bool(found.group(1)), True, pos + 2
    return name, bool(found.group(1)), False, pos + 1 if markup.startswith(">", pos) else -1


class Kind(Enum):
    TEXT = "text"  # character data in the data state
    START = "start"
    END = "end"
    OTHER = "other"  # comment, doctype, bogus comment, CDATA, "</>": nothing a browser fetches from
    RAW = "raw"  # the content of a RAWTEXT, RCDATA, script or plaintext element (name: that element)
    OPEN = "open"  # a tag still open at end of input: the browser drops it


@dataclass(slots=True)
class Token:
    kind: Kind
    start: int
    end: int
    name: str = ""  # ASCII-lowercased tag name (START, END, RAW)
    self_closing: bool = False
    closes_raw: bool = False  # an END token that closes the RAW element just before it
    foreign: bool = False  # inside <svg> or <math> content (no RAWTEXT there)


@dataclass(frozen=True, slots=True)
class Attr:
    name: str  # as written
    lname: str
    value: str | None  # without quotes, character references not yet decoded; None: no "="
    start: int
    end: int  # markup[start:end] is the attribute as written


_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(text: str) -> str:
    return text.translate(_LOWER)  # the tokenizer folds ASCII only (str.lower folds U+212A to "k")


def attributes(markup: str, token: Token) -> list[Attr]:
    """The attributes of a START or END token, in source order (a browser keeps the first of duplicates)."""
    at = token.start + 1
    name_end = _TAG_NAME.match(markup, at + (markup[at] == "/"))
    assert name_end is not None, "not a tag token"
    end = token.end - (2 if token.self_closing else 1)
    out: list[Attr] = []
    for match in _ATTR.finditer(markup, name_end.end(), end):
        name = match.group(1)
        if name is None:
            continue  # whitespace or a stray "/"
        raw = match.group(2)
        value = raw[1:-1] if raw and raw[0] in "\"'" else raw
        out.append(Attr(name, ascii_lower(name), value, match.start(), match.end()))
    return out


def _bogus(markup: str, start: int) -> int:
    close = markup.find(">", start)
    return len(markup) if close == -1 else close + 1


def _script_end(markup: str, pos: int) -> int:
    """Where the script data starting at `pos` ends: §13.2.5.4 and its escape states."""
    state = _SCRIPT_DATA
    while True:
        found = _search(state, markup, pos, 9)
        if found is None:
            return len(markup)
        text = found.group()
        if state is _SCRIPT_DATA:
            if text[1] == "/":
                return found.start()
            dashes = _DASHES.match(markup, found.end())
            pos = dashes.end() if dashes else found.end()
            if markup.startswith(">", pos):
                pos += 1  # "<!-->" and "<!--->" close the escape at once
            else:
                state = _SCRIPT_ESCAPED
        elif text == "-->":
            state, pos = _SCRIPT_DATA, found.end()
        elif state is _SCRIPT_ESCAPED:
            if text[1] == "/":
                return found.start()
            state, pos = _SCRIPT_DOUBLE, found.end()
        else:  # double escaped: "</script" only leaves the double escape
            state, pos = _SCRIPT_ESCAPED, found.end()


def _raw_end(markup: str, name: str, pos: int) -> int:
    if name == "plaintext":
        return len(markup)
    if name == "script":
        return _script_end(markup, pos)
    found = _search(_RAW_CLOSE[name], markup, pos, len(name) + 3)
    return len(markup) if found is None else found.start()


class _Context:
    """Enough of the tree builder's stack to know where <svg>/<math> content starts and stops: there
    a <style> or <title> is an ordinary element, and CDATA sections exist (§13.2.6.5)."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, bool]] = []  # (element, is foreign content)

    @property
    def foreign(self) -> bool:
        return bool(self.frames) and self.frames[-1][1]

    def start(self, markup: str, token: Token) -> bool:
        """Track a start tag; True when it is processed as HTML (RAWTEXT switches apply)."""
        name = token.name
        if self.foreign:
            if name in _BREAKOUT or (name == "font" and _font_breaks_out(markup, token)):
                while self.foreign:
                    self.frames.pop()
            else:
                root = self.frames[-1][0]
                if not token.self_closing:
                    if name in ("svg", "math"):
                        self.frames.append((name, True))
                    elif _integration_point(markup, token, root):
                        self.frames.append((name, False))
                return False
        if name in ("svg", "math") and not token.self_closing:
            self.frames.append((name, True))
        return True

    def end(self, name: str) -> None:
        if self.foreign and name in ("br", "p"):
            while self.foreign:
                self.frames.pop()
            return
        for depth in range(len(self.frames) - 1, -1, -1):
            if self.frames[depth][0] == name:
                del self.frames[depth:]
                return


def _font_breaks_out(markup: str, token: Token) -> bool:
    return any(a.lname in ("color", "face", "size") for a in attributes(markup, token))


def _integration_point(markup: str, token: Token, root: str) -> bool:
    if root == "svg":
        return token.name in _SVG_HTML_POINTS
    if token.name in _MATH_TEXT_POINTS:
        return True
    if token.name == "annotation-xml":
        for attr in attributes(markup, token):
            if attr.lname == "encoding":
                return ascii_lower(attr.value or "") in ("text/html", "application/xhtml+xml")
    return False


def tokens(markup: str) -> Iterator[Token]:
    """The tokens of `markup`, covering it exactly: every character is in one token's [start, end)."""
    size = len(markup)
    pos = 0
    context = _Context()
    frames = context.frames
    search = _NEXT.search
    while pos < size:
        scan = pos
        while True:  # the common case in one call: the next "<" and, when a tag, all of it
            window = min(size, scan + WINDOW)
            found = search(markup, scan, window)
            if found is not None or window == size:
                break
            scan = window - 1
        foreign = bool(frames) and frames[-1][1]
        if found is None:
            yield Token(Kind.TEXT, pos, size, foreign=foreign)
            return
        at = found.start()
        if at > pos:
            yield Token(Kind.TEXT, pos, at, foreign=foreign)
        name = found.group(2)
        if (name is not None and found.group(4) is None) or found.end() == window < size:
            name, end_tag, closing, pos = _tag(markup, at)  # cut off by the window or the input
        elif name is not None:
            end_tag, closing, pos = bool(found.group(1)), found.group(3) == "/", found.end()
        if name is not None:
            if pos == -1:
                yield Token(Kind.OPEN, at, size)  # the end of input inside a tag: a browser drops it
                return
            lname = name if name.islower() else ascii_lower(name)
            if end_tag:
                yield Token(Kind.END, at, pos, lname, closing, foreign=foreign)
                if frames:
                    context.end(lname)
                continue
            token = Token(Kind.START, at, pos, lname, closing, foreign=foreign)
            html = context.start(markup, token) if frames or lname in ("svg", "math") else True
            yield token
            if html and lname in _RAW:
                end = _raw_end(markup, lname, pos)
                if end > pos:
                    yield Token(Kind.RAW, pos, end, lname)
                pos = end
                if end < size:
                    _, _, closing, pos = _tag(markup, end)
                    if pos == -1:
                        yield Token(Kind.OPEN, end, size)
                        return
                    yield Token(Kind.END, end, pos, lname, closing, closes_raw=True)
            continue
        second = markup[at + 1]
        if second == "/":  # "</" not followed by a letter
            if at + 2 >= size:
                yield Token(Kind.TEXT, at, size, foreign=foreign)  # "</" at the end is text
                return
            pos = at + 3 if markup[at + 2] == ">" else _bogus(markup, at + 2)
        elif second == "!":
            if markup.startswith("--", at + 2):
                body = at + 4
                if markup.startswith(">", body):
                    pos = body + 1
                elif markup.startswith("->", body):
                    pos = body + 2
                else:
                    close = _search(_COMMENT_END, markup, body, 4)
                    pos = size if close is None else close.end()
            elif foreign and markup.startswith("[CDATA[", at + 2):
                close_at = markup.find("]]>", at + 9)
                pos = size if close_at == -1 else close_at + 3
            else:
                pos = _bogus(markup, at + 2)  # a DOCTYPE ends at its first ">" too (even inside quotes)
        else:  # "<?"
            pos = _bogus(markup, at + 2)
        yield Token(Kind.OTHER, at, pos)
