"""Mailsandbox: a whole email world on one machine. The public API: Sandbox, SandboxThread, Config, models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailsandbox.app import Sandbox, SandboxThread
    from mailsandbox.auth.keys import SigningKey, generate_key
    from mailsandbox.clock import ManualClock
    from mailsandbox.config import Config, Listen
    from mailsandbox.models import Address, Envelope, StoredMessage

__all__ = [
    "Address",
    "Config",
    "Envelope",
    "Listen",
    "ManualClock",
    "Sandbox",
    "SandboxThread",
    "SigningKey",
    "StoredMessage",
    "generate_key",
]

_HOMES = {
    "Sandbox": "mailsandbox.app",
    "SandboxThread": "mailsandbox.app",
    "Config": "mailsandbox.config",
    "Listen": "mailsandbox.config",
    "ManualClock": "mailsandbox.clock",
    "Address": "mailsandbox.models",
    "Envelope": "mailsandbox.models",
    "StoredMessage": "mailsandbox.models",
    "SigningKey": "mailsandbox.auth.keys",
    "generate_key": "mailsandbox.auth.keys",
}


def __getattr__(name: str) -> Any:
    # Lazy (PEP 562): importing sandbox.models from a protocol core must not start up uvicorn and the servers.
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'sandbox' has no attribute {name!r}")
