"""CSS features of the caniemail.com tables found in a style sheet or a style attribute, with tinycss2
(a CSS Syntax Level 3 tokenizer: one pass, blocks on an explicit stack, so linear in the input).

Every walk over the component tree here is iterative: a style sheet of 100,000 nested brackets is just data."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import tinycss2

# Properties whose caniemail entry is not named css-<property>.
_ALIASES = {
    **{f"margin-block-{e}": "css-margin-block-start-end" for e in ("start", "end")},
    **{f"margin-inline-{e}": "css-margin-inline-start-end" for e in ("start", "end")},
    **{f"padding-block-{e}": "css-padding-block-start-end" for e in ("start", "end")},
    **{f"padding-inline-{e}": "css-padding-inline-start-end" for e in ("start", "end")},
    "margin-block": "css-margin-inline-block", "margin-inline": "css-margin-inline-block",
    "padding-block": "css-padding-inline-block", "padding-inline": "css-padding-inline-block",
    "border-block": "css-border-inline-block", "border-inline": "css-border-inline-block",
    **{f"border-{axis}-{e}": "css-border-inline-block-individual" for axis in ("block", "inline")
       for e in ("start", "end")},
    **{side: "css-left-right-top-bottom" for side in ("left", "right", "top", "bottom")},
    "block-size": "css-block-inline-size",
    "column-width": "css-column-layout-properties", "column-gap": "css-column-layout-properties",
    "column-rule": "css-column-layout-properties", "column-span": "css-column-layout-properties",
    "columns": "css-column-layout-properties",
    "grid-template-columns": "css-grid-template", "grid-template-rows": "css-grid-template",
    "grid-template-areas": "css-grid-template",
    "scroll-snap-type": "css-scroll-snap", "scroll-snap-align": "css-scroll-snap",
    "animation-name": "css-animation", "animation-duration": "css-animation",
    "transition-property": "css-transition", "transition-duration": "css-transition",
}  # fmt: skip
# Value functions and units, as Mailpit tests them (px, % and em are everywhere; they would drown the rest).
_FUNCTIONS = {
    "rgb": "css-rgb", "rgba": "css-rgba", "calc": "css-unit-calc", "var": "css-variables",
    "linear-gradient": "css-linear-gradient", "repeating-linear-gradient": "css-linear-gradient",
    "radial-gradient": "css-radial-gradient", "repeating-radial-gradient": "css-radial-gradient",
    "conic-gradient": "css-conic-gradient", "min": "css-function-min", "max": "css-function-max",
    "clamp": "css-function-clamp", "light-dark": "css-function-light-dark",
}  # fmt: skip
_UNITS = {unit: f"css-unit-{unit}" for unit in ("ch", "rem", "vh", "vw", "vmin", "vmax")}
_DISPLAY = {"flex": "css-display-flex", "inline-flex": "css-display-flex", "grid": "css-display-grid",
            "inline-grid": "css-display-grid", "none": "css-display-none"}  # fmt: skip
_AT_RULES = {"font-face", "import", "keyframes", "media", "supports"}
_MEDIA_FEATURES = {
    "prefers-color-scheme": "css-at-media-prefers-color-scheme",
    "prefers-reduced-motion": "css-at-media-prefers-reduced-motion",
    "orientation": "css-at-media-orientation", "hover": "css-at-media-hover",
    **{f"{p}device-pixel-ratio": "css-at-media-device-pixel-ratio" for p in ("", "min-", "max-", "-webkit-",
       "-webkit-min-", "-webkit-max-")},
}  # fmt: skip
_PSEUDO_ELEMENTS = {"before", "after", "first-letter", "first-line", "marker", "placeholder"}

Found = Callable[[str, int], None]  # (slug, line within the CSS text, 1-based)


def _components(values: Iterable[Any]) -> Iterator[Any]:
    """Every component value, nested blocks and functions included, depth first, without recursion."""
    stack = [iter(values)]
    while stack:
        for value in stack[-1]:
            yield value
            inner = getattr(value, "arguments", None) if value.type == "function" else getattr(value, "content", None)
            if isinstance(inner, list):
                stack.append(iter(inner))
                break
        else:
            stack.pop()


def declarations(values: list[Any], found: Found, known: Callable[[str], bool], offset: int = 0) -> None:
    """The features used by the declarations of a block; a line is `offset` + the line in the parsed text."""
    for item in tinycss2.parse_blocks_contents(values, skip_comments=True, skip_whitespace=True):
        if item.type != "declaration":
            continue
        where = (item.source_line or 1) + offset
        name = item.lower_name
        if name.startswith("--"):
            found("css-variables", where)
        else:
            slug = _ALIASES.get(name) or f"css-{name}"
            if known(slug):
                found(slug, where)
        if item.important:
            found("css-important", where)
        for value in _components(item.value):
            kind = value.type
            if kind == "function" and value.lower_name in _FUNCTIONS:
                found(_FUNCTIONS[value.lower_name], where)
            elif kind == "dimension" and value.lower_unit in _UNITS:
                found(_UNITS[value.lower_unit], where)
            elif kind == "ident":
                if name == "display" and value.lower_value in _DISPLAY:
                    found(_DISPLAY[value.lower_value], where)
                elif value.lower_value == "initial":
                    found("css-unit-initial", where)


def inline_style(style: str, found: Found, known: Callable[[str], bool], line: int) -> None:
    """A style attribute's features, each found at `line` plus its line within the attribute."""
    declarations(tinycss2.parse_component_value_list(style, skip_comments=True), found, known, line - 1)


def _selectors(prelude: list[Any], found: Found, known: Callable[[str], bool], line: int) -> None:
    colons = 0
    for value in _components(prelude):
        if value.type == "literal" and value.value == ":":
            colons += 1
            continue
        if colons and value.type in ("ident", "function"):
            name = value.lower_value if value.type == "ident" else value.lower_name
            element = colons == 2 or name in _PSEUDO_ELEMENTS
            slug = f"css-pseudo-{'element' if element else 'class'}-{name}"
            if known(slug):
                found(slug, line)
        colons = 0


def stylesheet(css: str, found: Found, known: Callable[[str], bool]) -> None:
    """The features of a <style> element's text; lines are 1-based within `css`."""
    rules: list[Iterator[Any]] = [iter(tinycss2.parse_stylesheet(css, skip_comments=True, skip_whitespace=True))]
    while rules:  # @media and @supports hold rules: a stack, not recursion
        for rule in rules[-1]:
            line = rule.source_line or 1
            if rule.type == "at-rule":
                keyword = rule.lower_at_keyword
                if keyword in _AT_RULES:
                    found(f"css-at-{keyword}", line)
                if keyword == "media":
                    for value in _components(rule.prelude):
                        if value.type == "ident" and value.lower_value in _MEDIA_FEATURES:
                            found(_MEDIA_FEATURES[value.lower_value], line)
                if keyword in ("media", "supports") and rule.content is not None:
                    rules.append(iter(tinycss2.parse_rule_list(rule.content, skip_comments=True,
                                                               skip_whitespace=True)))  # fmt: skip
                    break
            elif rule.type == "qualified-rule":
                _selectors(rule.prelude, found, known, line)
                declarations(rule.content, found, known)
        else:
            rules.pop()
