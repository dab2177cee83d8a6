"""The preview's HTML rewrite: remote resources removed and counted, cid: mapped, the rest untouched."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailsandbox.web.preview import preview_csp, rewrite_html

CIDS = {"logo@x": "2.2"}


def run(markup: str, allow_remote: bool = False) -> tuple[str, int, set[str]]:
    out, rewrite = rewrite_html(markup, "MID", CIDS, allow_remote)
    return out, rewrite.blocked, rewrite.hosts


@pytest.mark.parametrize(
    ("markup", "blocked", "hosts"),
    [
        ('<img src="https://t.test/p.gif">', 1, {"t.test"}),
        ("<img src=http://t.test/p.gif width=1>", 1, {"t.test"}),
        ("<img src='//cdn.test/x.png'>", 1, {"cdn.test"}),
        ('<img src="ht&#116;ps://ent.test/x">', 1, {"ent.test"}),  # entity-encoded scheme
        ('<img src="https:\\\\bs.test/x">', 1, {"bs.test"}),  # backslashes count as slashes
        ('<img src=" h\nttps://nl.test/x">', 1, {"nl.test"}),  # URL parsers drop newlines
        ('<img srcset="https://a.test/1.png 1x, https://b.test/2.png 2x">', 2, {"a.test", "b.test"}),
        ('<table background="http://bg.test/b.png"><tr><td>x</td></tr></table>', 1, {"bg.test"}),
        ('<div style="background:url(https://css.test/i.png)">x</div>', 1, {"css.test"}),
        (
            "<style>@import 'https://imp.test/a.css'; p{background:url(\"//u.test/a\")}</style>",
            2,
            {"imp.test", "u.test"},
        ),
        ('<link rel="stylesheet" href="https://fonts.test/css">', 1, {"fonts.test"}),
        ('<video poster="https://v.test/p.jpg"></video>', 1, {"v.test"}),
        ('<meta http-equiv="refresh" content="0;url=https://r.test/">', 1, set()),
        ('<a href="https://click.test/">link</a>', 0, set()),  # a click is the user's choice
        ('<img src="data:image/png;base64,AAAA">', 0, set()),
        ("<p>https://not-a-resource.test/ in text</p>", 0, set()),
    ],
)
def test_remote_resources_are_blocked_and_counted(markup: str, blocked: int, hosts: set[str]) -> None:
    out, count, seen = run(markup)
    assert (count, seen) == (blocked, hosts)
    for host in hosts:
        assert host not in out
    # with the user's permission nothing is removed
    _, count, _ = run(markup, allow_remote=True)
    assert count == 0


def test_cid_is_rewritten_to_the_part_url() -> None:
    out, count, _ = run('<img src="cid:logo@x" alt=logo><img src="CID:<logo@x>">')
    assert out.count('src="/api/v1/message/MID/part/2.2"') == 2
    assert count == 0


def test_unknown_cid_is_left_alone() -> None:
    out, _, _ = run('<img src="cid:other@x">')
    assert 'src="cid:other@x"' in out


def test_attributes_and_text_survive_exactly() -> None:
    markup = (
        '<h1 style="color:#2563eb" class=big>Hi &amp; bye</h1><a href="https://x.test/?a=1&amp;b=2">go</a>'
    )
    out, _, _ = run(markup)
    assert out == '<base target="_blank">' + markup


def test_base_goes_after_head_and_sender_base_and_ping_are_dropped() -> None:
    head = '<!DOCTYPE html><html><head><base href="https://evil.test/"></head>'
    out, _, _ = run(head + '<a ping="https://p.test" href=x>a</a>')
    assert out == '<!DOCTYPE html><html><head><base target="_blank"></head><a href=x>a</a>'


def test_csp_has_a_scriptless_sandbox_and_only_our_parts() -> None:
    csp = preview_csp("http://127.0.0.1:8025", "MID", allow_remote=False)
    directives = {d.split()[0]: d.split()[1:] for d in csp.split("; ")}
    assert directives["sandbox"] == ["allow-popups", "allow-popups-to-escape-sandbox"]
    assert directives["default-src"] == ["'none'"]
    assert "http://127.0.0.1:8025/api/v1/message/MID/part/" in directives["img-src"]
    assert "https:" not in csp and "script-src" not in csp
    assert "https:" in preview_csp(None, "MID", allow_remote=True)


PIECES = [
    *"<>\"'= /:abcimgsrcstyleurl()hptx.\n&#;",
    "https://",
    "<img src=",
    "cid:logo@x",
    "<style>",
    "srcset=",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=40).map("".join))
def test_rewriting_twice_finds_nothing_left_to_block(markup: str) -> None:
    out, _, _ = run(markup)
    _, blocked, _ = run(out)
    assert blocked == 0
