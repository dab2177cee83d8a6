"""Bad input gets 400/404 with Mailpit's error (its plain text on /api/v1, `{"Error": ...}` on our extras),
never a 500: the cases once measured, then every documented route called with junk path parameters,
query parameters and bodies."""

from __future__ import annotations

import json
import re
import smtplib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mailsandbox.app import Sandbox, SandboxThread
from mailsandbox.web.openapi import OPENAPI_PATH
from tests.conftest import free_config

MULTIPART = (
    b"Subject: parts\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=BB\r\n\r\n"
    b"--BB\r\nContent-Type: text/plain\r\n\r\none\r\n--BB\r\nContent-Type: text/plain\r\n\r\ntwo\r\n--BB--\r\n"
)


@pytest.fixture(scope="module")
def shared() -> Iterator[Sandbox]:
    """One sandbox for the module: these tests only read, or write what no other test here looks at."""
    with tempfile.TemporaryDirectory() as tmp:
        thread = SandboxThread(free_config(Path(tmp)))
        yield thread.start()
        thread.stop()


@pytest.fixture
def client(shared: Sandbox) -> Iterator[httpx.Client]:
    http = shared.address("http")
    with httpx.Client(base_url=f"http://{http.host}:{http.port}", timeout=10) as c:
        yield c


@pytest.fixture
def message_id(shared: Sandbox, client: httpx.Client) -> str:
    """The multipart message, sent again if a junk DELETE emptied the store."""
    found = client.get("/api/v1/search", params={"query": "subject:parts"}).json()["messages"]
    if not found:
        smtp = shared.address("smtp")
        with smtplib.SMTP(smtp.host, smtp.port) as s:
            s.sendmail("a@example.test", ["b@example.test"], MULTIPART)
        found = client.get("/api/v1/search", params={"query": "subject:parts"}).json()["messages"]
    mid: str = found[0]["ID"]
    return mid


def _api_error(response: httpx.Response, status: int | None = None) -> str:
    where = (response.request.method, str(response.request.url)[:120], response.status_code, response.text[:200])
    assert response.status_code < 500, where
    if status is not None:
        assert response.status_code == status, where
    ctype = response.headers["content-type"]
    path = response.request.url.path
    if path.startswith("/api/v1/") and ctype == "text/plain":
        assert response.text, where  # Mailpit's own routes: the message as plain text
        return response.text
    assert ctype.startswith("application/json"), where
    text: str = response.json()["Error"]
    assert text
    return text


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/message/{id}/part/²", 404),  # a digit to str.isdigit, not to int()
        ("/api/v1/message/{id}/part/" + "1" * 5000, 404),  # over int()'s 4,300 digits
        ("/api/v1/message/{id}/part/1.²", 404),
        ("/api/v1/messages?start=1e20", 400),
        ("/api/v1/messages?limit=-1", 400),
        ("/api/v1/messages?start=99999999999999999999", 400),  # over SQLite's INTEGER
        ("/api/v1/messages?start=%D9%A3", 400),  # an Arabic-Indic 3: int() takes it, we do not
        ("/api/v1/search?query=x&start=99999999999999999999", 400),
        ("/api/v1/search?query=x&limit=1001", 400),
    ],
)
def test_the_measured_cases_get_a_4xx(client: httpx.Client, message_id: str, path: str, status: int) -> None:
    _api_error(client.get(path.format(id=message_id)), status)


@pytest.mark.parametrize(
    ("query", "status"),
    [("larger:1e20", 400), ("larger:" + "9" * 400, 200), ("smaller:" + "9" * 400 + "g", 200), ("smaller:", 400),
     ("larger:junk", 400), ("before:0001-01-01", 400), ("after:9999-12-31", 200), ("before:0000-00-00", 400),
     ("after:999999y", 200), ("before:" + "9" * 5000, 400), ("after:today", 200), ("before:yesterday", 200)],
)  # fmt: skip
def test_junk_sizes_and_dates_in_a_search_are_read_or_refused_never_a_500(
    client: httpx.Client, message_id: str, query: str, status: int
) -> None:
    response = client.get("/api/v1/search", params={"query": query})
    assert response.status_code == status, response.text
    if status == 400:
        assert query.partition(":")[0] + ":" in _api_error(response, 400)
    deleted = client.delete("/api/v1/search", params={"query": f"subject:nomatch {query}"})
    assert deleted.status_code == status
    assert client.get(f"/api/v1/message/{message_id}/raw").status_code == 200


def test_a_size_beyond_any_message_matches_none(client: httpx.Client, message_id: str) -> None:
    assert client.get("/api/v1/search", params={"query": "larger:" + "9" * 400}).json()["messages_count"] == 0
    assert client.get("/api/v1/search", params={"query": "smaller:" + "9" * 400}).json()["messages_count"] == 1


@pytest.mark.parametrize(
    "ttl", ["1e400", "-1e400", "NaN", "-1", "2147483648", "1e300", "true", "1.5", '"abc"', "[]", "{}", '"9' + "9" * 5000 + '"']
)
def test_a_bad_dns_ttl_is_400_at_the_http_boundary(client: httpx.Client, ttl: str) -> None:
    body = '{"Name": "ttl.example.test", "Type": "A", "Value": "192.0.2.1", "TTL": ' + ttl + "}"
    assert "TTL" in _api_error(client.post("/api/sandbox/dns/records", content=body), 400)
    names = [r["Name"] for r in client.get("/api/sandbox/dns/records").json()]
    assert not any(str(n).startswith("ttl.example.test") for n in names)


@pytest.mark.parametrize("ttl", ["0", "300", "2147483647", "300.0", '"600"'])
def test_a_good_dns_ttl_is_taken(client: httpx.Client, ttl: str) -> None:
    body = '{"Name": "ok.example.test", "Type": "A", "Value": "192.0.2.1", "TTL": ' + ttl + "}"
    response = client.post("/api/sandbox/dns/records", content=body)
    assert response.status_code == 201, response.text
    assert response.json()[0]["TTL"] == int(json.loads(ttl))


# -- every route, with junk ------------------------------------------------------------------------------

JUNK_PATH = ["²", "1" * 5000, "%00", "..%2F..%2Fetc", "' OR 1=1 --", "\u202e\ufeff", "latest", "%ff%fe", "-1", "1e20"]
JUNK_QUERY = {
    "start": ["1e20", "-1", "99999999999999999999", "²", "NaN", " 5", "0x10"],
    "limit": ["-1", "1e400", "1001", "", "²"],
    "query": ['"' * 301, "(" * 500, "-" * 300, "\x00", "larger:1e400", "a:" * 200, "é" * 3000],
    "mailbox": ["\x00", "<>", "%", "'"],
    "recipient": ["\x00", "x" * 3000],
    "dl": ["1"],
    "remote": ["1"],
}
JUNK_BODY = [
    b"{", b"[", b"[" * 100_000, b"{" * 50_000, b"null", b"1e400", b'"\\ud800"', b"\xff\xfe\x00", b"[]", b"0",
    b'{"IDs": 5}', b'{"IDs": [1, 2]}', b'{"IDs": ["x"], "Read": "yes"}', b'{"advance": 1e400}',
    b'{"advance": "NaN"}', b'{"advance": [1]}', b'{"advance": 10e1000000}', b'{"next_retry": {}}',
    b'{"Records": 5}', b'{"Records": [5]}', b'{"Records": []}', b'{"Name": 5, "Type": "A", "Value": "1"}',
    b'{"Name": "a.test", "Type": "NOPE", "Value": "x"}', b'{"Name": "a.test", "Type": "A", "Value": "999.1.1.1"}',
    b'{"Name": "a.test", "Type": "MX", "Value": "x"}', b'{"Name": "' + b"a." * 300 + b'test", "Type": "A", "Value": "1.2.3.4"}',
    b'{"To": 5}', b'{"To": [5]}', b'{"To": ["not an address"]}', b'{"behaviour": 5}',
    b'{"behaviour": "tempfail", "reply": 5}', b'{"behaviour": "nonsense"}', b'{"delay": 1e400}',
    b'{"' + b"k" * 10_000 + b'": 1}', b'{"advance": 1, "advance": "x"}',
]  # fmt: skip


@pytest.fixture(scope="module")
def routes() -> list[tuple[str, str]]:
    from mailsandbox.web.openapi import document

    return [(path, method.upper()) for path, ops in document()["paths"].items() for method in ops]


def _fill(path: str, value: str) -> str:
    return re.sub(r"\{[^}]+\}", value, path)


def _requests(routes: list[tuple[str, str]], message_id: str) -> Iterator[tuple[str, str, dict[str, str], bytes]]:
    for path, method in routes:
        if path in ("/api/events", OPENAPI_PATH):
            continue
        for value in JUNK_PATH:
            yield method, _fill(path, value), {}, b""
        real = _fill(path, message_id).replace("{PartID}", "1")
        for name, values in JUNK_QUERY.items():
            for value in values:
                yield method, real, {name: value}, b""
        if method in ("POST", "PUT", "DELETE"):
            for body in JUNK_BODY:
                yield method, real, {}, body


def test_every_route_answers_junk_with_a_4xx_api_error_never_a_500(
    client: httpx.Client, message_id: str, routes: list[tuple[str, str]]
) -> None:
    assert len(routes) > 25
    seen = 0
    for method, path, params, body in _requests(routes, message_id):
        try:
            response = client.request(method, path, params=params, content=body or None)
        except httpx.HTTPError as exc:
            raise AssertionError(f"{method} {path[:80]} {params} {body[:60]!r}: {exc}") from exc
        seen += 1
        # The preview's routes (web/preview.py) answer 404 as text: pages, and its own module's choice.
        preview = path.startswith("/view/") or path.endswith("/preview")
        if response.status_code >= 400 and path.startswith("/api/") and not preview:
            _api_error(response)
        else:
            assert response.status_code < 500, (method, path[:80], params, body[:60], response.text[:200])
    assert seen > 1000
    assert client.get("/livez").status_code == 200


@pytest.mark.parametrize("body", [b"{", b"[" * 100_000, b'{"IDs": "x"}', b"\xff"])
@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_malformed_bodies_on_the_message_routes_are_400(client: httpx.Client, method: str, body: bytes) -> None:
    _api_error(client.request(method, "/api/v1/messages", content=body), 400)
