"""The link check: the HTTP status of every link and image URL in a message, in Mailpit's
`LinkCheckResponse` shape, without letting a message make the sandbox probe the network.

Each host is resolved first and every address it resolves to is checked: one internal or loopback
address refuses the link (451, as Mailpit answers) unless `allow_internal` is set; the request then goes
to the checked address itself (the name stays in Host and SNI), so a second lookup cannot swap it, and
every redirect is resolved and checked the same way. Requests are HEAD, with timeouts, at most
`concurrency` at once, two per domain, behind a per-domain token bucket (a burst of 100, then 1 a second),
and answers are cached for a minute."""

from __future__ import annotations

import asyncio
import html as html_lib
import ipaddress
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from http import HTTPStatus
from typing import Any

import httpx

from mailsandbox import html_tokens
from mailsandbox.executors import BoundedExecutor
from mailsandbox.html_tokens import Kind

MAX_LINKS = 100  # unique URLs checked per message (Mailpit's cap)
MAX_REDIRECTS = 3
BURST, REFILL = 100, 1.0  # per registered domain: tokens, and tokens a second
PER_DOMAIN = 2
CACHE_TTL = 60.0
MAX_ENTRIES = 10_000  # domains and cached answers kept
_URL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_@:%+'!.~#?,&/=;")
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]


def is_internal(address: Address) -> bool:
    """Anything but a global unicast address: loopback, private, link-local, shared, reserved, multicast."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


def _valid(url: str) -> bool:
    """http or https with a host and no user info (Mailpit's rule for a link it will fetch)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.host) and not parsed.userinfo


def _text_links(text: str, add: Callable[[str], bool]) -> None:
    """URLs in plain text: from each "http://" or "https://" up to the first character no URL has
    (one forward pass: each character is looked at a bounded number of times)."""
    lower = text.lower()
    pos = lower.find("http")
    while pos != -1:
        scheme = 8 if lower.startswith("https://", pos) else 7 if lower.startswith("http://", pos) else 0
        if scheme and (pos == 0 or not text[pos - 1].isalnum()):
            end = pos + scheme
            while end < len(text) and text[end] in _URL_CHARS:
                end += 1
            if end > pos + scheme and not add(text[pos:end].rstrip(".,;:!?'")):
                return
            pos = end
        else:
            pos += 4
        pos = lower.find("http", pos)


def extract(html: str, text: str, limit: int = MAX_LINKS) -> list[str]:
    """The unique http(s) URLs of a message: those of <a href>, <link rel=stylesheet href> and <img src> in
    source order, then those in the text part; at most `limit`."""
    links: dict[str, None] = {}

    def add(url: str) -> bool:
        if url.lower().startswith(("http://", "https://")):
            links.setdefault(url, None)
        return len(links) < limit

    wanted = {"a": "href", "link": "href", "img": "src"}
    for token in html_tokens.tokens(html):
        if token.kind is not Kind.START or token.name not in wanted:
            continue
        attrs: dict[str, str] = {}
        for attr in html_tokens.attributes(html, token):
            attrs.setdefault(attr.lname, html_lib.unescape(attr.value or ""))
        if token.name == "link" and "stylesheet" not in attrs.get("rel", "").lower().split():
            continue
        if attrs.get(wanted[token.name]) and not add(attrs[wanted[token.name]].strip()):
            return list(links)
    _text_links(text, add)
    return list(links)


def _domain(host: str) -> str:
    """The key a rate limit is kept under: the last two labels of a name (subdomains share a bucket), or
    the address itself."""
    host = host.lower().rstrip(".")
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        return ".".join(host.rsplit(".", 2)[-2:])


def _system_resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _Refused(Exception):
    def __init__(self, status: str, code: int = 0) -> None:
        super().__init__(status)
        self.status, self.code = status, code


class _Bucket:
    def __init__(self, now: float) -> None:
        self.tokens, self.at = float(BURST), now
        self.slots = asyncio.Semaphore(PER_DOMAIN)


class LinkChecker:
    """One per sandbox: its HTTP client, DNS threads, rate limits and cache are shared by every check."""

    def __init__(
        self,
        allow_internal: bool = False,
        *,
        timeout: float = 10.0,
        concurrency: int = 8,
        resolve: Resolver = _system_resolve,
        blocked: Callable[[Address], bool] = is_internal,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.allow_internal = allow_internal
        self.timeout = timeout
        self._resolve = resolve
        self._blocked = blocked
        self._clock = clock
        self._dns = BoundedExecutor("linkcheck-dns", 4)
        self._concurrency = concurrency
        self._client: httpx.AsyncClient | None = None  # made on first use, on the serving loop
        self._slots: asyncio.Semaphore | None = None
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._cache: OrderedDict[tuple[str, bool], tuple[float, dict[str, Any]]] = OrderedDict()

    async def check(self, urls: Iterable[str], follow: bool = False) -> dict[str, Any]:
        """Mailpit's `LinkCheckResponse`: `{"Errors": n, "Links": [{"URL", "StatusCode", "Status"}]}`."""
        links = await asyncio.gather(*(self._one(url, follow) for url in urls))
        errors = sum(1 for link in links if link["StatusCode"] >= 400 or link["StatusCode"] == 0)
        return {"Errors": errors, "Links": list(links)}

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        self._dns.shutdown()

    async def _one(self, url: str, follow: bool) -> dict[str, Any]:
        key = (url, follow)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > self._clock():
            return dict(cached[1])
        try:
            code = await asyncio.wait_for(self._status(url, follow), self.timeout * (MAX_REDIRECTS + 1))
            result = {"URL": url, "StatusCode": code, "Status": _phrase(code)}
        except _Refused as exc:
            result = {"URL": url, "StatusCode": exc.code, "Status": exc.status}
        except (TimeoutError, httpx.TimeoutException):
            result = {"URL": url, "StatusCode": 0, "Status": "timeout"}
        except httpx.HTTPError as exc:
            result = {"URL": url, "StatusCode": 0, "Status": _summary(exc)}
        self._cache[key] = (self._clock() + CACHE_TTL, result)
        self._cache.move_to_end(key)
        while len(self._cache) > MAX_ENTRIES:
            self._cache.popitem(last=False)
        return dict(result)

    async def _status(self, url: str, follow: bool) -> int:
        for _hop in range(MAX_REDIRECTS + 1):
            if not _valid(url):
                raise _Refused(f"invalid URL: {url}")
            target = httpx.URL(url)
            response = await self._head(target)
            location = response.headers.get("location")
            if not (follow and response.is_redirect and location):
                return response.status_code
            url = str(target.join(location))
        raise _Refused("too many redirects")

    async def _head(self, url: httpx.URL) -> httpx.Response:
        host, port = url.host, url.port or (443 if url.scheme == "https" else 80)
        address = await self._address(host, port)
        bucket = await self._bucket(_domain(host))
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.timeout, follow_redirects=False, trust_env=False,
                limits=httpx.Limits(max_connections=self._concurrency, max_keepalive_connections=self._concurrency),
            )  # fmt: skip
            self._slots = asyncio.Semaphore(self._concurrency)
        assert self._slots is not None
        headers = {"Host": url.netloc.decode("ascii"), "User-Agent": "Mailsandbox link check"}
        extensions = {"sni_hostname": host} if url.scheme == "https" else {}
        request = self._client.build_request("HEAD", url.copy_with(host=address), headers=headers,
                                             extensions=extensions)  # fmt: skip
        async with bucket.slots, self._slots:
            return await self._client.send(request)

    async def _address(self, host: str, port: int) -> str:
        try:
            found = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                names = await self._dns.run(self._resolve, host, port)
            except (OSError, UnicodeError):
                raise _Refused("no such host") from None
            found = [ipaddress.ip_address(a.split("%", 1)[0]) for a in names]
        if not found:
            raise _Refused("no such host")
        if not self.allow_internal and any(self._blocked(a) for a in found):
            raise _Refused("Blocked private/reserved address", 451)
        return str(found[0])

    async def _bucket(self, domain: str) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.get(domain)
        if bucket is None:
            bucket = self._buckets[domain] = _Bucket(now)
            while len(self._buckets) > MAX_ENTRIES:
                self._buckets.popitem(last=False)
        self._buckets.move_to_end(domain)
        bucket.tokens = min(BURST, bucket.tokens + (now - bucket.at) * REFILL)
        bucket.at = now
        bucket.tokens -= 1
        if bucket.tokens < 0:  # wait for this request's token (callers' deadlines bound the wait)
            await asyncio.sleep(-bucket.tokens / REFILL)
        return bucket


def _phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return ""


def _summary(exc: httpx.HTTPError) -> str:
    """A short reason, as Mailpit gives: the last part of the error's text ("connection refused")."""
    text = str(exc) or type(exc).__name__
    if "refused" in text.lower():
        return "connection refused"
    return text.rsplit(": ", 1)[-1][:200]
