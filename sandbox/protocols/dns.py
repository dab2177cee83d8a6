"""Sans-IO DNS: query bytes in, reply bytes out, answered from a Zone (dnspython messages)."""

from __future__ import annotations

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
from dns.rdatatype import RdataType

from sandbox.zone import Zone, ZoneError

HEADER_SIZE = 12  # RFC 1035 §4.1.1
UDP_LIMIT = 512  # RFC 1035 §4.2.1: without EDNS, UDP replies stop here
EDNS_LIMIT = 4096  # the most we send over UDP whatever the client offers (RFC 6891 §6.2.5)
OUR_PAYLOAD = 1232  # what we advertise: the DNS Flag Day 2020 size that avoids fragmentation
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
    Over UDP the reply fits 512 bytes or the client's EDNS size, else it is sent truncated (TC).
    """
    try:
        query = dns.message.from_wire(wire)
    except Exception:  # any parse failure, whatever dnspython raises, is the client's malformed query
        return _header_reply(wire, dns.rcode.FORMERR)  # RFC 1035 §4.1.1: Format error
    if query.flags & dns.flags.QR:
        return None  # a response sent to us: answering it could start a loop
    try:
        response = answer_message(query, zone)
        return _to_wire(response, 65535 if tcp else _udp_limit(query))
    except Exception:  # a bug of ours must cost one SERVFAIL, never the server
        return _header_reply(wire, dns.rcode.SERVFAIL)


class DnsStreamConnection:
    """DNS over a byte stream: each message has a two-byte length prefix (RFC 1035 §4.2.2, RFC 7766).

    ``receive_data`` takes whatever arrived and returns the bytes to send back: the framed
    replies to every complete query so far, in order.
    """

    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self._buffer = bytearray()

    def receive_data(self, data: bytes) -> bytes:
        self._buffer += data
        out = bytearray()
        while len(self._buffer) >= 2:
            size = int.from_bytes(self._buffer[:2], "big")
            if len(self._buffer) < 2 + size:
                break  # wait for the rest of this message
            message = bytes(self._buffer[2 : 2 + size])
            del self._buffer[: 2 + size]
            reply = answer(message, self.zone, tcp=True)
            if reply is not None:
                out += len(reply).to_bytes(2, "big") + reply
        return bytes(out)

    @property
    def pending(self) -> int:
        """Bytes of an incomplete message still buffered (the adapter's idle timer looks at it)."""
        return len(self._buffer)
