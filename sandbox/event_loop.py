"""Which event loop the sandbox runs on: uvloop (libuv, in C) where it is installed, else asyncio's own.
The servers use only what both offer (protocols and transports, start_tls, datagram endpoints)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

CHOICES = ("auto", "uvloop", "asyncio")


def factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The new-loop function for `choice`; ValueError for an unknown one, or uvloop asked for and missing."""
    if choice not in CHOICES:
        raise ValueError(f"{choice!r} is not one of {', '.join(CHOICES)}")
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise ValueError("uvloop is not installed (pip install uvloop), or use auto or asyncio") from None
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def name(loop: asyncio.AbstractEventLoop) -> str:
    """"uvloop" or "asyncio", for the start-up banner."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
