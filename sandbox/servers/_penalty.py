"""LoginPenalty: a LoginThrottle's verdicts applied to one connection of the SMTP or POP3 adapter."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from mailsandbox.servers._limits import client_address
from mailsandbox.throttle import LoginThrottle


class LoginPenalty:
    """After a failed login the connection reads nothing and its replies wait, in order, for the delay;
    past the limit it is cut. `transport` is a getter: STARTTLS swaps the transport under us."""

    def __init__(
        self, throttle: LoginThrottle | None, protocol: str, transport: Callable[[], asyncio.Transport | None],
        resume_reading: Callable[[], None],
    ) -> None:  # fmt: skip
        self._throttle = throttle
        self._protocol = protocol
        self._transport = transport
        self._resume = resume_reading
        self._held: bytearray | None = None
        self._close_after = False
        self._timer: asyncio.TimerHandle | None = None

    def _client(self) -> str:
        transport = self._transport()
        return client_address(transport.get_extra_info("peername")) if transport else ""

    def blocked(self) -> bool:
        """This address failed too often lately: refused at connect, and its logins fail unchecked."""
        return self._throttle is not None and self._throttle.blocked(self._client())

    @property
    def holding(self) -> bool:
        return self._held is not None

    def failed(self) -> bool:
        """Count one failed login; True means: say goodbye and close now."""
        if self._throttle is None:
            return False
        verdict = self._throttle.failed(self._client(), self._protocol)
        if verdict.disconnect:
            return True
        self.hold(verdict.delay)
        return False

    def hold(self, delay: float) -> None:
        """Read nothing and hold the replies for `delay` seconds (a failed login's penalty, or a chaos
        rule's delay); while a hold runs, another adds nothing."""
        transport = self._transport()
        if delay > 0 and transport is not None and self._held is None:
            self._held = bytearray()
            transport.pause_reading()
            self._timer = asyncio.get_running_loop().call_later(delay, self._release)

    def write(self, data: bytes) -> None:
        if self._held is not None:
            self._held += data
            return
        transport = self._transport()
        if data and transport is not None and not transport.is_closing():
            transport.write(data)

    def close(self) -> None:
        if self._held is not None:
            self._close_after = True
            return
        transport = self._transport()
        if transport is not None:
            transport.close()

    def cancel(self) -> None:
        """The connection is gone: drop what waits."""
        if self._timer is not None:
            self._timer.cancel()
        self._held = None

    def _release(self) -> None:
        held, self._held = self._held, None
        self._timer = None
        if held:
            self.write(bytes(held))
        if self._close_after:
            self.close()
        else:
            self._resume()
