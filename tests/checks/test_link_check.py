"""The link check against a real local HTTP server: statuses, redirects, the refusal of internal
addresses (resolved first, every address, every redirect), the rate limit and the cache."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence
from typing import Any

import pytest

from mailsandbox.checks import links
from mailsandbox.checks.links import LinkChecker, extract, is_internal

BLOCKED = {"StatusCode": 451, "Status": "Blocked private/reserved address"}


def run(checker: LinkChecker, urls: Sequence[str], follow: bool = False) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        try:
            return await checker.check(urls, follow)
        finally:
            await checker.close()

    return asyncio.run(go())


def statuses(result: dict[str, Any]) -> list[tuple[int, str]]:
    return [(link["StatusCode"], link["Status"]) for link in result["Links"]]


def test_extract_takes_links_images_and_stylesheets_then_text_once_each() -> None:
    html = """<a href="https://a.example/x?y=1&amp;z=2">a</a> <img src="http://img.example/i.gif">
    <link rel="preload" href="https://no.example/"><link rel="Stylesheet" href="https://css.example/s.css">
    <a href="mailto:x@y">m</a><a href="#top">t</a><a href="https://a.example/x?y=1&z=2">again</a>"""
    text = "See https://t.example/page. Or (http://t.example/other), or xhttps://no.example"
    assert extract(html, text) == [
        "https://a.example/x?y=1&z=2", "http://img.example/i.gif", "https://css.example/s.css",
        "https://t.example/page", "http://t.example/other",
    ]  # fmt: skip
    many = "".join(f'<a href="https://e.example/{i}">' for i in range(300))
    assert len(extract(many, "")) == links.MAX_LINKS


@pytest.mark.parametrize(
    ("address", "internal"),
    [("127.0.0.1", True), ("10.1.2.3", True), ("192.168.0.1", True), ("172.16.5.5", True), ("169.254.1.1", True),
     ("100.64.0.1", True), ("0.0.0.0", True), ("224.0.0.1", True), ("::1", True), ("fe80::1", True),
     ("fc00::1", True), ("::ffff:127.0.0.1", True), ("192.0.2.1", True), ("93.184.215.14", False),
     ("2606:4700::1", False)],
)  # fmt: skip
def test_internal_addresses(address: str, internal: bool) -> None:
    assert is_internal(ipaddress.ip_address(address)) is internal


def test_statuses_with_internal_requests_allowed(site: Any) -> None:
    urls = [site.url("/ok"), site.url("/gone", "localhost"), site.url("/moved"), "http://127.0.0.1:1/"]
    result = run(LinkChecker(allow_internal=True), urls)
    assert statuses(result)[:3] == [(200, "OK"), (404, "Not Found"), (301, "Moved Permanently")]
    assert result["Links"][3]["StatusCode"] == 0 and result["Links"][3]["Status"]
    assert result["Errors"] == 2  # the 404 and the refused connection
    assert all(method == "HEAD" for method, _, _ in site.requests)
    # The request went to the address checked, with the name the link gave in Host.
    assert ("HEAD", "/gone", f"localhost:{site.port}") in site.requests


def test_follow_redirects_up_to_three(site: Any) -> None:
    result = run(LinkChecker(allow_internal=True), [site.url("/moved"), site.url("/loop")], follow=True)
    assert statuses(result) == [(200, "OK"), (0, "too many redirects")]
    assert [p for _, p, _ in site.requests].count("/loop") == 4  # the link and three redirects


def test_internal_addresses_are_refused_without_the_flag(site: Any) -> None:
    urls = [site.url("/ok"), site.url("/ok", "localhost"), f"http://[::1]:{site.port}/ok"]
    result = run(LinkChecker(), urls, follow=True)
    assert [{k: link[k] for k in BLOCKED} for link in result["Links"]] == [BLOCKED] * 3
    assert result["Errors"] == 3
    assert site.requests == []  # nothing reached the server


def test_every_resolved_address_is_checked(site: Any) -> None:
    # A name with one allowed and one blocked address is refused, whichever comes first.
    def resolve(host: str, port: int) -> list[str]:
        return ["127.0.0.1", "127.0.0.2"] if host == "mixed.test" else ["127.0.0.1"]

    def blocked(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return str(address) != "127.0.0.1"  # here only 127.0.0.1 counts as "public"

    checker = LinkChecker(resolve=resolve, blocked=blocked)
    result = run(checker, [f"http://mixed.test:{site.port}/ok", f"http://public.test:{site.port}/ok"])
    assert statuses(result)[0] == (451, BLOCKED["Status"])
    assert statuses(result)[1] == (200, "OK")
    assert [h for _, _, h in site.requests] == [f"public.test:{site.port}"]


def test_redirects_are_checked_again(site: Any) -> None:
    # A public page that redirects to an internal address: the redirect is refused, not followed.
    def blocked(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return str(address) != "127.0.0.1"

    inner = f"http://127.0.0.2:{site.port}/ok"
    result = run(LinkChecker(blocked=blocked), [site.url(f"/to?{inner}")], follow=True)
    assert statuses(result) == [(451, BLOCKED["Status"])]
    assert [p for _, p, _ in site.requests] == [f"/to?{inner}"]


def test_invalid_and_unresolvable_links() -> None:
    def resolve(host: str, port: int) -> list[str]:
        raise OSError("no such name")

    result = run(LinkChecker(resolve=resolve), ["http://user:pw@x.test/", "http://nowhere.test/"])
    assert statuses(result) == [(0, "invalid URL: http://user:pw@x.test/"), (0, "no such host")]


def test_answers_are_cached_and_domains_rate_limited(site: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    checker = LinkChecker(allow_internal=True, clock=lambda: now[0])
    monkeypatch.setattr(links, "BURST", 2)
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", sleep)

    async def go() -> None:
        first = await checker.check([site.url("/ok"), site.url("/gone")])
        again = await checker.check([site.url("/ok"), site.url("/gone")])
        assert first == again and len(site.requests) == 2  # the second answer came from the cache
        assert not slept
        await checker.check([site.url("/other")])  # the third request to the domain waits for a token
        assert slept == [pytest.approx(1.0)]
        now[0] += links.CACHE_TTL + 1
        await checker.check([site.url("/ok")])  # expired: asked again
        assert len(site.requests) == 4
        await checker.close()

    asyncio.run(go())
