"""Mailsandbox: a whole email world on one machine. The public API: Sandbox, SandboxThread, Config, models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.app import Sandbox, SandboxThread
    from sandbox.auth.keys import SigningKey, generate_key
    from sandbox.clock import ManualClock
    from sandbox.config import Config, Listen
    from sandbox.models import Address, Envelope, StoredMessage

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
    "Sandbox": "sandbox.app",
    "SandboxThread": "sandbox.app",
    "Config": "sandbox.config",
    "Listen": "sandbox.config",
    "ManualClock": "sandbox.clock",
    "Address": "sandbox.models",
    "Envelope": "sandbox.models",
    "StoredMessage": "sandbox.models",
    "SigningKey": "sandbox.auth.keys",
    "generate_key": "sandbox.auth.keys",
}


def __getattr__(name: str) -> Any:
    # Lazy (PEP 562): importing sandbox.models from a protocol core must not start up uvicorn and the servers.
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'sandbox' has no attribute {name!r}")
