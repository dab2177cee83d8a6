"""The pure parts of the relay, without sockets: host behaviours, routing plans, trace lines, DSNs."""

from __future__ import annotations

import email
import email.policy
import re
from email.message import Message
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailsandbox.clock import ManualClock
from mailsandbox.events import EventBus
from mailsandbox.relay import Relay, Releaser
from mailsandbox.relay.bounce import RecipientStatus, build_dsn, header_block
from mailsandbox.relay.faults import BehaviourError, Faults, HostBehaviour, status_of
from mailsandbox.relay.route import Router, received_line
from mailsandbox.store.sqlite import SqliteStore
from mailsandbox.web.relay_api import RelayLike, ReleaserLike
from mailsandbox.zone import Zone
from tests.relay.conftest import parts

ZONE = """\
$ORIGIN example.test.
$TTL 300
@        MX 10 mx1
@        MX 20 mx2
mx1      A 192.0.2.1
mx2      A 192.0.2.2
backup   MX 5 mx1
backup   MX 10 mailsandbox.local.
backup   MX 20 mx2
ghost    MX 10 nowhere.example.test.
v6       MX 10 mx6
mx6      AAAA 2001:db8::25
txtonly  TXT "v=spf1 -all"
"""

# RFC 5321 §4.4 Time-stamp-line, simplified to what we emit: From-domain, By-domain, With, ID, For, date.
STAMP = re.compile(
    r"^Received: from (?P<helo>[A-Za-z0-9.-]+) "
    r"\((?P<rdns>[A-Za-z0-9.-]+) \[(?P<ip>IPv6:[0-9a-f:]+|[0-9.]+)\]\)\r\n"
    r"\tby (?P<by>[A-Za-z0-9.-]+) with (?:ESMTP|UTF8SMTP) id (?P<id>[A-Z0-9]+)\r\n"
    r"\tfor <(?P<for>[^>]+)>; (?P<date>\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \+0000)\r\n$"
)


def router(**hosts: Any) -> Router:
    zone = Zone()
    zone.load_text(ZONE)
    return Router(zone, Faults.from_config(hosts), "mailsandbox.local")


def attempt(r: Router, recipient: str, now: float = 1_800_000_000.0) -> Any:
    return r.attempt(message_id="M1", sender="a@sender.test", recipient=recipient, size=100, now=now)


def test_received_line_follows_the_grammar() -> None:
    line = received_line(helo="mx1.example.test", address="192.0.2.1", by="mx2.example.test", queue="ABC123",
                         recipient="bob@example.test", at=1_800_000_000.0).decode()
    match = STAMP.match(line)
    assert match is not None, line
    assert match["date"] == "Fri, 15 Jan 2027 08:00:00 +0000"
    v6 = received_line(helo="h", address="2001:db8::1", by="b", queue="Q", recipient="r@x", at=0).decode()
    assert "[IPv6:2001:db8::1]" in v6  # RFC 5321 §4.1.3


def test_mx_order_and_failover() -> None:
    delivery = attempt(router(**{"mx1.example.test": "down"}), "bob@example.test")
    assert delivery.status == "delivered"
    assert [(a.host, a.preference, a.code) for a in delivery.attempts] == [
        ("mx1.example.test", 10, 0), ("mx2.example.test", 20, 250),
    ]
    assert STAMP.match(delivery.prefix.decode())


def test_all_hosts_temporary_keeps_the_smtp_error_over_a_refused_connection() -> None:
    r = router(**{"mx1.example.test": "tempfail", "mx2.example.test": "down"})
    delivery = attempt(r, "bob@example.test")
    assert delivery.status == "deferred"
    assert delivery.reply.startswith("451 4.3.0") and delivery.remote == "mx1.example.test"
    assert delivery.status_code == "4.3.0"


def test_permanent_reply_stops_the_walk() -> None:
    delivery = attempt(router(**{"mx1.example.test": "permfail"}), "bob@example.test")
    assert delivery.status == "failed" and len(delivery.attempts) == 1


def test_own_host_in_the_mx_list_tries_only_better_ones() -> None:
    # RFC 5321 §5.1: we are preference 10, so only mx1 (5) is tried; mx2 (20) never.
    delivery = attempt(router(**{"mx1.example.test": "down"}), "bob@backup.example.test")
    assert [a.host for a in delivery.attempts] == ["mx1.example.test"]
    assert delivery.status == "deferred"


def test_mx_host_without_address_and_ipv6_hosts() -> None:
    ghost = attempt(router(), "bob@ghost.example.test")
    assert ghost.status == "deferred" and "no address record" in ghost.reply
    v6 = attempt(router(), "bob@v6.example.test")
    assert v6.status == "delivered" and b"[IPv6:" not in v6.prefix  # the client side is us, on IPv4
    assert v6.attempts[0].dialogue[0] == "C: connect mx6.example.test [2001:db8::25]:25"


def test_domain_without_mx_or_address_fails_permanently() -> None:
    delivery = attempt(router(), "bob@txtonly.example.test")
    assert delivery.status == "failed" and delivery.reply.startswith("550 5.1.2")  # RFC 5321 §5.1
    assert attempt(router(), "bob").reply.startswith("550 5.1.3")


def test_greylist_memory_is_per_triplet_and_delay() -> None:
    r = router(**{"mx1.example.test": {"behaviour": "greylist", "greylist_delay": 300}})
    assert attempt(r, "bob@example.test", 1000.0).attempts[0].code == 451
    assert attempt(r, "bob@example.test", 1100.0).attempts[0].code == 451  # too soon
    assert attempt(r, "bob@example.test", 1400.0).attempts[0].code == 250
    assert attempt(r, "carol@example.test", 1400.0).attempts[0].code == 451
    r.faults.reset()
    assert attempt(r, "bob@example.test", 1500.0).attempts[0].code == 451  # forgotten


def test_gateway_passes_on_the_inner_hosts_answer() -> None:
    r = router(**{"mx1.example.test": {"relay_to": "mx2.example.test"}, "mx2.example.test": "permfail"})
    delivery = attempt(r, "bob@example.test")
    assert delivery.status == "failed"
    assert delivery.reply == "550 5.1.1 mx2.example.test said: User unknown in virtual mailbox table"
    assert [(a.hop, a.host) for a in delivery.attempts] == [(0, "mx1.example.test"), (1, "mx2.example.test")]
    r = router(**{"mx1.example.test": {"relay_to": "mx2.example.test"}, "mx2.example.test": "down"})
    down = attempt(r, "bob@example.test")
    # The inner host refused: mx1 answers 451, and the walk goes on to mx2 directly (also down).
    assert down.status == "deferred" and down.attempts[0].reply.startswith("451 4.4.1 mx2.example.test said:")


@pytest.mark.parametrize(
    ("data", "mode"),
    [
        ("down", "down"),
        ({"behaviour": "slow"}, "accept"),
        ({"mode": "tempfail", "reply": "421 4.7.0 Try later"}, "tempfail"),
        ({"Behaviour": "permfail", "recipients": "bob@*"}, "permfail"),
        (None, "accept"),
    ],
)
def test_behaviour_json(data: Any, mode: str) -> None:
    behaviour = HostBehaviour.from_json(data)
    assert behaviour.mode == mode
    assert HostBehaviour.from_json(behaviour.to_json()) == behaviour  # round trip


def test_slow_defaults_to_thirty_seconds() -> None:
    assert HostBehaviour.from_json("slow").delay == 30


@pytest.mark.parametrize(
    "data",
    [
        {"behaviour": "explode"},
        {"behaviour": "tempfail", "reply": "550 5.0.0 wrong class"},
        {"behaviour": "permfail", "reply": "nope"},
        {"reply": "451 two\r\nlines"},
        {"delay": -1},
        {"delay": "soon"},
        {"relay_to": ""},
        {"rules": [{"behaviour": "permfail"}]},
        {"rules": [{"recipient": "x", "behaviour": "down"}]},
        {"colour": "red"},
        [1, 2],
    ],
)
def test_behaviour_json_rejects_nonsense(data: Any) -> None:
    with pytest.raises(BehaviourError):
        HostBehaviour.from_json(data)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=12,
)
KEYS = st.sampled_from(["behaviour", "reply", "recipients", "delay", "relay_to", "rules", "greylist_delay"])


@settings(max_examples=150, deadline=None)
@given(st.one_of(JSON, st.dictionaries(KEYS, JSON, max_size=5)))
def test_any_json_is_a_behaviour_or_a_behaviour_error(data: Any) -> None:
    try:
        behaviour = HostBehaviour.from_json(data)
    except BehaviourError:
        return
    behaviour.verdict("bob@example.test")
    assert HostBehaviour.from_json(behaviour.to_json()) == behaviour


def test_status_of_replies() -> None:
    assert status_of("550 5.1.1 User unknown", 550) == "5.1.1"
    assert status_of("550 User unknown", 550) == "5.0.0"
    assert status_of("connect to x: refused", 0) == "4.4.1"


def _dsn_bytes(original: bytes, recipient: str = "bob@example.test") -> bytes:
    return build_dsn(
        hostname="mailsandbox.local", original=original, sender="a@sender.test", arrival=1_800_000_000.0,
        now=1_800_000_100.0,
        recipients=[RecipientStatus(recipient, "failed", "5.1.1", "550 5.1.1 User unknown", "mx.example.test",
                                    1_800_000_050.0)],
    )


def _dsn(original: bytes, recipient: str = "bob@example.test") -> Message:
    return email.message_from_bytes(_dsn_bytes(original, recipient), policy=email.policy.default)


def test_dsn_structure() -> None:
    dsn = _dsn(b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <m1@x>\r\n\r\nbody")
    assert dsn["Subject"] == "Mail delivery failed: Grüße"
    assert dsn["References"] == "<m1@x>"
    _, status, headers = parts(dsn)
    fields = parts(status)
    assert fields[0]["Reporting-MTA"] == "dns; mailsandbox.local"
    assert fields[1]["Last-Attempt-Date"] == "Fri, 15 Jan 2027 08:00:50 +0000"
    original = headers.get_payload()
    assert isinstance(original, str) and original.startswith("Subject: =?utf-8?q?")
    assert "body" not in original  # headers only, never the body


def test_dsn_for_internationalized_mail_uses_the_global_types() -> None:
    dsn = _dsn("Subject: héllo\r\n\r\nbody".encode(), recipient="bøb@example.test")
    assert dsn.get_param("report-type") == "global-delivery-status"  # RFC 6533 §6
    types = [part.get_content_type() for part in parts(dsn)]
    assert types == ["text/plain", "message/global-delivery-status", "message/global-headers"]
    raw = _dsn_bytes("Subject: héllo\r\n\r\nbody".encode(), recipient="bøb@example.test")
    assert "Final-Recipient: utf-8; bøb@example.test\r\n".encode() in raw  # RFC 6533 §3


def test_header_block() -> None:
    assert header_block(b"A: 1\nB: 2\n\nbody") == b"A: 1\r\nB: 2\r\n"
    assert header_block(b"A: 1\r\n\r\nbody\n\nmore") == b"A: 1\r\n"
    assert header_block(b"\r\nbody only") == b""
    assert header_block(b"A: no body at all") == b"A: no body at all\r\n"


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=600))
def test_any_original_gives_a_readable_report(original: bytes) -> None:
    dsn = _dsn(original)
    assert dsn.get_content_type() == "multipart/report"
    assert len(parts(dsn)) == 3


def test_relay_and_releaser_fit_the_web_layer_protocols() -> None:
    # mypy checks these assignments: the web layer states what it needs without importing the relay.
    store = SqliteStore(":memory:")
    try:
        relay = Relay(store, Zone(), ManualClock(), EventBus(), hosts='{"mx.test": "down"}', hostname="h",
                      retry_interval=0, warn_after=1, give_up_after=2, release="")
        as_web: RelayLike = relay
        releaser: ReleaserLike = Releaser(store, {"host": "smtp.example.com"})
        assert as_web.host("mx.test")["behaviour"] == "down" and releaser is not None
        assert relay.retry_interval == 1.0  # a zero interval would spin the loop
    finally:
        store.close()
