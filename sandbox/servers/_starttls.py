"""The server side of a STARTTLS upgrade, shared by the SMTP, POP3 and IMAP adapters."""

from __future__ import annotations

import asyncio
import logging
import ssl

log = logging.getLogger("mailsandbox.tls")


async def upgrade(
    transport: asyncio.Transport, protocol: asyncio.BaseProtocol, context: ssl.SSLContext, what: str
) -> asyncio.Transport | None:
    """Run the handshake on `transport`. The TLS transport; or None when the handshake failed (the
    connection is then aborted) or the peer went away during it."""
    loop = asyncio.get_running_loop()
    try:
        return await loop.start_tls(transport, protocol, context, server_side=True)
    except (OSError, ssl.SSLError, ConnectionError):
        log.info("%s handshake failed", what, exc_info=True)
        transport.abort()
        return None
