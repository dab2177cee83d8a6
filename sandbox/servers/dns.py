"""Asyncio UDP and TCP endpoints, on one port, driving protocols.dns."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from collections import deque
from typing import cast

from mailsandbox.protocols.dns import AnswerCache, DnsStreamConnection
from mailsandbox.servers._limits import ConnectionLimiter, Slot
from mailsandbox.zone import Zone

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 10.0  # RFC 7766 §6.2.3: servers close idle TCP connections (seconds)
_BIND_ATTEMPTS = 5
# Pipelined queries are answered in turns of a few per connection, in slices of at most SLICE_SECONDS of
# the loop; after each slice the pump rests as long as it worked, so a flood of cache misses gets at most
# half of the loop (and of the GIL) and every other connection and listener goes on being served.
TURN_QUERIES = 16
SLICE_SECONDS = 0.002
# Reading stops while this much is buffered and a complete query waits (a query is at most 64 KiB,
# so an incomplete one never stops reading), and while the client leaves our replies unread.
READ_AHEAD = 64 * 1024
WRITE_HIGH_WATER = 64 * 1024


class AnswerPump:
    """Takes the TCP connections that have queries to answer, round robin, in bounded slices."""

    def __init__(self) -> None:
        self._ready: deque[DnsStreamProtocol] = deque()
        self._queued: set[DnsStreamProtocol] = set()
        self._handle: asyncio.Handle | None = None

    def want(self, connection: DnsStreamProtocol) -> None:
        if connection not in self._queued:
            self._queued.add(connection)
            self._ready.append(connection)
        if self._handle is None:
            self._handle = asyncio.get_running_loop().call_soon(self._run)

    def _run(self) -> None:
        self._handle = None
        started = time.perf_counter()
        deadline = started + SLICE_SECONDS
        while self._ready and time.perf_counter() < deadline:
            connection = self._ready.popleft()
            if connection.answer_turn(TURN_QUERIES, deadline):
                self._ready.append(connection)  # more to do: back of the line
            else:
                self._queued.discard(connection)
        if self._ready:
            rest = time.perf_counter() - started
            self._handle = asyncio.get_running_loop().call_later(rest, self._run)


class DnsDatagramProtocol(asyncio.DatagramProtocol):
    """One datagram, one answer (RFC 1035 §4.2.1)."""

    def __init__(self, zone: Zone, cache: AnswerCache | None = None) -> None:
        self.zone = zone
        self.cache = cache or AnswerCache(zone)
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # CPython's selector UDP transport does not subclass DatagramTransport, hence a cast.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        reply = self.cache.answer(data, tcp=False)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP "port unreachable" from a client that went away: nothing to do, keep serving.
        log.debug("dns udp: %s", exc)


class DnsStreamProtocol(asyncio.Protocol):
    """A TCP connection: length-prefixed queries in, framed replies out, closed when idle.

    Queries are answered by the shared AnswerPump, never all at once in `data_received`; answering
    pauses while the transport's write buffer is over its high-water mark (pause_writing), and reading
    pauses while answers are due, so neither side's buffer grows without bound."""

    def __init__(
        self,
        zone: Zone,
        live: set[DnsStreamProtocol],
        limiter: ConnectionLimiter | None = None,
        pump: AnswerPump | None = None,
        cache: AnswerCache | None = None,
    ) -> None:
        self.connection = DnsStreamConnection(zone, cache)
        self.transport: asyncio.Transport | None = None
        self._live = live
        self._idle: asyncio.TimerHandle | None = None
        self._limiter = limiter
        self._slot: Slot | None = None
        self._pump = pump or AnswerPump()
        self._write_paused = False
        self._read_paused = False
        self._eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        if self._limiter is not None:
            # DNS has no refusal to send: RFC 7766 §6.2.2 lets servers close (admit_transport aborts).
            self._slot = self._limiter.admit_transport(transport)
            if self._slot is None:
                return
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self._live.add(self)
        self._arm()

    def _arm(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self._idle = asyncio.get_running_loop().call_later(IDLE_TIMEOUT, self.close)

    def data_received(self, data: bytes) -> None:
        if self.transport is None:
            return
        self.connection.receive_data(data)
        self._arm()
        self._wake()

    def eof_received(self) -> bool | None:
        self._eof = True  # the client is done sending: answer what it sent, then close
        self._wake()
        return True

    def pause_writing(self) -> None:
        self._write_paused = True
        self._flow()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._slot is not None:
            self._slot.release()
        if self._idle is not None:
            self._idle.cancel()
        self._live.discard(self)
        self.transport = None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # -- answering, when the pump gives this connection its turn ---------------------------------------

    def _wake(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if self.connection.has_query and not self._write_paused:
            self._pump.want(self)
        elif self._eof and not self.connection.has_query:
            self.transport.close()
        self._flow()

    def answer_turn(self, queries: int, deadline: float) -> bool:
        """Answer up to `queries` queries (fewer past `deadline`); True while more can be answered now."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        for _ in range(queries):
            if self._write_paused:
                break
            reply = self.connection.next_reply()
            if reply is None:
                break
            if reply:
                transport.write(reply)  # may call pause_writing at once
            if time.perf_counter() > deadline:
                break
        self._arm()  # answering is activity too: a slow reader is not idle
        more = self.connection.has_query and not self._write_paused
        if not more:
            self._wake()  # close after EOF, or resume reading
        else:
            self._flow()
        return more

    def _flow(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        waiting = self.connection.has_query
        pause = self._write_paused or (waiting and self.connection.pending > READ_AHEAD)
        if pause and not self._read_paused:
            self._read_paused = True
            transport.pause_reading()
        elif not pause and self._read_paused:
            self._read_paused = False
            transport.resume_reading()


class DnsServer:
    """The bound UDP and TCP endpoints; ``address`` is where they listen."""

    def __init__(
        self,
        udp: asyncio.DatagramTransport,
        tcp: asyncio.Server,
        live: set[DnsStreamProtocol],
    ) -> None:
        self._udp = udp
        self._tcp = tcp
        self._live = live

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._udp.get_extra_info("sockname")[:2]
        return str(host), int(port)

    async def close(self) -> None:
        self._udp.close()
        self._tcp.close()
        for conn in list(self._live):
            conn.close()  # Server.wait_closed() waits for open connections (Python 3.12+)
        await self._tcp.wait_closed()


async def start_dns(host: str, port: int, zone: Zone, limiter: ConnectionLimiter | None = None) -> DnsServer:
    """Serve zone over UDP and TCP on the same host and port; port 0 picks a free one. `limiter`
    bounds the TCP connections (a connection over its limits is closed at once)."""
    loop = asyncio.get_running_loop()
    live: set[DnsStreamProtocol] = set()
    cache, pump = AnswerCache(zone), AnswerPump()  # one of each for the server: UDP and every TCP client
    for attempt in range(_BIND_ATTEMPTS):
        # UDP first: with port 0 the kernel picks, then TCP must get the same number.
        sock = _udp_socket(host, port)
        udp, _ = await loop.create_datagram_endpoint(lambda: DnsDatagramProtocol(zone, cache), sock=sock)
        bound = int(udp.get_extra_info("sockname")[1])
        try:
            tcp = await loop.create_server(lambda: DnsStreamProtocol(zone, live, limiter, pump, cache), host, bound)
        except OSError as exc:
            udp.close()
            if port != 0 or exc.errno != errno.EADDRINUSE or attempt == _BIND_ATTEMPTS - 1:
                raise
            continue  # that number is taken for TCP: let the kernel pick another
        return DnsServer(udp, tcp, live)
    raise AssertionError("unreachable")


def _udp_socket(host: str, port: int) -> socket.socket:
    """Bound here, not by the loop: uvloop reports a port in use as EADDRNOTAVAIL, and the error must say
    which it is (EADDRINUSE names the listener and its address to the user)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE)
    # IPv4 first (a name such as localhost is 127.0.0.1, where clients look), then what else the name is
    # (an IPv6-only name); the first address's error is the one reported.
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    first: OSError | None = None
    for family, kind, proto, _name, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.bind(address)
        except OSError as exc:
            sock.close()
            first = first or exc
            if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                continue  # not an address here (no IPv6): the name's next one may be
            raise
        sock.setblocking(False)
        return sock
    raise first or OSError(f"{host} has no address")
