"""The tokenizer against a real browser: for generated hostile markup, the <img> elements Chromium builds
and their src are exactly the img start tags sandbox.html_tokens finds (so the preview rewrites what the
browser would load, no more, no less)."""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailsandbox.html_tokens import Kind, attributes, tokens
from tests.test_linear_parsing import MARKUP_PIECES

pytestmark = pytest.mark.browser

# The shapes of the linear-time tests, less a meta refresh (it would navigate the page away), plus images.
PIECES = [
    *(piece for piece in MARKUP_PIECES if "refresh" not in piece),
    "<img src=s1>",
    "<img src='s2' ",
    '<IMG SRC="s3"/>',
    "<img/src=s4>",
    "<image src=s5>",
    "src=s6>",
    "<math>",
    "<mi>",
    "</math>",
    "<title>",
    "<xmp>",
    "--!>",
    "<!-->",
    "<!DOCTYPE html>",
    "<?x>",
    "</x y='>'>",
    "&#115;",
]


@pytest.fixture(scope="module")
def blank(browser: Any) -> Iterator[Any]:
    page = browser.new_page()
    page.route("**/*", lambda route: route.abort())  # relative srcs on about:blank load nothing anyway
    yield page
    page.close()


def ours(markup: str) -> list[str]:
    found = []
    for token in tokens(markup):
        if token.kind is Kind.START and (token.name == "img" or (token.name == "image" and not token.foreign)):
            src = next((a.value for a in attributes(markup, token) if a.lname == "src"), None)
            found.append(html.unescape(src) if src is not None else "")
    return sorted(found)


def chromium(page: Any, markup: str) -> list[str]:
    page.set_content(markup, wait_until="commit")
    srcs = page.evaluate("[...document.querySelectorAll('img')].map(i => i.getAttribute('src') ?? '')")
    return sorted(srcs)


@settings(
    max_examples=250, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.sampled_from(PIECES), max_size=24).map("".join))
def test_tokenizer_finds_the_images_chromium_builds(blank: Any, markup: str) -> None:
    assert ours(markup) == chromium(blank, markup)


@pytest.mark.parametrize(
    ("markup", "srcs"),
    [
        ("<img src=s1><IMG SRC='s2'/><img/src=s3>", ["s1", "s2", "s3"]),
        ('<img a="x"src=s1>', ["s1"]),
        ("<textarea><img src=s1></textarea><img src=s2>", ["s2"]),
        ("<script><!--<script></script><img src=s1></script><img src=s2>", ["s2"]),
        ("<style>p{}</style ><img src=s1>", ["s1"]),
        ("<svg><style><img src=s1></style></svg>", ["s1"]),  # img breaks out of SVG content
        ("<svg><![CDATA[<img src=s1>]]></svg><img src=s2>", ["s2"]),
        ("<!--><img src=s1>--><img src=s2>", ["s1", "s2"]),
        ("<img src=s1 <img src=s2>", ["s1"]),
        ("<img src=&#115;1>", ["s1"]),
        ("<img src='s1", []),  # open at the end of input
    ],
)
def test_tricky_markup_matches_chromium(blank: Any, markup: str, srcs: list[str]) -> None:
    assert ours(markup) == chromium(blank, markup) == sorted(srcs)
