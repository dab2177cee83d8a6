"""Delivery over real SMTP and the HTTP API: MX failover, retries on the clock, greylisting, hops."""

from __future__ import annotations

import re
from email.utils import parsedate_to_datetime

from mailsandbox.events import DeliveryAttempted
from tests.relay.conftest import World, received


def test_primary_mx_down_secondary_accepts(world: World) -> None:
    world.set_host("mx1.example.test", "down")
    message_id = world.send(["bob@example.test"])
    world.settle()

    trace = world.trace(message_id)
    assert [(t["Host"], t["Preference"], t["Code"], t["Status"]) for t in trace] == [
        ("mx1.example.test", 10, 0, "no-connection"),
        ("mx2.example.test", 20, 250, "accepted"),
    ]
    assert "Connection refused" in trace[0]["Reply"]
    assert trace[1]["Dialogue"][0] == "C: connect mx2.example.test [192.0.2.2]:25"
    assert "C: RCPT TO:<bob@example.test>" in trace[1]["Dialogue"]

    [copy] = world.mailbox("bob@example.test")
    newest = received(copy)[0]
    assert "by mx2.example.test with ESMTP" in newest
    assert "from mailsandbox.local (mailsandbox.local [127.0.0.1])" in newest
    assert world.queue() == []


def test_tempfail_then_success_after_advancing_the_clock(world: World) -> None:
    world.set_host("mx.single.test", {"behaviour": "tempfail"})
    message_id = world.send(["bob@single.test"])
    world.settle()

    [item] = world.queue()
    assert item["ID"] == message_id and item["Recipient"] == "bob@single.test"
    assert item["Attempts"] == 1 and item["LastError"].startswith("451 4.3.0")
    assert world.mailbox("bob@single.test") == []

    clock = world.advance(600)  # not yet due: a 30-minute retry interval
    assert clock["Queued"] == 1 and len(world.trace(message_id)) == 1

    world.ok("DELETE", "/api/sandbox/hosts/mx.single.test")  # the host recovers
    before = world.ok("GET", "/api/sandbox/clock")
    after = world.next_retry()
    assert after["Now"] - before["Now"] >= 1200 - 1  # jumped to the retry, no real waiting
    assert after["Queued"] == 0

    codes = [t["Code"] for t in world.trace(message_id)]
    assert codes == [451, 250]
    [copy] = world.mailbox("bob@single.test")
    assert copy["Subject"] == "Hello"


def test_greylisting_defers_the_first_try_only(world: World) -> None:
    world.set_host("mx.single.test", {"behaviour": "greylist", "greylist_delay": 300})
    first = world.send(["bob@single.test"])
    world.settle()
    assert world.trace(first)[0]["Reply"].startswith("451 4.7.1")

    world.next_retry()
    assert [t["Code"] for t in world.trace(first)] == [451, 250]

    # The triplet (sender, recipient, host) is known now: the next message goes straight through.
    second = world.send(["bob@single.test"], subject="again")
    world.settle()
    assert [t["Code"] for t in world.trace(second)] == [250]
    # Another sender is a new triplet.
    third = world.send(["bob@single.test"], sender="carol@sender.test")
    world.settle()
    assert [t["Code"] for t in world.trace(third)] == [451]
    assert len(world.mailbox("bob@single.test")) == 2


def test_three_hop_gateway_chain_stamps_three_received_lines_in_order(world: World) -> None:
    message_id = world.send(["bob@chain.test"])
    world.settle()

    trace = world.trace(message_id)
    assert [(t["Hop"], t["Host"], t["Code"]) for t in trace] == [
        (0, "gw1.chain.test", 250),
        (1, "gw2.chain.test", 250),
        (2, "mx.chain.test", 250),
    ]
    [copy] = world.mailbox("bob@chain.test")
    lines = received(copy)
    parsed = [re.match(r"from (\S+) \(.*?\) by (\S+) ", r) for r in lines]
    pairs = [m.groups() if m else None for m in parsed]
    hops = [r for r, p in zip(lines, pairs, strict=True) if p and p[1].endswith("chain.test")]
    assert pairs[:3] == [
        ("gw2.chain.test", "mx.chain.test"),
        ("gw1.chain.test", "gw2.chain.test"),
        ("mailsandbox.local", "gw1.chain.test"),
    ]
    for line in hops:
        assert re.search(r" id [0-9A-F]{12} for <bob@chain\.test>; ", line)
        parsedate_to_datetime(line.rsplit(";", 1)[1].strip())  # a valid RFC 5322 date
    # The capture's own trace line stays below the hops.
    assert "by mailsandbox.local" in lines[len(hops)]


def test_slow_host_shows_in_trace_time(world: World) -> None:
    world.set_host("gw1.chain.test", {"behaviour": "slow", "delay": 45, "relay_to": "gw2.chain.test"})
    message_id = world.send(["bob@chain.test"])
    world.settle()
    trace = world.trace(message_id)
    assert round(trace[1]["Timestamp"] - trace[0]["Timestamp"]) == 45
    [copy] = world.mailbox("bob@chain.test")
    dates = [parsedate_to_datetime(r.rsplit(";", 1)[1].strip()) for r in received(copy)[:3]]
    assert round((dates[1] - dates[2]).total_seconds()) == 45  # gw2 saw it 45 s after gw1 began


def test_forwarding_loop_is_cut_by_the_hop_limit(world: World) -> None:
    world.set_host("gw2.chain.test", {"relay_to": "gw1.chain.test"})  # gw1 -> gw2 -> gw1 -> ...
    message_id = world.send(["bob@chain.test"])
    world.settle()
    trace = world.trace(message_id)
    assert trace[0]["Code"] == 554 and "5.4.6" in trace[0]["Reply"]
    assert 90 <= len(trace) <= 101  # RFC 5321 §6.3: a large threshold of Received: lines
    [dsn] = world.mailbox("alice@sender.test")
    assert dsn.get_content_type() == "multipart/report"


def test_catch_all_delivers_locally_without_queueing(world: World) -> None:
    message_id = world.send(["someone@anywhere.example", "other@elsewhere.example"])
    assert world.queue() == []
    assert len(world.mailbox("someone@anywhere.example")) == 1
    # No rows were written on the capture path; the trace shows one synthesized local hop each.
    assert world.sandbox.store.trace(message_id) == []
    trace = world.trace(message_id)
    assert [(t["Recipient"], t["Host"], t["Code"]) for t in trace] == [
        ("someone@anywhere.example", "mailsandbox.local", 250),
        ("other@elsewhere.example", "mailsandbox.local", 250),
    ]


def test_mixed_local_and_relayed_recipients(world: World) -> None:
    message_id = world.send(["local@anywhere.example", "bob@single.test"])
    world.settle()
    assert len(world.mailbox("local@anywhere.example")) == 1
    assert len(world.mailbox("bob@single.test")) == 1
    hosts = {t["Recipient"]: t["Host"] for t in world.trace(message_id)}
    assert hosts == {"local@anywhere.example": "mailsandbox.local", "bob@single.test": "mx.single.test"}
    # One message in the listing, however many copies went out.
    listing = world.ok("GET", "/api/v1/messages")
    assert listing["total"] == 1


def test_implicit_mx_uses_the_domain_address(world: World) -> None:
    message_id = world.send(["bob@bare.test"])  # an A record, no MX (RFC 5321 §5.1)
    world.settle()
    [hop] = world.trace(message_id)
    assert (hop["Host"], hop["Preference"], hop["Code"]) == ("bare.test", None, 250)


def test_dns_edits_through_the_api_change_routing(world: World) -> None:
    # late.example is in no zone: catch-all, local. An MX added at run time sends it through a host.
    assert world.send(["bob@late.example"]) and world.queue() == []
    added = world.ok("POST", "/api/sandbox/dns/records",
                     json={"Records": [{"Name": "late.example", "Type": "MX", "Value": "10 mx.late.example."},
                                       {"Name": "mx.late.example", "Type": "A", "Value": "192.0.2.50"}]})
    assert len(added) == 2
    names = {(r["Name"], r["Type"]) for r in world.ok("GET", "/api/sandbox/dns/records")}
    assert ("late.example", "MX") in names
    message_id = world.send(["bob@late.example"])
    world.settle()
    assert [t["Host"] for t in world.trace(message_id)] == ["mx.late.example"]

    world.ok("DELETE", "/api/sandbox/dns/records", params={"name": "late.example", "type": "MX"})
    again = world.send(["bob@late.example"])
    assert [t["Host"] for t in world.trace(again)] == ["mailsandbox.local"]


def test_queue_retry_now_and_drop(world: World) -> None:
    world.set_host("mx.single.test", "tempfail")
    first = world.send(["bob@single.test"])
    second = world.send(["carol@single.test"])
    world.settle()
    assert {i["ID"] for i in world.queue()} == {first, second}

    world.set_host("mx.single.test", "accept")
    result = world.ok("POST", f"/api/sandbox/queue/{first}/retry")
    assert result == {"Tried": 1, "Queued": []}
    assert len(world.mailbox("bob@single.test")) == 1

    heard: list[object] = []
    unsubscribe = world.sandbox.bus.subscribe(heard.append)  # no loop here: called on the publisher's thread
    assert world.ok("DELETE", f"/api/sandbox/queue/{second}") == {"Dropped": 1}
    unsubscribe()
    assert [(e.message_id, e.recipient, e.status) for e in heard if isinstance(e, DeliveryAttempted)] == [
        (second, "carol@single.test", "dropped")
    ]  # open UI tabs hear of it
    assert world.queue() == []
    assert world.trace(second)[-1]["Status"] == "dropped"
    assert world.mailbox("alice@sender.test") == []  # dropping sends no bounce
    assert world.api("DELETE", f"/api/sandbox/queue/{second}").status_code == 404
    assert world.api("POST", f"/api/sandbox/queue/{second}/retry").status_code == 404


def test_the_send_api_takes_the_relay_path(world: World) -> None:
    # POST /api/v1/send mail goes where SMTP mail goes: local recipients at once, the rest through the MX.
    answer = world.ok("POST", "/api/v1/send", json={
        "From": {"Email": "alice@sender.test"}, "To": [{"Email": "local@anywhere.example"}],
        "Bcc": ["bob@single.test"], "Subject": "via the API", "Text": "Hi",
    })  # fmt: skip
    world.settle()
    assert len(world.mailbox("local@anywhere.example")) == 1
    [relayed] = world.mailbox("bob@single.test")
    assert relayed["Subject"] == "via the API" and relayed["Bcc"] is None
    hosts = {t["Recipient"]: t["Host"] for t in world.trace(answer["ID"])}
    assert hosts == {"local@anywhere.example": "mailsandbox.local", "bob@single.test": "mx.single.test"}
