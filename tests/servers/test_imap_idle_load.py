"""IMAP IDLE sessions during a capture burst (imaplib, smtplib): each one hears the final count, its news
is coalesced to at most one refresh per NOTIFY_INTERVAL, and one that never reads its news delays no other."""

from __future__ import annotations

import imaplib
import re
import smtplib
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage

from mailsandbox.app import Sandbox
from mailsandbox.servers.imap import NOTIFY_INTERVAL

USER = "idle@example.test"


def idle(sandbox: Sandbox) -> imaplib.IMAP4:
    address = sandbox.address("imap")
    imap = imaplib.IMAP4(address.host, address.port, timeout=30)
    imap.login(USER, "anything")
    imap.select()
    imap.send(b"I1 IDLE\r\n")
    assert imap.readline().startswith(b"+ ")
    return imap


def test_idle_sessions_during_a_burst_coalesce_and_one_not_reading_delays_no_other(running_sandbox: Sandbox) -> None:
    count, senders = 300, 4
    listeners = [idle(running_sandbox) for _ in range(10)]
    stalled = idle(running_sandbox)  # never read again
    stalled.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    smtp = running_sandbox.address("smtp")

    def send(s: int) -> None:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=30) as client:
            for i in range(s, count, senders):
                msg = EmailMessage()
                msg["From"], msg["To"], msg["Subject"] = "load@example.test", USER, f"idle {i}"
                msg.set_content("x")
                client.send_message(msg)

    started = time.monotonic()
    with ThreadPoolExecutor(senders) as pool:
        list(pool.map(send, range(senders)))
    burst = time.monotonic() - started

    for imap in listeners:
        updates = 0
        while True:
            line = imap.readline()
            found = re.match(rb"\* (\d+) EXISTS", line)
            if found:
                updates += 1
                if int(found.group(1)) == count:
                    break
        # One refresh per NOTIFY_INTERVAL at most, however many messages arrived meanwhile.
        assert updates <= burst / NOTIFY_INTERVAL + 3, (updates, burst)
        imap.send(b"DONE\r\n")
        while not imap.readline().startswith(b"I1 "):
            pass
        imap.logout()
    stalled.sock.close()
