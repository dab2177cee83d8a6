"""SPF, DKIM, DMARC and ARC against the fake DNS's zone: the checks as functions, no sockets."""

from __future__ import annotations

import dkim
import pytest

from mailsandbox.auth import authenticate
from mailsandbox.auth._dmarc import organizational_domain, parse_record
from mailsandbox.auth.checks import check_spf, client_ip
from mailsandbox.auth.keys import SigningKey, generate_key
from mailsandbox.auth.results import AuthReport
from mailsandbox.models import Envelope
from mailsandbox.zone import Zone

APP_MESSAGE = (
    b"From: Shop <orders@shop.test>\r\n"
    b"To: ann@example.test\r\n"
    b"Subject: Your order\r\n"
    b"Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n"
    b"Message-ID: <order-1@shop.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Thank you for your order.\r\n"
)


@pytest.fixture(scope="module")
def shop_key() -> SigningKey:
    return generate_key("shop.test", "s2026")


@pytest.fixture
def zone(shop_key: SigningKey) -> Zone:
    zone = Zone()
    shop_key.publish(zone)
    zone.add_record("shop.test", "TXT", "v=spf1 include:_spf.mailer.test -all")
    zone.add_record("_spf.mailer.test", "TXT", "v=spf1 include:_net.mailer.test ~all")
    zone.add_record("_net.mailer.test", "TXT", "v=spf1 ip4:198.51.100.0/24 -all")
    zone.add_record("_dmarc.shop.test", "TXT", "v=DMARC1; p=reject; adkim=r; aspf=r")
    return zone


def envelope(ip: str = "198.51.100.7", mail_from: str = "bounces@shop.test", helo: str = "out.mailer.test") -> Envelope:
    return Envelope(mail_from=mail_from, rcpt_tos=("ann@example.test",), peer=f"{ip}:40000", helo=helo)


def app_signed(key: SigningKey, raw: bytes = APP_MESSAGE) -> bytes:
    """As an application signs: dkimpy's own sign(), its default headers and canonicalization."""
    return bytes(dkim.sign(raw, key.selector.encode(), key.domain.encode(), key.private_key)) + raw


def test_a_message_signed_as_an_app_signs_it_verifies(zone: Zone, shop_key: SigningKey) -> None:
    report = authenticate(zone, app_signed(shop_key), envelope(), "mailsandbox.local")
    (sig,) = report.dkim
    assert (sig.result, sig.domain, sig.selector) == ("pass", "shop.test", "s2026")
    assert report.spf.result == "pass"
    assert report.dmarc.result == "pass" and report.dmarc.policy == "reject"
    assert report.arc.result == "none"
    assert report.header_value().startswith("mailsandbox.local; spf=pass smtp.mailfrom=shop.test; dkim=pass")


def test_a_changed_body_fails(zone: Zone, shop_key: SigningKey) -> None:
    changed = app_signed(shop_key).replace(b"Thank you", b"Thanks a lot")
    (sig,) = authenticate(zone, changed, envelope(), "x").dkim
    assert sig.result == "fail"
    assert "body" in sig.reason


def test_a_changed_signed_header_fails(zone: Zone, shop_key: SigningKey) -> None:
    changed = app_signed(shop_key).replace(b"Subject: Your order", b"Subject: Your refund")
    (sig,) = authenticate(zone, changed, envelope(), "x").dkim
    assert sig.result == "fail"
    assert "header" in sig.reason


def test_an_unknown_selector_is_a_permerror(zone: Zone, shop_key: SigningKey) -> None:
    # RFC 6376 §6.1.2: no key record for the selector is PERMFAIL ("no key for signature")
    other = SigningKey("shop.test", "retired", shop_key.private_key)
    (sig,) = authenticate(zone, app_signed(other), envelope(), "x").dkim
    assert (sig.result, sig.selector) == ("permerror", "retired")
    assert "no key" in sig.reason and "retired._domainkey.shop.test" in sig.reason


def test_a_key_record_that_is_not_a_key_is_a_permerror(zone: Zone, shop_key: SigningKey) -> None:
    zone.add_record("broken._domainkey.shop.test", "TXT", "v=DKIM1; k=rsa; p=bm90IGEga2V5")
    (sig,) = authenticate(
        zone, app_signed(SigningKey("shop.test", "broken", shop_key.private_key)), envelope(), "x"
    ).dkim
    assert sig.result == "permerror"


def test_a_key_lookup_the_zone_cannot_answer_is_a_temperror(zone: Zone, shop_key: SigningKey) -> None:
    # RFC 6376 §6.1.2 step 2: a lookup that fails (here: a name the DNS cannot even form) is TEMPFAIL
    bad = SigningKey("shop.test", "x" * 70, shop_key.private_key)
    (sig,) = authenticate(zone, app_signed(bad), envelope(), "x").dkim
    assert sig.result == "temperror"


def test_unsigned_mail_has_no_dkim_result(zone: Zone) -> None:
    report = authenticate(zone, APP_MESSAGE, envelope(), "mailsandbox.local")
    assert report.dkim == () and report.dkim_result == "none"
    assert "dkim=none" in report.header_value()


def test_spf_include_chains_resolve_through_the_zone(zone: Zone) -> None:
    result = check_spf(zone, "198.51.100.7", "bounces@shop.test", "out.mailer.test")
    assert (result.result, result.domain, result.client_ip) == ("pass", "shop.test", "198.51.100.7")


def test_spf_fails_another_client_address_under_all(zone: Zone) -> None:
    # The inner include's -all does not match (an include only passes on pass), so shop.test's -all decides.
    result = check_spf(zone, "203.0.113.9", "bounces@shop.test", "out.mailer.test")
    assert result.result == "fail"
    assert "203.0.113.9" in result.reason


@pytest.mark.parametrize(
    ("record", "result"),
    [
        ("v=spf1 ~all", "softfail"),
        ("v=spf1 ?all", "neutral"),
        (None, "none"),
        ("v=spf1 ip4:300.1.1.1 -all", "permerror"),  # a broken mechanism
        ("v=spf1 include:under.test -all", "permerror"),  # an include loop (the lookup limit)
    ],
)
def test_spf_results(zone: Zone, record: str | None, result: str) -> None:
    if record is not None:
        zone.add_record("under.test", "TXT", record)
    assert check_spf(zone, "192.0.2.1", "a@under.test", "h").result == result


def test_spf_a_and_mx_mechanisms_use_the_zone(zone: Zone) -> None:
    zone.add_record("hosts.test", "TXT", "v=spf1 a mx -all")
    zone.add_record("hosts.test", "A", "192.0.2.10")
    zone.add_record("hosts.test", "MX", "10 mx.hosts.test.")
    zone.add_record("mx.hosts.test", "A", "192.0.2.20")
    assert check_spf(zone, "192.0.2.10", "a@hosts.test", "h").result == "pass"
    assert check_spf(zone, "192.0.2.20", "a@hosts.test", "h").result == "pass"
    assert check_spf(zone, "192.0.2.30", "a@hosts.test", "h").result == "fail"


def test_spf_for_a_null_sender_checks_the_helo_name(zone: Zone) -> None:
    zone.add_record("out.mailer.test", "TXT", "v=spf1 ip4:198.51.100.7 -all")
    result = check_spf(zone, "198.51.100.7", "", "out.mailer.test")
    assert (result.result, result.domain, result.identity) == ("pass", "out.mailer.test", "helo")


def test_dmarc_reject_with_an_unaligned_from_reports_the_failure(zone: Zone) -> None:
    # Signed and SPF-authorized for the mailer's own domain, but From says shop.test: neither is aligned.
    mailer = generate_key("mailer.test", "m1", bits=1024)
    mailer.publish(zone)
    zone.add_record("mailer.test", "TXT", "v=spf1 ip4:198.51.100.0/24 -all")
    report = authenticate(zone, app_signed(mailer), envelope(mail_from="bounce@mailer.test"), "x")
    assert report.spf.result == "pass" and report.dkim_result == "pass"
    dmarc = report.dmarc
    assert (dmarc.result, dmarc.policy, dmarc.domain) == ("fail", "reject", "shop.test")
    assert "not aligned" in dmarc.reason and "mailer.test" in dmarc.reason
    assert "dmarc=fail (p=reject)" in report.header_value()


def test_dmarc_relaxed_alignment_accepts_a_subdomain_and_strict_does_not(zone: Zone, shop_key: SigningKey) -> None:
    zone.add_record("news.shop.test", "TXT", "v=spf1 ip4:198.51.100.0/24 -all")
    relaxed = authenticate(zone, APP_MESSAGE, envelope(mail_from="b@news.shop.test"), "x")
    assert relaxed.dmarc.result == "pass"
    zone.remove_record("_dmarc.shop.test", "TXT")
    zone.add_record("_dmarc.shop.test", "TXT", "v=DMARC1; p=quarantine; aspf=s")
    strict = authenticate(zone, APP_MESSAGE, envelope(mail_from="b@news.shop.test"), "x")
    assert (strict.dmarc.result, strict.dmarc.policy) == ("fail", "quarantine")


def test_dmarc_subdomain_policy_and_no_record(zone: Zone) -> None:
    zone.add_record("_dmarc.org.test", "TXT", "v=DMARC1; p=reject; sp=none")
    sub = b"From: a@mail.org.test\r\nSubject: x\r\n\r\nbody\r\n"
    report = authenticate(zone, sub, envelope(mail_from="a@other.test"), "x")
    assert (report.dmarc.result, report.dmarc.policy, report.dmarc.domain) == ("fail", "none", "mail.org.test")
    none = authenticate(zone, b"From: a@plain.test\r\n\r\nbody\r\n", envelope(), "x")
    assert none.dmarc.result == "none"


def test_dmarc_record_parsing() -> None:
    assert parse_record("v=DMARC1; p=reject; sp=quarantine; adkim=s; pct=50") is not None
    record = parse_record("v=DMARC1; p=reject; sp=quarantine; adkim=s; pct=50")
    assert record is not None and (record.policy, record.subdomain_policy, record.adkim, record.aspf, record.pct) == (
        "reject",
        "quarantine",
        "s",
        "r",
        50,
    )
    assert parse_record("p=reject; v=DMARC1") is None  # RFC 7489 §6.4: v= comes first
    assert parse_record("v=DMARC1; p=bogus") is None
    bad_policy = parse_record("v=DMARC1; p=bogus; rua=mailto:d@x.test")
    assert bad_policy is not None and bad_policy.policy == "none"  # §6.6.3
    assert organizational_domain("a.b.shop.test") == "shop.test"
    assert organizational_domain("mail.example.co.uk") == "example.co.uk"


def test_a_two_hop_chain_with_a_rewriting_hop_shows_dkim_fail_and_arc_pass(zone: Zone, shop_key: SigningKey) -> None:
    # Hop 1, a mailing list: checks the message on arrival, adds its footer (the body changes), then seals.
    list_key = generate_key("list.test", "arc1", bits=1024)
    list_key.publish(zone)
    signed = app_signed(shop_key)
    seen = authenticate(zone, signed, envelope(), "lists.list.test")
    assert seen.dkim_result == "pass"
    rewritten = signed + b"--\r\nYou are subscribed to orders@list.test\r\n"
    after_hop1 = list_key.seal(rewritten, seen)
    # Hop 2, a plain forwarder: checks and seals again, changing nothing.
    fwd_key = generate_key("fwd.test", "arc2", bits=1024)
    fwd_key.publish(zone)
    after_hop2 = fwd_key.seal(after_hop1, authenticate(zone, after_hop1, envelope(), "mx.fwd.test"))
    final = authenticate(
        zone, after_hop2, envelope(ip="192.0.2.99", mail_from="bounces@list.test"), "mailsandbox.local"
    )
    assert final.dkim_result == "fail"
    assert final.arc.result == "pass", final.arc.reason
    assert "2 ARC set" in final.arc.reason
    header = final.header_value()
    assert "dkim=fail" in header and "arc=pass" in header


def test_an_arc_chain_broken_after_the_last_seal_fails(zone: Zone, shop_key: SigningKey) -> None:
    list_key = generate_key("list.test", "arc1", bits=1024)
    list_key.publish(zone)
    signed = app_signed(shop_key)
    sealed = list_key.seal(signed, authenticate(zone, signed, envelope(), "lists.list.test"))
    tampered = sealed.replace(b"Thank you", b"Pay now")
    assert authenticate(zone, tampered, envelope(), "x").arc.result == "fail"


def test_report_round_trips_through_json(zone: Zone, shop_key: SigningKey) -> None:
    report = authenticate(zone, app_signed(shop_key), envelope(), "mailsandbox.local")
    assert AuthReport.from_json(report.to_json()) == report


def test_header_values_are_quoted_and_single_line(zone: Zone) -> None:
    hostile = (
        b'From: a@x.test\r\nDKIM-Signature: v=1; a=rsa-sha256; d=x.test; s="a\\"b; h=from; bh=AA==; b=AA==\r\n\r\nb\r\n'
    )
    header = authenticate(zone, hostile, envelope(), 'id"\r\nX-Injected: 1').header_value()
    assert "\r" not in header and "\n" not in header


@pytest.mark.parametrize(
    ("peer", "ip"), [("127.0.0.1:1025", "127.0.0.1"), ("[::1]:1025", "::1"), ("", ""), ("garbage", "")]
)
def test_client_ip(peer: str, ip: str) -> None:
    assert client_ip(peer) == ip


def test_no_check_reaches_for_the_network(zone: Zone, shop_key: SigningKey, monkeypatch: pytest.MonkeyPatch) -> None:
    # dkimpy and pyspf bring resolvers of their own; every question must go to the zone instead.
    import socket

    import dns.resolver

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a network lookup: {args!r}")

    for target, name in ((dns.resolver, "resolve"), (dns.resolver, "query"), (dns.resolver.Resolver, "resolve"),
                         (socket, "getaddrinfo"), (socket, "gethostbyname")):  # fmt: skip
        monkeypatch.setattr(target, name, refuse)
    list_key = generate_key("list.test", "arc1", bits=1024)
    list_key.publish(zone)
    signed = app_signed(shop_key)
    sealed = list_key.seal(signed, authenticate(zone, signed, envelope(), "lists.list.test"))
    zone.remove_record("shop.test", "TXT")  # every mechanism that looks something up, each once
    zone.add_record("shop.test", "TXT", "v=spf1 a mx ptr exists:%{i}.x.shop.test include:_spf.mailer.test -all")
    report = authenticate(zone, sealed, envelope(ip="203.0.113.5"), "mailsandbox.local")
    assert report.dkim_result == "pass" and report.arc.result == "pass"
    # Catch-all mode gives every name an address, so exists: matches: proof the lookup went to the zone.
    assert report.spf.result == "pass", report.spf.reason
    zone.strict = True  # now a, mx, ptr and exists find nothing: past two void lookups (RFC 7208 §4.6.4)
    strict = authenticate(zone, sealed, envelope(ip="203.0.113.5"), "x").spf
    assert strict.result == "permerror" and "Void lookup" in strict.reason
