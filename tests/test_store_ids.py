"""Message IDs: Mailpit's shape (22 URL-safe characters), unique, and in the order they were made, so the
id index takes each insert at its right edge instead of on a random leaf."""

from __future__ import annotations

import re
import time

from mailsandbox.store.sqlite import new_id


def test_ids_are_url_safe_never_an_option_and_sort_as_they_were_made() -> None:
    made = []
    for _ in range(20):
        made.append(new_id())
        time.sleep(0.002)  # a new millisecond: the time part orders them
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", i) and not i.startswith("-") for i in made)
    assert made == sorted(made)


def test_ids_made_in_one_millisecond_are_still_unique() -> None:
    began = time.monotonic()
    many = [new_id() for _ in range(100_000)]
    took_ms = (time.monotonic() - began) * 1000
    assert len(set(many)) == len(many)
    # Many share a millisecond, so the time part (8 characters) repeats: 84 random bits set them apart.
    assert len({i[:8] for i in many}) <= took_ms + 2
