"""Tagging on arrival: messages that each bring a tag no other has (plus-addresses) against the same
messages with tagging off, in the same run; then the cost of the listing's list of every tag.

    .venv/bin/python bench/tags_bench.py [--messages 5000]

Each new name is one look-up in table tag_names (migration 7), so the cost per message stays flat as the
store grows; before it, each new name scanned every tagged message (20,000 took over 5 minutes).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mailsandbox.models import Envelope
from mailsandbox.store._tags import Tagging
from mailsandbox.store.sqlite import SqliteStore


def run(count: int, tagging: Tagging) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(str(Path(tmp) / "tags.db"), tagging=tagging)
        raws = (
            f"Subject: m{i}\r\nTo: ann+order{i}@x.test\r\nX-Tags: common, t{i % 50}\r\n\r\nhi\r\n".encode()
            for i in range(count)
        )
        began = time.perf_counter()
        for _ in store.add_messages_sync((raw, Envelope(mail_from="b@x.test", rcpt_tos=())) for raw in raws):
            pass
        stored = time.perf_counter() - began
        began = time.perf_counter()
        names = len(store.tags())
        listed = time.perf_counter() - began
        store.close()
    return stored, listed, names


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=5000)
    count = parser.parse_args().messages
    off, _, _ = run(count, Tagging(x_tags=False, plus_addresses=False))
    on, listed, names = run(count, Tagging())
    print(f"{count} messages, tagging off: {count / off:,.0f} msgs/s")
    print(f"{count} messages, each with a new tag: {count / on:,.0f} msgs/s ({on / off:.2f}x the time)")
    print(f"the list of every tag ({names:,} names), as each listing reads it: {listed * 1000:.1f} ms")


if __name__ == "__main__":
    main()
