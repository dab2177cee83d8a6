"""The simulated multi-hop relay: MX routing through simulated hosts, the retry queue, bounces, release."""

from sandbox.relay.faults import BehaviourError, Faults, HostBehaviour
from sandbox.relay.queue import Relay
from sandbox.relay.release import ReleaseError, Releaser, ReleaseSettings, release_message

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
