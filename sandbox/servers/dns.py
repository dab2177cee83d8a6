"""Asyncio UDP and TCP endpoints, on one port, driving protocols.dns."""

from __future__ import annotations

import asyncio
import errno
import logging
from typing import cast

from sandbox.protocols.dns import DnsStreamConnection, answer
from sandbox.zone import Zone

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 10.0  # RFC 7766 §6.2.3: servers close idle TCP connections (seconds)
_BIND_ATTEMPTS = 5


class DnsDatagramProtocol(asyncio.DatagramProtocol):
    """One datagram, one answer (RFC 1035 §4.2.1)."""

    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # CPython's selector UDP transport does not subclass DatagramTransport, hence a cast.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        reply = answer(data, self.zone, tcp=False)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP "port unreachable" from a client that went away: nothing to do, keep serving.
        log.debug("dns udp: %s", exc)


class DnsStreamProtocol(asyncio.Protocol):
    """A TCP connection: length-prefixed queries in, framed replies out, closed when idle."""

    def __init__(self, zone: Zone, live: set[DnsStreamProtocol]) -> None:
        self.connection = DnsStreamConnection(zone)
        self.transport: asyncio.Transport | None = None
        self._live = live
        self._idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._live.add(self)
        self._arm()

    def _arm(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self._idle = asyncio.get_running_loop().call_later(IDLE_TIMEOUT, self.close)

    def data_received(self, data: bytes) -> None:
        reply = self.connection.receive_data(data)
        if reply and self.transport is not None:
            self.transport.write(reply)
        self._arm()

    def eof_received(self) -> bool | None:
        return None  # the client is done sending: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self._live.discard(self)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


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


async def start_dns(host: str, port: int, zone: Zone) -> DnsServer:
    """Serve zone over UDP and TCP on the same host and port; port 0 picks a free one."""
    loop = asyncio.get_running_loop()
    live: set[DnsStreamProtocol] = set()
    for attempt in range(_BIND_ATTEMPTS):
        # UDP first: with port 0 the kernel picks, then TCP must get the same number.
        udp, _ = await loop.create_datagram_endpoint(
            lambda: DnsDatagramProtocol(zone), local_addr=(host, port)
        )
        bound = int(udp.get_extra_info("sockname")[1])
        try:
            tcp = await loop.create_server(lambda: DnsStreamProtocol(zone, live), host, bound)
        except OSError as exc:
            udp.close()
            if port != 0 or exc.errno != errno.EADDRINUSE or attempt == _BIND_ATTEMPTS - 1:
                raise
            continue  # that number is taken for TCP: let the kernel pick another
        return DnsServer(udp, tcp, live)
    raise AssertionError("unreachable")
