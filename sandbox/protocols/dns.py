"""Sans-IO DNS: query bytes in, reply bytes out, answered from a Zone (dnspython messages)."""

from __future__ import annotations

from collections import OrderedDict

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.rdatatype import RdataType

from mailsandbox.zone import Zone, ZoneError

HEADER_SIZE = 12  # RFC 1035 §4.1.1
UDP_LIMIT = 512  # RFC 1035 §4.2.1: without EDNS, UDP replies stop here
OUR_PAYLOAD = 1232  # what we advertise: the DNS Flag Day 2020 size that avoids fragmentation
# The most we send over UDP whatever the client offers (RFC 6891 §6.2.5): a spoofed source cannot get
# more than ~30x its query back; bigger answers go truncated, and the real client retries over TCP.
EDNS_LIMIT = OUR_PAYLOAD
_NO_TRANSFER = (RdataType.AXFR, RdataType.IXFR)


def _header_reply(wire: bytes, rcode: dns.rcode.Rcode) -> bytes | None:
    """A bare header echoing the id, opcode and RD, for a query dnspython cannot parse."""
    if len(wire) < HEADER_SIZE or wire[2] & 0x80:
        return None  # no header to answer, or a response: never reply to replies (no ping-pong)
    opcode_rd = wire[2] & 0x79  # RFC 1035 §4.1.1: Opcode (bits 1-4) and RD are copied
    return wire[:2] + bytes([0x80 | opcode_rd, int(rcode) & 0x0F]) + bytes(8)


def answer_message(query: dns.message.Message, zone: Zone) -> dns.message.Message:
    """The reply to one parsed query, exactly as the server sends it (the relay resolves with it too)."""
    response = dns.message.make_response(query, recursion_available=True, our_payload=OUR_PAYLOAD)
    # RA: the sandbox is the whole (fake) internet, so it answers every name, as a resolver would.
    if query.opcode() != dns.opcode.QUERY:
        response.set_rcode(dns.rcode.NOTIMP)  # RFC 1035 §4.1.1: NOTIFY, UPDATE, IQUERY...
        return response
    if query.edns > 0:
        response.set_rcode(dns.rcode.BADVERS)  # RFC 6891 §6.1.3: we speak EDNS version 0 only
        return response
    if len(query.question) != 1:
        response.set_rcode(dns.rcode.FORMERR)  # RFC 9619: exactly one question
        return response
    question = query.question[0]
    if question.rdclass not in (dns.rdataclass.IN, dns.rdataclass.ANY) or question.rdtype in _NO_TRANSFER:
        response.set_rcode(dns.rcode.REFUSED)  # no CHAOS class, no zone transfers
        return response
    try:
        found = zone.resolve(question.name, question.rdtype)
    except ZoneError:
        response.set_rcode(dns.rcode.FORMERR)
        return response
    response.set_rcode(dns.rcode.NXDOMAIN if found.rcode == "NXDOMAIN" else dns.rcode.NOERROR)
    if found.authoritative:
        response.flags |= dns.flags.AA  # RFC 1035 §4.1.1: the name lies in one of our zones
    response.answer = list(found.answer)
    response.authority = list(found.authority)  # RFC 2308 §3: SOA with NXDOMAIN and NODATA
    response.additional = list(found.additional)
    return response


def _minimal_any(query: dns.message.Message, response: dns.message.Message) -> None:
    """RFC 8482 §4.2: ANY over UDP gets one synthesized HINFO "RFC8482" "" record instead of every
    RRset of the name (what made ANY an amplifier); TCP still gets the full answer."""
    question = query.question[0]
    if question.rdtype != RdataType.ANY or not response.answer:
        return
    ttl = min(rrset.ttl for rrset in response.answer)
    hinfo = dns.rdata.from_text(dns.rdataclass.IN, RdataType.HINFO, '"RFC8482" ""')
    response.answer = [dns.rrset.from_rdata(question.name, ttl, hinfo)]
    response.additional = []


def _udp_limit(query: dns.message.Message) -> int:
    if query.edns < 0:
        return UDP_LIMIT
    return max(UDP_LIMIT, min(query.payload, EDNS_LIMIT))  # RFC 6891 §6.2.5: never below 512


def _to_wire(response: dns.message.Message, limit: int) -> bytes:
    # want_shuffle=False: records go out in zone order, so replies are byte-for-byte repeatable.
    try:
        return response.to_wire(max_size=limit, want_shuffle=False)
    except dns.exception.TooBig:
        pass
    # RFC 2181 §9: dropping the additional section is not truncation; TC only when answers don't fit.
    response.additional = []
    try:
        return response.to_wire(max_size=limit, want_shuffle=False)
    except dns.exception.TooBig:
        pass
    response.answer, response.authority = [], []
    response.flags |= dns.flags.TC  # RFC 1035 §4.2.1: the client retries over TCP
    return response.to_wire(max_size=limit, want_shuffle=False)


def answer(wire: bytes, zone: Zone, *, tcp: bool = False) -> bytes | None:
    """Reply bytes for query bytes, or None when there is nothing to answer (drop the packet).

    Malformed queries with a readable header get FORMERR; a failure of ours gets SERVFAIL.
    Over UDP the reply fits 512 bytes or the client's EDNS size (at most 1232), else it is sent
    truncated (TC); ANY over UDP is answered minimally (RFC 8482).
    """
    try:
        query = dns.message.from_wire(wire)
    except Exception:  # any parse failure, whatever dnspython raises, is the client's malformed query
        return _header_reply(wire, dns.rcode.FORMERR)  # RFC 1035 §4.1.1: Format error
    if query.flags & dns.flags.QR:
        return None  # a response sent to us: answering it could start a loop
    try:
        response = answer_message(query, zone)
        if not tcp and len(query.question) == 1:
            _minimal_any(query, response)
        return _to_wire(response, 65535 if tcp else _udp_limit(query))
    except Exception:  # a bug of ours must cost one SERVFAIL, never the server
        return _header_reply(wire, dns.rcode.SERVFAIL)


class AnswerCache:
    """Replies by query bytes after the ID, for the zone's current version: a flood of one question (only
    the ID differs) costs a dict lookup per query, not a parse, a resolve and an encode. Answers do not
    depend on anything else (records go out in zone order), so a hit is byte-identical to `answer`.
    Bounded: `entries` replies of at most `largest` bytes each."""

    def __init__(self, zone: Zone, entries: int = 2048, largest: int = 4096) -> None:
        self.zone = zone
        self._entries: OrderedDict[tuple[bool, bytes], bytes | None] = OrderedDict()
        self._limit = entries
        self._largest = largest
        self._version = zone.version
        self.hits = 0

    def answer(self, wire: bytes, *, tcp: bool = False) -> bytes | None:
        if len(wire) < HEADER_SIZE or len(wire) > 512:
            return answer(wire, self.zone, tcp=tcp)  # too short to key, or too big to be worth keeping
        if self.zone.version != self._version:
            self._entries.clear()  # a record changed: every cached reply may be stale
            self._version = self.zone.version
        key = (tcp, wire[2:])
        if key in self._entries:
            self._entries.move_to_end(key)
            self.hits += 1
            tail = self._entries[key]
            return None if tail is None else wire[:2] + tail
        reply = answer(wire, self.zone, tcp=tcp)
        if reply is None or len(reply) <= self._largest:
            self._entries[key] = None if reply is None else reply[2:]
            if len(self._entries) > self._limit:
                self._entries.popitem(last=False)
        return reply


class DnsStreamConnection:
    """DNS over a byte stream: each message has a two-byte length prefix (RFC 1035 §4.2.2, RFC 7766).

    ``receive_data`` buffers what arrived; ``next_reply`` answers the next complete query, one at a
    time, so the adapter decides how much work to do before it lets other connections run and can
    stop answering (and reading) while the client does not read its replies.
    """

    def __init__(self, zone: Zone, cache: AnswerCache | None = None) -> None:
        self.zone = zone
        self._cache = cache if cache is not None else AnswerCache(zone, entries=64)
        self._buffer = bytearray()  # deleting from the front of a bytearray is O(1) amortized

    def receive_data(self, data: bytes) -> None:
        self._buffer += data

    def next_reply(self) -> bytes | None:
        """The framed reply to the next complete query; b"" when that query gets no answer (a
        response sent to us, an empty frame); None when no complete query is buffered."""
        if not self.has_query:
            return None
        size = int.from_bytes(self._buffer[:2], "big")
        message = bytes(self._buffer[2 : 2 + size])
        del self._buffer[: 2 + size]
        reply = self._cache.answer(message, tcp=True)
        return b"" if reply is None else len(reply).to_bytes(2, "big") + reply

    @property
    def has_query(self) -> bool:
        """Is a complete query waiting for ``next_reply``?"""
        buffered = len(self._buffer)
        return buffered >= 2 and buffered >= 2 + int.from_bytes(self._buffer[:2], "big")

    @property
    def pending(self) -> int:
        """Bytes received and not yet answered (complete queries and the start of the next one)."""
        return len(self._buffer)
