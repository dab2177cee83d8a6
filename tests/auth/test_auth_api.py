"""Checks on arrival through a running sandbox: smtplib sends, the API answers, search filters."""

from __future__ import annotations

import smtplib
import time
from collections.abc import Callable, Iterator
from typing import Any

import dkim
import httpx
import pytest

from mailsandbox.app import Sandbox
from mailsandbox.auth.keys import SigningKey, generate_key
from mailsandbox.auth.results import METHODS, RESULTS
from mailsandbox.store import query as search_language

MESSAGE = (
    b"From: Shop <orders@shop.test>\r\nTo: ann@example.test\r\nSubject: Order 7\r\n"
    b"Date: Tue, 01 Dec 2026 10:00:00 +0000\r\nMessage-ID: <o7@shop.test>\r\n\r\nThank you.\r\n"
)


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return generate_key("shop.test", "s1", bits=1024)


@pytest.fixture
def shop(running_sandbox: Sandbox, key: SigningKey) -> Sandbox:
    zone = running_sandbox.zone
    key.publish(zone)
    zone.add_record("shop.test", "TXT", "v=spf1 ip4:127.0.0.1 -all")  # smtplib connects from loopback
    zone.add_record("_dmarc.shop.test", "TXT", "v=DMARC1; p=reject")
    return running_sandbox


@pytest.fixture
def client(shop: Sandbox) -> Iterator[httpx.Client]:
    http = shop.address("http")
    with httpx.Client(base_url=f"http://{http.host}:{http.port}", timeout=10) as c:
        yield c


def send(sandbox: Sandbox, raw: bytes, mail_from: str = "bounces@shop.test") -> str:
    smtp = sandbox.address("smtp")
    with smtplib.SMTP(smtp.host, smtp.port) as s:
        s.ehlo("out.shop.test")
        s.sendmail(mail_from, ["ann@example.test"], raw)
        reply = s.noop()
    assert reply[0] == 250
    return str(sandbox.store.list().messages[0].id)


def wait_for(condition: Callable[[], object], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def stored(sandbox: Sandbox, message_id: str) -> dict[str, Any] | None:
    """What the store holds for a message, read directly (not through the API that computes on demand)."""
    report: dict[str, Any] | None = sandbox.auth.store.auth_report(message_id)
    return report


def signed(key: SigningKey, raw: bytes = MESSAGE) -> bytes:
    return bytes(dkim.sign(raw, key.selector.encode(), key.domain.encode(), key.private_key)) + raw


def test_every_message_is_checked_on_arrival_and_the_api_returns_the_shape(
    shop: Sandbox, client: httpx.Client, key: SigningKey
) -> None:
    message_id = send(shop, signed(key))
    wait_for(lambda: stored(shop, message_id) is not None)  # stored without anyone asking
    body = client.get(f"/api/sandbox/message/{message_id}/auth").json()
    assert set(body) == {"SPF", "DKIM", "DMARC", "ARC", "AuthenticationResults"}
    assert body["SPF"] == {"Result": "pass", "Domain": "shop.test", "ClientIP": "127.0.0.1",
                           "Reason": "shop.test permits 127.0.0.1"}  # fmt: skip
    assert [set(d) for d in body["DKIM"]] == [{"Result", "Domain", "Selector", "Reason"}]
    assert body["DKIM"][0]["Result"] == "pass" and body["DKIM"][0]["Selector"] == "s1"
    assert body["DMARC"] == {"Result": "pass", "Policy": "reject", "Domain": "shop.test",
                             "Reason": "DKIM d=shop.test passed and is aligned with From shop.test"}  # fmt: skip
    assert body["ARC"]["Result"] == "none" and set(body["ARC"]) == {"Result", "Reason"}
    assert body["AuthenticationResults"].startswith(f"{shop.config.hostname}; spf=pass")


def test_search_filters_on_results(shop: Sandbox, client: httpx.Client, key: SigningKey) -> None:
    good = send(shop, signed(key))
    bad = send(shop, signed(key).replace(b"Thank you.", b"Pay here."))
    wait_for(lambda: all(stored(shop, i) for i in (good, bad)))

    def found(query: str) -> list[str]:
        return [m["ID"] for m in client.get("/api/v1/search", params={"query": query}).json()["messages"]]

    assert found("auth:dkim=fail") == [bad]
    assert found("auth:dkim=pass") == [good]
    assert found("auth:DKIM=FAIL") == [bad]
    assert sorted(found("auth:dmarc=pass")) == sorted([good, bad])  # SPF is aligned: DMARC still passes
    assert sorted(found("auth:spf=pass")) == sorted([good, bad])
    assert found("-auth:dkim=fail") == [good]
    assert found("auth:dkim=fail order") == [bad]  # with a text term
    for query in ("auth:dkim=maybe", "auth:dkim=", "auth:foo=pass", "auth:dkim"):  # refused, not quietly empty
        answer = client.get("/api/v1/search", params={"query": query})
        assert answer.status_code == 400, query
        assert "unknown filter" in answer.text and query in answer.text


def test_search_knows_every_result_word_the_checks_give() -> None:
    assert search_language.AUTH_RESULTS == RESULTS and search_language.AUTH_METHODS == METHODS


def test_the_checks_follow_the_zone_edited_through_the_api(shop: Sandbox, client: httpx.Client) -> None:
    response = client.post(
        "/api/sandbox/dns/records", json={"Name": "other.test", "Type": "TXT", "Value": "v=spf1 -all"}
    )
    assert response.status_code < 300, response.text
    message_id = send(shop, MESSAGE.replace(b"shop.test", b"other.test"), mail_from="x@other.test")
    body = client.get(f"/api/sandbox/message/{message_id}/auth").json()
    assert body["SPF"]["Result"] == "fail"
    assert body["DKIM"] == [] and "dkim=none" in body["AuthenticationResults"]


def test_deleting_a_message_deletes_its_results(shop: Sandbox, client: httpx.Client) -> None:
    message_id = send(shop, MESSAGE)
    wait_for(lambda: stored(shop, message_id) is not None)
    assert client.request("DELETE", "/api/v1/messages", json={"IDs": [message_id]}).status_code == 200
    assert stored(shop, message_id) is None
    assert client.get(f"/api/sandbox/message/{message_id}/auth").status_code == 404
    (count,) = shop.store._db.execute("SELECT count(*) FROM message_auth").fetchone()  # type: ignore[attr-defined]
    assert count == 0


def test_with_checks_off_results_are_computed_when_asked(sandbox_factory: Callable[..., Sandbox]) -> None:
    sandbox = sandbox_factory(auth_checks=False)
    message_id = send(sandbox, MESSAGE)
    http = sandbox.address("http")
    assert stored(sandbox, message_id) is None
    body = httpx.get(f"http://{http.host}:{http.port}/api/sandbox/message/{message_id}/auth").json()
    assert body["SPF"]["Result"] == "none" and body["DMARC"]["Result"] == "none"
    assert stored(sandbox, message_id) is not None


def test_unknown_message_is_404(client: httpx.Client) -> None:
    response = client.get("/api/sandbox/message/nope/auth")
    assert response.status_code == 404 and response.json() == {"Error": "message not found"}


def test_a_burst_is_checked_in_full_off_the_loop(shop: Sandbox, key: SigningKey) -> None:
    # Every message of a burst gets its results (the sweep reads what is unchecked from the store, so
    # nothing is dropped), and the loop is not held: a check is milliseconds of pure Python on the
    # checker's thread. The bound is loose, since this shared machine's own stalls reach ~100 ms.
    from tests.conftest import LoopWatch

    body = signed(key)
    smtp = shop.address("smtp")
    with LoopWatch(shop) as watch, smtplib.SMTP(smtp.host, smtp.port) as client:
        for _ in range(60):
            client.sendmail("bounces@shop.test", ["ann@example.test"], body)
        ids = [m.id for m in shop.store.list(limit=100).messages]
        wait_for(lambda: all(stored(shop, i) for i in ids), timeout=30)
    assert len(ids) == 60
    assert shop.store.search_ids("auth:dkim=pass") and len(shop.store.search_ids("auth:dkim=pass")) == 60
    assert watch.max_stall < 0.5, f"the loop stalled {watch.max_stall * 1000:.0f} ms"
