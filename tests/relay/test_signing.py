"""Signing at the simulated hops: a relay chain shows how DKIM and ARC survive forwarding."""

from __future__ import annotations

import email.parser
import smtplib
from typing import Any

from mailsandbox.auth.keys import generate_key
from mailsandbox.store import normalize_user
from tests.relay.conftest import World, WorldFactory

APP = generate_key("sender.test", "app", bits=1024)
RAW = (
    b"From: Alice <alice@sender.test>\r\nTo: bob@chain.test\r\nSubject: Minutes\r\n"
    b"Date: Tue, 01 Dec 2026 10:00:00 +0000\r\nMessage-ID: <m1@sender.test>\r\n\r\nThe minutes are attached.\r\n"
)
LIST = {"relay_to": "gw2.chain.test", "rewrite_body": "--\nYou are on the minutes@chain.test list.",
        "arc_seal": {"domain": "chain.test", "selector": "list"}}  # fmt: skip
FORWARDER = {"relay_to": "mx.chain.test", "arc_seal": {"domain": "gw2.test", "selector": "fwd"}}


def send_signed(world: World, raw: bytes = RAW) -> str:
    APP.publish(world.sandbox.zone)
    smtp = world.sandbox.address("smtp")
    with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as client:
        client.ehlo("client.sender.test")
        client.sendmail("alice@sender.test", ["bob@chain.test"], APP.sign(raw))
        code, _ = client.noop()
    assert code == 250
    return str(world.sandbox.store.list().messages[0].id)


def delivered_copy(world: World, user: str = "bob@chain.test") -> str:
    (entry,) = world.sandbox.store.entries(normalize_user(user), "INBOX")
    return str(entry.message_id)


def auth(world: World, message_id: str, mailbox: str | None = None) -> dict[str, Any]:
    params = {"mailbox": mailbox} if mailbox else {}
    result: dict[str, Any] = world.ok("GET", f"/api/sandbox/message/{message_id}/auth", params=params)
    return result


def test_a_rewriting_hop_breaks_dkim_and_arc_carries_it(world: World) -> None:
    world.set_host("gw1.chain.test", LIST)
    world.set_host("gw2.chain.test", FORWARDER)
    original = send_signed(world)
    world.settle()
    copy = delivered_copy(world)
    raw = world.sandbox.store.raw(copy)
    assert raw.rstrip().endswith(b"You are on the minutes@chain.test list.")
    assert raw.count(b"ARC-Seal:") == 2
    assert auth(world, original)["DKIM"][0]["Result"] == "pass"  # as the app sent it
    final = auth(world, original, mailbox="Bob@chain.test")  # the copy as the hops left it
    assert final == auth(world, copy)
    assert [d["Result"] for d in final["DKIM"]] == ["fail"]
    assert "body" in final["DKIM"][0]["Reason"]
    assert final["ARC"]["Result"] == "pass", final["ARC"]["Reason"]
    # The first seal recorded what the list saw before it added its footer: the app's signature passed.
    head = email.parser.BytesHeaderParser().parsebytes(raw)
    (first,) = [str(v) for v in head.get_all("ARC-Authentication-Results", []) if str(v).startswith("i=1;")]
    assert "dkim=pass" in first and "gw1.chain.test" in first


def test_without_arc_the_chain_only_shows_the_broken_signature(world: World) -> None:
    world.set_host("gw1.chain.test", {"relay_to": "gw2.chain.test", "rewrite_body": "-- footer"})
    send_signed(world)
    world.settle()
    final = auth(world, delivered_copy(world))
    assert final["DKIM"][0]["Result"] == "fail" and final["ARC"]["Result"] == "none"


def test_a_signing_hop_publishes_its_key_and_its_signature_verifies(world: World) -> None:
    world.set_host("gw1.chain.test", {"relay_to": "gw2.chain.test", "rewrite_body": "-- footer",
                                      "dkim_sign": {"domain": "chain.test", "selector": "out"}})  # fmt: skip
    shown = world.ok("GET", "/api/sandbox/hosts/gw1.chain.test")
    assert shown["dkim_sign"]["key"].startswith("-----BEGIN RSA PRIVATE KEY-----")  # made for it
    records = world.ok("GET", "/api/sandbox/dns/records")
    assert any(r.get("name", r.get("Name")) == "out._domainkey.chain.test" for r in records)
    send_signed(world)
    world.settle()
    signatures = auth(world, delivered_copy(world))["DKIM"]
    assert [(d["Domain"], d["Result"]) for d in signatures] == [("chain.test", "pass"), ("sender.test", "fail")]


def test_configured_signers_get_their_key_back_after_a_reset(world_factory: WorldFactory) -> None:
    key = generate_key("chain.test", "cfg", bits=1024)
    hosts = {"gw1.chain.test": {"relay_to": "gw2.chain.test", "dkim_sign": {
        "domain": "chain.test", "selector": "cfg", "key": key.private_key.decode()}}}  # fmt: skip
    world = world_factory(hosts={**hosts, "gw2.chain.test": {"relay_to": "mx.chain.test"}})
    assert world.sandbox.zone.resolve("cfg._domainkey.chain.test", "TXT").answers
    world.ok("POST", "/api/sandbox/reset")  # the zone loses its run-time records; the relay puts its keys back
    assert world.sandbox.zone.resolve("cfg._domainkey.chain.test", "TXT").answers
    send_signed(world)
    world.settle()
    signatures = auth(world, delivered_copy(world))["DKIM"]
    assert [(d["Selector"], d["Result"]) for d in signatures] == [("cfg", "pass"), ("app", "pass")]


def test_a_mailbox_that_got_no_copy_is_404(world: World) -> None:
    original = send_signed(world)
    world.settle()
    response = world.api("GET", f"/api/sandbox/message/{original}/auth", params={"mailbox": "nobody@chain.test"})
    assert response.status_code == 404 and "nobody@chain.test" in response.json()["Error"]


def test_bad_signing_settings_are_refused(world: World) -> None:
    for bad in (
        {"dkim_sign": {"domain": "chain.test"}},
        {"dkim_sign": {"domain": "chain.test", "selector": "s", "key": "not a key"}},
        {"arc_seal": "chain.test"},
        {"dkim_sign": {"domain": "chain.test", "selector": "s", "colour": "red"}},
        {"rewrite_body": 7},
    ):
        response = world.api("PUT", "/api/sandbox/hosts/gw1.chain.test", json=bad)
        assert response.status_code == 400, (bad, response.text)
