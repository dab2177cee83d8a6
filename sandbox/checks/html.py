"""The HTML check: which HTML and CSS features of the caniemail.com tables a message's HTML uses, and how
well email clients support them, in Mailpit's `HTMLCheckResponse` shape and with Mailpit's scoring.

The markup is read with sandbox.html_tokens and the CSS with tinycss2, both linear in their input. Where
Mailpit inlines the <style> rules into every element they match, each declaration here counts once where
it is written; a linked style sheet is not fetched (its <link> is reported as html-link)."""

from __future__ import annotations

import bisect
import html as html_lib
from collections.abc import Callable
from typing import Any

from mailsandbox import html_tokens
from mailsandbox.checks import _css
from mailsandbox.checks.caniemail import script_warning, tables, warning
from mailsandbox.html_tokens import Kind

MAX_PLACES = 10  # source lines kept per feature
MAX_SNIPPET = 160  # characters of an offending line
MAX_HTML = 2 << 20  # characters checked (a few seconds of work): past this, the rest is not read

_ELEMENTS = {
    "object": "html-object", "embed": "html-object", "link": "html-link", "hr": "html-hr",
    "dialog": "html-dialog", "picture": "html-picture", "svg": "html-svg", "progress": "html-progress",
    "meter": "html-meter", "audio": "html-audio", "form": "html-form", "base": "html-base",
    "video": "html-video", "select": "html-select", "textarea": "html-textarea", "style": "html-style",
    "map": "html-image-maps",
    **{name: "html-semantics" for name in ("article", "aside", "details", "figcaption", "figure", "footer",
                                           "header", "main", "mark", "nav", "section", "summary", "time")},
}  # fmt: skip
_INPUTS = {"submit": "html-input-submit", "reset": "html-input-reset", "checkbox": "html-input-checkbox",
           "radio": "html-input-radio", "text": "html-input-text", "hidden": "html-input-hidden"}  # fmt: skip
# Presentational attributes, scored as the CSS they stand for (as Mailpit does).
_STYLE_ATTRIBUTES = {"bgcolor": "css-background-color", "background": "css-background", "border": "css-border",
                     "height": "css-height", "padding": "css-padding", "width": "css-width"}  # fmt: skip
_IMAGES = {".apng": "image-apng", ".avif": "image-avif", ".bmp": "image-bmp", ".gif": "image-gif",
           ".hdr": "image-hdr", ".heif": "image-heif", ".ico": "image-ico", ".mp4": "image-mp4",
           ".ppm": "image-ppm", ".svg": "image-svg", ".tif": "image-tiff", ".tiff": "image-tiff",
           ".webp": "image-webp"}  # fmt: skip
_DATA_TYPES = ("application/ld+json", "application/json")  # <script> types that hold data, not code
_NOT_NODES = frozenset({"html", "head", "meta"})
# The HTML tests beside the elements, inputs and images above.
_OTHER_HTML = {"html-body", "html-script", "html-srcset", "html-required", "html-anchor-links", "html-button-submit",
               "html-button-reset", "image-base64"}  # fmt: skip


def _tests() -> int:
    """How many tests a check runs (Mailpit's `Total.Tests`): the HTML ones, and every CSS feature of the
    tables but the selectors, which are not looked for."""
    html = {*_ELEMENTS.values(), *_INPUTS.values(), *_IMAGES.values(), *_OTHER_HTML}
    css = {s for s in tables().features if s.startswith("css-") and not s.startswith("css-selector-")}
    return len(html) + len(css)


class _Findings:
    def __init__(self, markup: str) -> None:
        self.markup = markup
        self.counts: dict[str, int] = {}
        self.places: dict[str, list[int]] = {}
        self._newlines: list[int] | None = None

    def line_of(self, pos: int) -> int:
        if self._newlines is None:
            found, at = [], self.markup.find("\n")
            while at != -1:
                found.append(at)
                at = self.markup.find("\n", at + 1)
            self._newlines = found
        return bisect.bisect_left(self._newlines, pos) + 1

    def add(self, slug: str, line: int) -> None:
        self.counts[slug] = self.counts.get(slug, 0) + 1
        lines = self.places.setdefault(slug, [])
        if len(lines) < MAX_PLACES and line not in lines:
            lines.append(line)

    def adder(self, offset: int) -> Callable[[str, int], None]:
        """`add` for lines counted from `offset` (a style sheet's lines within the markup)."""
        return lambda slug, line: self.add(slug, offset + line)

    def snippet(self, line: int) -> str:
        """Line `line` of the markup, cut to MAX_SNIPPET characters."""
        newlines = self._newlines or []
        start = newlines[line - 2] + 1 if line >= 2 else 0
        end = newlines[line - 1] if line - 1 < len(newlines) else len(self.markup)
        text = self.markup[start : min(end, start + MAX_SNIPPET)].strip()
        return text + (" …" if end - start > MAX_SNIPPET else "")


def _find(markup: str) -> tuple[_Findings, int]:
    """The features the markup uses and its element count (Mailpit's `Nodes`)."""
    found = _Findings(markup)
    known: Callable[[str], bool] = tables().features.__contains__
    nodes = 0
    body_start = False
    body_end = -1
    for token in html_tokens.tokens(markup):
        if token.kind is Kind.END and token.name == "body":
            body_end = token.start
        if token.kind is Kind.RAW and token.name == "style":
            _css.stylesheet(markup[token.start : token.end], found.adder(found.line_of(token.start) - 1), known)
        if token.kind is not Kind.START:
            continue
        name = token.name
        line = found.line_of(token.start)
        if name not in _NOT_NODES:
            nodes += 1
        body_start = body_start or name == "body"
        attrs: dict[str, tuple[str, int]] = {}
        for attr in html_tokens.attributes(markup, token):
            attrs.setdefault(attr.lname, (html_lib.unescape(attr.value or ""), attr.start))
        _element(found, name, attrs, line, known)
    if body_end != -1:
        found.add("html-body", found.line_of(body_end))
    elif body_start:
        nodes -= 1  # Mailpit counts the elements inside <body> when the markup has no </body>
    return found, max(nodes, 1)


def _element(found: _Findings, name: str, attrs: dict[str, tuple[str, int]], line: int,
             known: Callable[[str], bool]) -> None:  # fmt: skip
    if name in _ELEMENTS:
        found.add(_ELEMENTS[name], line)
    kind = attrs.get("type", ("", 0))[0].strip().lower()
    if name == "input" and kind in _INPUTS:
        found.add(_INPUTS[kind], line)
        if kind == "submit":
            found.add("html-button-submit", line)
    elif name == "button" and kind in ("submit", "reset"):
        found.add(f"html-button-{kind}", line)
    elif name == "script" and kind not in _DATA_TYPES:
        found.add("html-script", line)
    if "srcset" in attrs:
        found.add("html-srcset", line)
    if "required" in attrs:
        found.add("html-required", line)
    if name == "a" and attrs.get("href", ("", 0))[0].startswith("#"):
        found.add("html-anchor-links", line)
    if name == "img":
        if "usemap" in attrs:
            found.add("html-image-maps", line)
        _image(found, attrs.get("src", ("", 0))[0], line)
    for attr, slug in _STYLE_ATTRIBUTES.items():
        if attr in attrs:
            found.add(slug, line)
    if "style" in attrs:
        value, at = attrs["style"]
        _css.inline_style(value, found.add, known, found.line_of(at))


def _image(found: _Findings, src: str, line: int) -> None:
    src = src.strip()
    if src[:11].lower() == "data:image/":
        found.add("image-base64", line)
        return
    path = src.split("#", 1)[0].split("?", 1)[0].lower()
    dot = path.rfind(".")
    if dot != -1 and path[dot:] in _IMAGES:
        found.add(_IMAGES[path[dot:]], line)


def check(markup: str, places: bool = False) -> dict[str, Any]:
    """Mailpit's `HTMLCheckResponse` for `markup`. With `places`, each warning also lists where the feature
    is used: `"Places": [{"Line": 12, "Text": "<div style=...>"}]` (the source as written: escape it to show
    it), and `"Families"` maps each family's key to its name."""
    found, nodes = _find(markup[:MAX_HTML])
    data = tables()
    warnings = []
    for slug, count in found.counts.items():
        if slug == "html-script":
            item = script_warning(count)
        elif slug in data.features:
            item = warning(data.features[slug], count)
        else:
            continue
        if places:
            item["Places"] = [{"Line": n, "Text": found.snippet(n)} for n in found.places.get(slug, [])]
        warnings.append(item)

    def weight(item: dict[str, Any], key: str) -> float:
        return float(item["Score"][key] * item["Score"]["Found"] / nodes)

    # The total is the worst single feature, weighted by how much of the message uses it (Mailpit's rule),
    # capped: a style sheet can use a feature more often than the message has elements.
    partial = min(100.0, max((weight(w, "Partial") for w in warnings), default=0.0))
    unsupported = min(100.0 - partial, max((weight(w, "Unsupported") for w in warnings), default=0.0))
    warnings.sort(key=lambda w: (-(weight(w, "Partial") + weight(w, "Unsupported")), w["Slug"]))
    extra = {"Families": dict(data.families)} if places else {}
    return {
        **extra,
        "Warnings": warnings,
        "Platforms": data.platform_families(),
        "Total": {
            "Tests": _tests(),
            "Nodes": nodes,
            "Supported": 100.0 - partial - unsupported,
            "Partial": partial,
            "Unsupported": unsupported,
        },
    }
