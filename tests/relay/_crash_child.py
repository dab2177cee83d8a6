"""A sandbox process for test_exactly_once.py: `python _crash_child.py DATA ZONE RECIPIENT [crash]`.

With `crash`, the process kills itself (SIGKILL) on the writer thread right after the first commit that
puts anything into RECIPIENT's mailbox: the worst moment, when today's delivery is on disk and anything
the relay writes after it is not. Without it, the sandbox resumes the queue, waits for the relay to settle
and prints RECIPIENT's INBOX entries as JSON.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path

from mailsandbox.app import SandboxThread
from mailsandbox.config import Config, Listen
from mailsandbox.events import Event, EventBus, MailboxChanged


def crash_after_delivery(user: str) -> None:
    publish = EventBus.publish

    def dying_publish(self: EventBus, event: Event) -> None:
        if (isinstance(event, MailboxChanged) and event.user == user
                and threading.current_thread().name == "store-writer"):  # fmt: skip
            os.kill(os.getpid(), signal.SIGKILL)
        publish(self, event)

    EventBus.publish = dying_publish  # type: ignore[method-assign]


def main() -> None:
    data, zone, user, *crash = sys.argv[1:]
    if crash:
        crash_after_delivery(user)
    zero = Listen("127.0.0.1", 0)
    config = Config(smtp=zero, http=None, pop3=None, imap=None, dns=None, data_dir=Path(data),
                    db=str(Path(data) / "mailsandbox.db"), zones=(Path(zone),))  # fmt: skip
    thread = SandboxThread(config)
    sandbox = thread.start()
    smtp = sandbox.address("smtp")
    print(f"smtp {smtp.host} {smtp.port}", flush=True)
    if crash:
        threading.Event().wait(60)  # the relay's delivery ends the process
        sys.exit("the relay never delivered")
    assert sandbox.relay is not None
    thread.call(sandbox.relay.settle())
    entries = sandbox.store.entries(user, "INBOX")
    print(json.dumps([[e.uid, e.message_id] for e in entries]), flush=True)
    thread.stop()


if __name__ == "__main__":
    main()
