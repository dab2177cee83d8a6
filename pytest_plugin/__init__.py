"""Mailsandbox's pytest plugin: `mail_sandbox` and `outbox` fixtures; these names are for annotations."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailsandbox.pytest_plugin.auth import AuthResults, Verdict
    from mailsandbox.pytest_plugin.checks import HtmlCheck, LinkCheck, SpamCheck
    from mailsandbox.pytest_plugin.controls import ChaosControl, ClockControl, DnsControl, HostsControl
    from mailsandbox.pytest_plugin.filters import MailFilter
    from mailsandbox.pytest_plugin.handle import SandboxHandle
    from mailsandbox.pytest_plugin.message import Attachment, CapturedMessage, Headers, Hop
    from mailsandbox.pytest_plugin.outbox import MailAssertionError, Outbox

__all__ = [
    "Attachment",
    "AuthResults",
    "CapturedMessage",
    "ChaosControl",
    "ClockControl",
    "DnsControl",
    "Headers",
    "Hop",
    "HostsControl",
    "HtmlCheck",
    "LinkCheck",
    "MailAssertionError",
    "MailFilter",
    "Outbox",
    "SandboxHandle",
    "SpamCheck",
    "Verdict",
]

# pytest imports this package for every run where the plugin is installed; loading httpx and
# the sandbox only when a name is used keeps that free for projects that never touch mail.
_HOMES = {
    "AuthResults": "auth",
    "Verdict": "auth",
    "MailFilter": "filters",
    "ChaosControl": "controls",
    "ClockControl": "controls",
    "DnsControl": "controls",
    "HostsControl": "controls",
    "HtmlCheck": "checks",
    "LinkCheck": "checks",
    "SpamCheck": "checks",
    "SandboxHandle": "handle",
    "Attachment": "message",
    "CapturedMessage": "message",
    "Headers": "message",
    "Hop": "message",
    "MailAssertionError": "outbox",
    "Outbox": "outbox",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'mailsandbox.pytest_plugin' has no attribute {name!r}")
    return getattr(importlib.import_module(f"mailsandbox.pytest_plugin.{home}"), name)
