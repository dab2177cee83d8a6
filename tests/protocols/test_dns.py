"""The fake DNS without sockets: Zone lookups, answer() on wire bytes, TCP framing, fuzzing."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.update
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailsandbox.protocols.dns import DnsStreamConnection, answer, answer_message
from mailsandbox.zone import MxResult, Zone, ZoneError

EXAMPLE = Path(__file__).parent.parent / "data" / "example.zone"
DKIM_TAIL = "anrRI+L7cQIDAQAB"


@pytest.fixture
def zone() -> Zone:
    return Zone.from_files([EXAMPLE])


def ask(zone: Zone, name: str, rdtype: str = "A", **kw: object) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]
    reply = answer(query.to_wire(), zone)
    assert reply is not None
    response = dns.message.from_wire(reply)
    assert response.id == query.id and response.flags & dns.flags.QR
    return response


def texts(response: dns.message.Message, rdtype: str) -> list[str]:
    kind = dns.rdatatype.from_text(rdtype)
    return [r.to_text() for rrset in response.answer if rrset.rdtype == kind for r in rrset]


# -- Zone: the relay's view ----------------------------------------------------------------


def test_mx_sorted_by_preference(zone: Zone) -> None:
    assert zone.mx("example.test") == MxResult(
        "example.test", [(10, "mx1.example.test"), (20, "mx2.example.test")]
    )
    assert zone.mx("EXAMPLE.test.").hosts == [(10, "mx1.example.test"), (20, "mx2.example.test")]


def test_mx_equal_preferences_keep_zone_order(zone: Zone) -> None:
    zone.load_text(
        "b 60 IN MX 5 zz.tie.test.\nb 60 IN MX 5 aa.tie.test.\nb 60 IN MX 1 first.tie.test.\n", "tie.test"
    )
    assert zone.mx("b.tie.test").hosts == [(1, "first.tie.test"), (5, "zz.tie.test"), (5, "aa.tie.test")]


def test_null_mx_rfc7505(zone: Zone) -> None:
    assert zone.mx("nullmx.test") == MxResult("nullmx.test", null_mx=True)


def test_implicit_mx_when_only_an_address(zone: Zone) -> None:
    assert zone.mx("mx1.example.test") == MxResult(
        "mx1.example.test", [(0, "mx1.example.test")], implicit=True
    )
    assert zone.mx("_dmarc.example.test") == MxResult("_dmarc.example.test")  # neither MX nor address
    assert zone.mx("[192.0.2.7]") == MxResult("[192.0.2.7]", [(0, "[192.0.2.7]")], implicit=True)


def test_catch_all_and_strict(zone: Zone) -> None:
    assert zone.mx("anywhere.org").hosts == [(10, "mailsandbox.local")]
    assert zone.addresses("mailsandbox.local") == ["127.0.0.1"]
    assert zone.addresses("host.anywhere.org") == ["127.0.0.1"]
    assert zone.mx("missing.example.test").nxdomain  # inside a zone: the zone decides
    zone.strict = True
    assert zone.mx("anywhere.org") == MxResult("anywhere.org", nxdomain=True)
    assert zone.addresses("host.anywhere.org") == []
    assert zone.addresses("mailsandbox.local") == ["127.0.0.1"]  # the sandbox always resolves
    assert zone.mx("mailsandbox.local") == MxResult(
        "mailsandbox.local", [(0, "mailsandbox.local")], implicit=True
    )
    assert zone.mx("example.test").hosts[0] == (10, "mx1.example.test")


def test_self_host_and_addresses_configurable() -> None:
    zone = Zone(self_host="sandbox.internal", self_addresses=("127.0.0.2", "::1"))
    assert zone.mx("x.test").hosts == [(10, "sandbox.internal")]
    assert zone.addresses("sandbox.internal") == ["127.0.0.2", "::1"]
    assert zone.resolve("2.0.0.127.in-addr.arpa", "PTR").answers == ["sandbox.internal."]
    assert zone.is_local("Sandbox.Internal.") and zone.is_local("[IPv6:::1]") and zone.is_local("127.0.0.2")
    assert not zone.is_local("mx1.example.test") and not zone.is_local("127.0.0.1")


def test_cname_chain_and_loop(zone: Zone) -> None:
    found = zone.resolve("smtp.example.test", "A")
    assert (found.rcode, found.answers, found.cnames) == ("NOERROR", ["192.0.2.25"], ["mx1.example.test"])
    zone.add_record("a.loop.test", "CNAME", "b.loop.test")
    zone.add_record("b.loop.test", "CNAME", "a.loop.test")
    looped = zone.resolve("a.loop.test", "A")
    assert looped.answers == [] and looped.cnames == ["b.loop.test", "a.loop.test"]
    assert zone.mx("a.loop.test") == MxResult("a.loop.test")


def test_wildcard_and_empty_non_terminal(zone: Zone) -> None:
    zone.load_text("$ORIGIN wild.test.\n* 60 IN A 192.0.2.99\nhost 60 IN A 192.0.2.1\n")
    assert zone.resolve("anything.wild.test", "A").answers == ["192.0.2.99"]
    assert zone.resolve("host.wild.test", "A").answers == ["192.0.2.1"]
    assert zone.resolve("x.host.wild.test", "A").rcode == "NXDOMAIN"  # host exists: no wildcard below it
    ent = zone.resolve("_domainkey.example.test", "TXT")
    assert (ent.rcode, ent.answers) == ("NOERROR", [])


def test_run_time_edits_snapshot_restore_reset(zone: Zone) -> None:
    before = zone.snapshot()
    zone.add_record("example.test", "MX", "5 mx0.example.test", ttl=60)
    assert zone.mx("example.test").hosts[0] == (5, "mx0.example.test")
    serial = zone.resolve("example.test", "SOA").answers[0].split()[2]
    assert serial == "2024010102"  # each change bumps the SOA serial
    assert zone.remove_record("example.test", "MX", "20 mx2.example.test.") == 1
    assert zone.remove_record("example.test", "MX", "99 nothing.test") == 0
    assert zone.mx("example.test").hosts == [(5, "mx0.example.test"), (10, "mx1.example.test")]
    zone.restore(before)
    assert zone.mx("example.test").hosts == [(10, "mx1.example.test"), (20, "mx2.example.test")]
    zone.strict = True
    zone.load_text("@ 60 IN MX 1 in.runtime.test.\n", "runtime.test")
    zone.reset()
    assert not zone.strict and "runtime.test" not in zone.zones()


def test_version_moves_on_every_change(zone: Zone) -> None:
    seen = [zone.version]
    for change in (
        lambda: zone.add_record("v.test", "A", "192.0.2.1"),
        lambda: zone.remove_record("v.test", "A"),
        lambda: setattr(zone, "strict", True),
        lambda: zone.load_text("@ 60 IN A 192.0.2.2\n", "w.test"),
        zone.reset,
    ):
        change()
        assert zone.version > seen[-1]
        seen.append(zone.version)
    assert zone.remove_record("v.test", "A") == 0 and zone.version == seen[-1]


def test_records_outside_zones_overlay_catch_all_and_strict(zone: Zone) -> None:
    zone.add_record("fresh.test", "TXT", 'v=spf1 include:"odd" -all')
    assert zone.resolve("fresh.test", "TXT").answers == ['"v=spf1 include:\\"odd\\" -all"']
    assert zone.mx("fresh.test").hosts == [(10, "mailsandbox.local")]  # what was not added: as before
    zone.add_record("fresh.test", "MX", "10 in.fresh.test")
    assert zone.mx("fresh.test").hosts == [(10, "in.fresh.test")]
    assert zone.addresses("in.fresh.test") == ["127.0.0.1"]
    zone.strict = True
    assert zone.addresses("in.fresh.test") == [] and zone.resolve("fresh.test", "A").rcode == "NOERROR"
    assert zone.remove_record("fresh.test", "TXT") == 1 and zone.remove_record("fresh.test", "MX") == 1
    assert "fresh.test" not in zone.zones()
    assert zone.mx("fresh.test").nxdomain
    zone.strict = False
    # an overlay inside a zone loaded later defers to that zone
    zone.add_record("mx9.late.test", "TXT", "hello")
    zone.load_text("$ORIGIN late.test.\nmx9 60 IN A 192.0.2.9\n")
    assert zone.addresses("mx9.late.test") == ["192.0.2.9"]
    assert zone.resolve("other.late.test", "A").rcode == "NXDOMAIN"


def test_long_txt_is_split_into_strings(zone: Zone) -> None:
    zone.add_record("long.example.test", "TXT", "x" * 300)
    rdata = zone.resolve("long.example.test", "TXT").answers[0]
    assert rdata == '"' + "x" * 255 + '" "' + "x" * 45 + '"'
    zone.add_record("utf8.example.test", "TXT", "é" * 200)  # 400 bytes, cut between characters' bytes
    utf8 = zone.resolve("utf8.example.test", "TXT").answer[0][0]
    assert isinstance(utf8, dns.rdtypes.ANY.TXT.TXT) and [len(x) for x in utf8.strings] == [255, 145]
    assert b"".join(utf8.strings).decode() == "é" * 200  # the DKIM/SPF reader joins them (RFC 7208 §3.3)
    zone.add_record("quoted.example.test", "TXT", '"one" "two"')  # quoted: zone-file syntax
    assert zone.resolve("quoted.example.test", "TXT").answers == ['"one" "two"']


def test_bad_input_raises_zone_error(zone: Zone) -> None:
    with pytest.raises(ZoneError, match="CNAME"):
        zone.add_record("example.test", "CNAME", "elsewhere.test")
    with pytest.raises(ZoneError, match="MX"):
        zone.add_record("example.test", "MX", "not-a-number host")
    with pytest.raises(ZoneError, match="record type"):
        zone.add_record("example.test", "NOPE", "x")
    with pytest.raises(ZoneError, match="no \\$ORIGIN"):
        zone.load_text("@ IN A 192.0.2.1\n")
    with pytest.raises(ZoneError, match="<text>:3: expecting an integer"):
        zone.load_text("$ORIGIN bad.test.\n@ 60 IN A 192.0.2.1\n@ 60 IN MX ten mx.bad.test.\n")
    assert "bad.test" not in zone.zones()


def test_files_many_zones_origin_from_name_and_ttl(tmp_path: Path) -> None:
    (tmp_path / "plain.test.zone").write_text("@ 60 IN MX 10 mail\nmail 60 IN A 192.0.2.5\n")
    (tmp_path / "multi").write_text(
        "$TTL 123\n$ORIGIN one.test.\n@ IN A 192.0.2.1\nsub IN A 192.0.2.2\n"
        "$ORIGIN deep.one.test.\nx IN A 192.0.2.3\n$ORIGIN two.test.\n@ IN SOA (\n ns.two.test. h.two.test.\n"
        ' 7 1 1 1 1 )\n@ IN TXT "$ORIGIN three.test. is text"\n'
    )
    zone = Zone.from_files([tmp_path / "plain.test.zone", tmp_path / "multi"])
    assert zone.zones() == ["one.test", "plain.test", "two.test"]
    assert zone.mx("plain.test").hosts == [(10, "mail.plain.test")]
    assert zone.resolve("x.deep.one.test", "A").answers == ["192.0.2.3"]
    assert {r["ttl"] for r in zone.records() if r["zone"] == "two.test" and r["type"] == "TXT"} == {123}
    assert zone.resolve("two.test", "SOA").answers == ["ns.two.test. h.two.test. 7 1 1 1 1"]
    json.dumps(zone.records())
    with pytest.raises(ZoneError, match="No such file"):
        Zone.from_files([tmp_path / "absent.zone"])


def test_threads_edit_while_others_resolve(zone: Zone) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                zone.add_record(f"h{i}.t{n}.example.test", "A", f"192.0.2.{i}")
                assert zone.mx("example.test").hosts[0] == (10, "mx1.example.test")
                zone.remove_record(f"h{i}.t{n}.example.test", "A")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# -- answer(): the wire --------------------------------------------------------------------


def test_mx_answer_is_authoritative_with_additional_addresses(zone: Zone) -> None:
    response = ask(zone, "example.test", "MX")
    assert response.rcode() == dns.rcode.NOERROR and response.flags & dns.flags.AA
    assert sorted(texts(response, "MX")) == ["10 mx1.example.test.", "20 mx2.example.test."]
    extra = {(rrset.name.to_text(), r.to_text()) for rrset in response.additional for r in rrset}
    assert ("mx1.example.test.", "192.0.2.25") in extra and ("mx1.example.test.", "2001:db8::25") in extra


def test_a_aaaa_txt_cname_ptr(zone: Zone) -> None:
    assert texts(ask(zone, "example.test", "A"), "A") == ["192.0.2.10"]
    assert texts(ask(zone, "example.test", "AAAA"), "AAAA") == ["2001:db8::10"]
    assert texts(ask(zone, "_dmarc.example.test", "TXT"), "TXT")[0].startswith('"v=DMARC1; p=reject;')
    dkim = ask(zone, "selector1._domainkey.example.test", "TXT").answer[0][0]
    assert isinstance(dkim, dns.rdtypes.ANY.TXT.TXT) and len(dkim.strings) == 2
    assert b"".join(dkim.strings).endswith(DKIM_TAIL.encode())
    www = ask(zone, "www.example.test", "A")
    assert texts(www, "CNAME") == ["example.test."] and texts(www, "A") == ["192.0.2.10"]
    assert texts(ask(zone, "25.2.0.192.in-addr.arpa", "PTR"), "PTR") == ["mx1.example.test."]
    assert texts(ask(zone, "1.0.0.127.in-addr.arpa", "PTR"), "PTR") == ["mailsandbox.local."]


def test_nxdomain_and_nodata_carry_the_soa(zone: Zone) -> None:
    for name, rcode in (
        ("missing.example.test", dns.rcode.NXDOMAIN),
        ("mx2.example.test", dns.rcode.NOERROR),
    ):
        response = ask(zone, name, "TXT")
        assert response.rcode() == rcode and response.answer == [] and response.flags & dns.flags.AA
        assert response.authority[0].rdtype == dns.rdatatype.SOA and response.authority[0].ttl == 300


def test_catch_all_has_no_aa_and_strict_says_nxdomain(zone: Zone) -> None:
    response = ask(zone, "shop.example.com", "MX")
    assert texts(response, "MX") == ["10 mailsandbox.local."] and not response.flags & dns.flags.AA
    assert texts(response, "MX") and response.additional[0][0].to_text() == "127.0.0.1"
    assert ask(zone, "shop.example.com", "TXT").rcode() == dns.rcode.NOERROR
    zone.strict = True
    strict = ask(zone, "shop.example.com", "MX")
    assert strict.rcode() == dns.rcode.NXDOMAIN and strict.authority == []
    assert texts(ask(zone, "nullmx.test", "MX"), "MX") == ["0 ."]


def test_refusals_and_format_errors(zone: Zone) -> None:
    assert ask(zone, "version.bind", "TXT", rdclass="CH").rcode() == dns.rcode.REFUSED
    assert ask(zone, "example.test", "AXFR").rcode() == dns.rcode.REFUSED
    assert ask(zone, "example.test", "A", use_edns=1).rcode() == dns.rcode.BADVERS
    update = dns.update.UpdateMessage("example.test")
    update.add("new", 60, "A", "192.0.2.1")
    reply = answer(update.to_wire(), zone)
    assert reply is not None and dns.message.from_wire(reply).rcode() == dns.rcode.NOTIMP
    notify = dns.message.make_query("example.test", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    assert dns.message.from_wire(answer(notify.to_wire(), zone) or b"").rcode() == dns.rcode.NOTIMP
    two = dns.message.make_query("example.test", "A")
    two.question.append(two.question[0])
    assert dns.message.from_wire(answer(two.to_wire(), zone) or b"").rcode() == dns.rcode.FORMERR


def test_malformed_bytes(zone: Zone) -> None:
    assert answer(b"", zone) is None and answer(b"\x12\x34\x01", zone) is None  # no header: drop
    # a header that promises one question and has none: FORMERR, id, opcode and RD echoed
    assert answer(b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00", zone) == (
        b"\xab\xcd\x81\x01" + bytes(8)
    )
    reply = dns.message.make_response(dns.message.make_query("example.test", "A"))
    assert answer(reply.to_wire(), zone) is None  # never answer an answer
    assert answer(reply.to_wire()[:20], zone) is None


def big_zone() -> Zone:
    zone = Zone()
    for i in range(12):
        zone.add_record("big.test", "TXT", f"{i:02d}" + "t" * 60)
    for i in range(6):
        host = f"mail-exchanger-number-{i}.far-away.test"
        zone.add_record("many.test", "MX", f"{i} {host}")
        zone.add_record(host, "A", f"192.0.2.{i}")
        zone.add_record(host, "AAAA", f"2001:db8::{i}")
    return zone


def test_udp_truncation_and_edns_size() -> None:
    zone = big_zone()
    plain = dns.message.make_query("big.test", "TXT", use_edns=False)
    small = dns.message.from_wire(answer(plain.to_wire(), zone) or b"")
    assert small.flags & dns.flags.TC and small.answer == []  # RFC 1035 §4.2.1: retry over TCP
    full = dns.message.from_wire(answer(plain.to_wire(), zone, tcp=True) or b"")
    assert not full.flags & dns.flags.TC and len(texts(full, "TXT")) == 12
    edns = dns.message.make_query("big.test", "TXT", use_edns=0, payload=4096)
    assert len(texts(dns.message.from_wire(answer(edns.to_wire(), zone) or b""), "TXT")) == 12
    # the answer fits, the extra addresses don't: no TC, just no additional section (RFC 2181 §9)
    many = dns.message.make_query("many.test", "MX", use_edns=False)
    trimmed = dns.message.from_wire(answer(many.to_wire(), zone) or b"")
    assert not trimmed.flags & dns.flags.TC and len(texts(trimmed, "MX")) == 6 and trimmed.additional == []


def test_answer_message_is_what_the_wire_carries(zone: Zone) -> None:
    query = dns.message.make_query("example.test", "MX")
    direct = answer_message(query, zone)
    wired = dns.message.from_wire(answer(query.to_wire(), zone) or b"")
    assert direct.answer == wired.answer and direct.rcode() == wired.rcode() and direct.flags == wired.flags


# -- TCP framing ---------------------------------------------------------------------------


def framed(query: dns.message.Message) -> bytes:
    wire = query.to_wire()
    return len(wire).to_bytes(2, "big") + wire


def stream_replies(conn: DnsStreamConnection, data: bytes) -> bytes:
    """Feed bytes, then take the reply to every complete query, one at a time as the adapter does."""
    conn.receive_data(data)
    out = b""
    while (reply := conn.next_reply()) is not None:
        out += reply
    return out


def test_stream_pipelined_queries_whole_or_byte_by_byte(zone: Zone) -> None:
    q1, q2 = dns.message.make_query("example.test", "MX"), dns.message.make_query("nullmx.test", "MX")
    data = framed(q1) + b"\x00\x00" + framed(q2)  # an empty frame is dropped
    whole = stream_replies(DnsStreamConnection(zone), data)
    conn = DnsStreamConnection(zone)
    assert b"".join(stream_replies(conn, data[i : i + 1]) for i in range(len(data))) == whole
    assert conn.pending == 0
    first_len = int.from_bytes(whole[:2], "big")
    first = dns.message.from_wire(whole[2 : 2 + first_len])
    second = dns.message.from_wire(whole[4 + first_len :])
    assert (first.id, second.id) == (q1.id, q2.id) and texts(second, "MX") == ["0 ."]


# -- fuzzing -------------------------------------------------------------------------------

FUZZ_ZONE = Zone.from_files([EXAMPLE])
FUZZ_STRICT = Zone.from_files([EXAMPLE], strict=True)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_any_bytes_give_none_or_a_parseable_reply(data: bytes) -> None:
    reply = answer(data, FUZZ_ZONE)
    if reply is not None:
        response = dns.message.from_wire(reply)
        assert response.id == int.from_bytes(data[:2], "big") and response.flags & dns.flags.QR


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.from_regex(r"[a-z0-9_*-]{1,12}", fullmatch=True), min_size=0, max_size=4),
    st.sampled_from(["example.test.", "nullmx.test.", "elsewhere.org.", "2.0.192.in-addr.arpa."]),
    st.integers(min_value=1, max_value=300),
    st.booleans(),
)
def test_any_question_gets_a_well_formed_reply(
    labels: list[str], suffix: str, rdtype: int, strict: bool
) -> None:
    zone = FUZZ_STRICT if strict else FUZZ_ZONE
    query = dns.message.make_query(
        dns.name.from_text(".".join([*labels, suffix])), dns.rdatatype.RdataType.make(rdtype)
    )
    response = dns.message.from_wire(answer(query.to_wire(), zone) or b"")
    assert response.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.REFUSED, dns.rcode.FORMERR)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=7))
def test_stream_any_bytes_same_whole_or_chunked(data: bytes, step: int) -> None:
    whole = stream_replies(DnsStreamConnection(FUZZ_ZONE), data)
    conn = DnsStreamConnection(FUZZ_ZONE)
    assert b"".join(stream_replies(conn, data[i : i + step]) for i in range(0, len(data), step)) == whole


@pytest.mark.parametrize("domain", ["example.test", "nullmx.test", "smtp.example.test", "elsewhere.org"])
@pytest.mark.parametrize("strict", [False, True])
def test_relay_view_matches_what_dig_sees(zone: Zone, domain: str, strict: bool) -> None:
    zone.strict = strict
    wire = ask(zone, domain, "MX")
    mx = zone.mx(domain)
    assert mx.nxdomain == (wire.rcode() == dns.rcode.NXDOMAIN)
    pairs = sorted((int(p), h.rstrip(".")) for p, h in (t.split() for t in texts(wire, "MX")))
    if mx.null_mx:
        assert pairs == [(0, "")]
    elif mx.implicit:
        assert pairs == [] and texts(ask(zone, domain, "A"), "A")
    else:
        assert mx.hosts == pairs


# -- amplification (RFC 8482, UDP size cap) --------------------------------------------------------


def test_any_over_udp_is_one_hinfo_and_full_over_tcp() -> None:
    zone = big_zone()
    query = dns.message.make_query("big.test", "ANY", use_edns=0, payload=4096)
    wire = query.to_wire()
    udp = dns.message.from_wire(answer(wire, zone) or b"")
    assert [rrset.to_text() for rrset in udp.answer] == ['big.test. 300 IN HINFO "RFC8482" ""']
    assert udp.rcode() == dns.rcode.NOERROR and not udp.flags & dns.flags.TC
    tcp = dns.message.from_wire(answer(wire, zone, tcp=True) or b"")
    assert len(texts(tcp, "TXT")) == 12  # RFC 8482 §4.1: over TCP the full answer is fine
    nowhere = dns.message.make_query("nowhere.test", "ANY").to_wire()
    missing = dns.message.from_wire(answer(nowhere, Zone(strict=True)) or b"")
    assert missing.answer == [] and missing.rcode() == dns.rcode.NXDOMAIN  # nothing to shrink


def test_udp_replies_never_exceed_1232_bytes_whatever_the_client_offers() -> None:
    zone = Zone()
    for i in range(14):
        zone.add_record("amp.test", "TXT", f"{i:02d}" + "t" * 200)  # ~3 KB of TXT from a 38-byte query
    for payload in (512, 1232, 4096, 65535):
        query = dns.message.make_query("amp.test", "TXT", use_edns=0, payload=payload)
        reply = answer(query.to_wire(), zone) or b""
        assert len(reply) <= min(max(payload, 512), 1232)
        assert dns.message.from_wire(reply).flags & dns.flags.TC  # the client retries over TCP
    plain = answer(dns.message.make_query("amp.test", "TXT", use_edns=False).to_wire(), zone) or b""
    assert len(plain) <= 512


# -- TTLs and hostile zone text --------------------------------------------------------------------


@pytest.mark.parametrize("ttl", [1e400, float("nan"), float("-inf"), -1, 2**31, 2**64, 1.5, True, "300"])
def test_absurd_ttls_are_refused(zone: Zone, ttl: object) -> None:
    with pytest.raises(ZoneError, match="TTL"):
        zone.add_record("ttl.example.test", "A", "192.0.2.1", ttl=ttl)  # type: ignore[arg-type]
    assert zone.resolve("ttl.example.test", "A").answers != ["192.0.2.1"]


def test_edge_ttls_are_accepted(zone: Zone) -> None:
    zone.add_record("ttl.example.test", "A", "192.0.2.1", ttl=0)
    zone.add_record("ttl2.example.test", "A", "192.0.2.2", ttl=2**31 - 1)
    zone.add_record("ttl3.example.test", "A", "192.0.2.3", ttl=60.0)  # type: ignore[arg-type]  # JSON's 60.0
    assert zone.resolve("ttl2.example.test", "A").answer[0].ttl == 2**31 - 1


def test_zone_text_ttl_over_2_31_is_refused_with_its_line() -> None:
    text = "$ORIGIN a.test.\n@ 60 IN A 192.0.2.1\n$ORIGIN b.test.\n\n@ 2147483648 IN A 192.0.2.2\n"
    with pytest.raises(ZoneError, match="TTL 2147483648"):
        Zone().load_text(text)
    with pytest.raises(ZoneError, match="<text>:6: expecting an integer"):  # the file's line, in zone 2
        Zone().load_text("$TTL 60\n$ORIGIN a.test.\n@ IN A 192.0.2.1\n$ORIGIN b.test.\n\n@ IN MX ten x.b.test.\n")


def many_zones(n: int) -> str:
    return "".join(f"$TTL 300\n$ORIGIN z{i}.test.\n@ A 192.0.2.1\n" for i in range(n))


def test_many_zones_in_one_text_load_in_linear_time() -> None:
    import time

    from mailsandbox.zone import _split_zones

    # The pieces handed to dnspython add up to the text's size (they used to carry every earlier line).
    text = many_zones(4000)
    assert sum(len(piece) for _, _, piece in _split_zones(text, None)) < 2 * len(text)
    timings = {}
    for n in (250, 1000):
        started = time.perf_counter()
        zone = Zone()
        zone.load_text(many_zones(n))
        timings[n] = time.perf_counter() - started
        assert zone.resolve(f"z{n - 1}.test", "A").answers == ["192.0.2.1"]
    assert timings[1000] < 10 * timings[250] + 0.05, timings  # linear: ~4x; it was ~40x (quadratic)
    assert Zone().load_text("$TTL 60\n$ORIGIN a.test.\n@ A 192.0.2.1\n$ORIGIN b.test.\n@ A 192.0.2.2\n") == [
        "a.test",
        "b.test",
    ]


def test_answer_cache_is_byte_identical_and_follows_zone_changes() -> None:
    from mailsandbox.protocols.dns import AnswerCache

    zone = Zone.from_files([EXAMPLE])
    cache = AnswerCache(zone, entries=8)
    queries = [
        dns.message.make_query(name, rdtype, id=n, use_edns=edns).to_wire()
        for n, (name, rdtype, edns) in enumerate(
            [("example.test", "MX", False), ("example.test", "MX", 0), ("nowhere.test", "A", False)] * 3
        )
    ]
    queries += [b"\x12\x34" + bytes(10), b"\x99"]  # a bare header (FORMERR) and a runt (dropped)
    for tcp in (False, True):
        for wire in queries:
            assert cache.answer(wire, tcp=tcp) == answer(wire, zone, tcp=tcp)
    assert cache.hits >= 12  # the repeats (only the id differs) came from the cache
    query = dns.message.make_query("cached.example.test", "A", id=7).to_wire()
    before = cache.answer(query)
    zone.add_record("cached.example.test", "A", "192.0.2.77")
    after = dns.message.from_wire(cache.answer(query) or b"")
    assert before != after.to_wire() and texts(after, "A") == ["192.0.2.77"]  # a change empties the cache
