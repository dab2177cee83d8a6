"""The simulated multi-hop relay: MX routing through simulated hosts, the retry queue, bounces, release."""

from mailsandbox.relay.faults import BehaviourError, Faults, HostBehaviour
from mailsandbox.relay.queue import Relay
from mailsandbox.relay.release import ReleaseError, Releaser, ReleaseSettings, release_message

__all__ = [
    "BehaviourError",
    "Faults",
    "HostBehaviour",
    "Relay",
    "ReleaseError",
    "ReleaseSettings",
    "Releaser",
    "release_message",
]
