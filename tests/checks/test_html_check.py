"""The HTML check against the caniemail.com tables: what it finds, where, the scores and Mailpit's shape
(its cost on hostile input is in tests/test_linear_parsing.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mailsandbox.checks import caniemail
from mailsandbox.checks.html import check

WARNING_KEYS = {"Slug", "Title", "Description", "URL", "Category", "Tags", "Keywords", "Results", "NotesByNumber",
                "Score"}  # fmt: skip
RESULT_KEYS = {"Name", "Platform", "Family", "Version", "Support", "NoteNumber"}

NEWSLETTER = """<!DOCTYPE html>
<html><head><style>
.button:hover { background-color: #f00 !important; }
@media (prefers-color-scheme: dark) { .card { display: flex; } }
</style></head>
<body>
<div style="padding: 12px; width: 50rem; background-image: url(bg.png)">Hello</div>
<img src="https://img.example/anim.GIF?v=2" width="600">
<form action="https://x.example/"><input type="checkbox" name="c"></form>
<script>alert(1)</script>
<script type="application/ld+json">{}</script>
</body></html>
"""


def slugs(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {w["Slug"]: w for w in result["Warnings"]}


def test_mailpit_shape() -> None:
    result = check(NEWSLETTER)
    assert set(result) == {"Warnings", "Platforms", "Total"}
    assert set(result["Total"]) == {"Tests", "Nodes", "Supported", "Partial", "Unsupported"}
    for warning in result["Warnings"]:
        assert set(warning) == WARNING_KEYS  # no extras on Mailpit's path
        assert set(warning["Score"]) == {"Found", "Supported", "Partial", "Unsupported"}
        for row in warning["Results"]:
            assert set(row) == RESULT_KEYS
            assert row["Support"] in ("yes", "no", "partial")
    assert "Outlook" in result["Platforms"]["windows"]
    json.dumps(result)


def test_finds_the_features_a_newsletter_uses() -> None:
    found = slugs(check(NEWSLETTER))
    for slug in ("css-pseudo-class-hover", "css-background-color", "css-important", "css-at-media",
                 "css-at-media-prefers-color-scheme", "css-display-flex", "css-padding", "css-width",
                 "css-unit-rem", "css-background-image", "image-gif", "html-form", "html-input-checkbox",
                 "html-style", "html-body", "html-script"):  # fmt: skip
        assert slug in found, slug
    assert found["html-script"]["Score"]["Found"] == 1  # the ld+json block is data, not script
    assert found["css-width"]["Score"]["Found"] == 2  # the style declaration and the width attribute
    assert "image-png" not in found  # a CSS url() is not an <img>
    assert found["html-script"]["Score"]["Unsupported"] == 100


def test_scores_follow_the_tables() -> None:
    feature = caniemail.tables().features["css-padding"]
    cells = [c for platforms in feature.stats.values() for versions in platforms.values() for c in versions.values()]
    warning = slugs(check('<div style="padding:1px">x</div>'))["css-padding"]
    assert len(warning["Results"]) == len(cells)
    assert warning["Score"]["Supported"] == pytest.approx(100 * cells.count("y") / len(cells))
    assert warning["Score"]["Unsupported"] == pytest.approx(100 * cells.count("n") / len(cells))
    partial = [r for r in warning["Results"] if r["Support"] == "partial"]
    assert partial and any(r["NoteNumber"] for r in partial)
    outlook = [r for r in warning["Results"] if r["Family"] == "outlook" and r["Platform"] == "windows"]
    assert outlook and outlook[0]["Name"].startswith("Outlook Windows (")


def test_total_is_the_worst_feature_weighted_by_use() -> None:
    # One element of two uses a feature that half the clients lack: the total reflects that share.
    result = check('<p>plain</p><div style="display:flex">flex</div>')
    total = result["Total"]
    assert total["Nodes"] == 2
    worst = max(w["Score"]["Unsupported"] * w["Score"]["Found"] / 2 for w in result["Warnings"])
    assert total["Unsupported"] == pytest.approx(worst)
    assert total["Supported"] == pytest.approx(100 - total["Partial"] - total["Unsupported"])
    assert check("<p>plain</p>")["Total"]["Supported"] == 100
    assert result["Warnings"] == sorted(
        result["Warnings"],
        key=lambda w: -(w["Score"]["Partial"] + w["Score"]["Unsupported"]) * w["Score"]["Found"],
    )


def test_places_give_the_offending_lines() -> None:
    result = check(NEWSLETTER, places=True)
    found = slugs(result)
    assert found["css-pseudo-class-hover"]["Places"] == [
        {"Line": 3, "Text": ".button:hover { background-color: #f00 !important; }"}
    ]
    assert [p["Line"] for p in found["css-width"]["Places"]] == [7, 8]
    assert found["html-script"]["Places"][0]["Text"] == "<script>alert(1)</script>"


def test_bad_markup_and_css_never_raise() -> None:
    for markup in ("", "<", "<style>", "<style>@media {{{{", '<p style="color:">', "<div style='--:;;;!'>",
                   "<style>a{b:c}}}}@import", "<svg><style>x{y:z}</style></svg>", "\x00<img src>"):  # fmt: skip
        result = check(markup)
        assert result["Total"]["Nodes"] >= 1


def test_the_checker_process_answers_and_is_ended_when_late() -> None:
    import asyncio

    from mailsandbox.checks.pool import CheckFailed, HtmlChecker

    async def go() -> None:
        checker = HtmlChecker(timeout=0.001)  # too short even to start the process
        with pytest.raises(CheckFailed):
            await checker.check("<p>x</p>")
        assert checker._process is None  # killed, not left running
        checker.timeout = 60
        assert await checker.check('<div style="display:flex">x</div>') == check('<div style="display:flex">x</div>')
        first = checker._process
        assert (await checker.check("<hr>", places=True))["Warnings"][0]["Places"] == [{"Line": 1, "Text": "<hr>"}]
        assert checker._process is first  # one process serves every check
        await checker.close()
        assert first is not None and first.returncode is not None

    asyncio.run(go())
