"""Large JSON bodies are encoded in pieces (web/jsonbody.py) to exactly the bytes JSONResponse gives."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.responses import JSONResponse

from mailsandbox.web.jsonbody import PiecewiseJSONResponse

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=80) | st.dictionaries(st.text(), inner, max_size=8),
    max_leaves=400,
)


@settings(max_examples=200, deadline=None)
@given(_json)
def test_the_bytes_are_json_responses(value: Any) -> None:
    assert PiecewiseJSONResponse(value).body == JSONResponse(value).body


@pytest.mark.timing  # two gaps of one run compared: with the other budgets, alone
def test_a_large_body_leaves_the_interpreter_lock_to_other_threads() -> None:
    """While 8,000 parts' worth of JSON is encoded, a thread that needs the lock every millisecond gets it."""
    body = {"ID": "x", "Attachments": [{"PartID": f"2.{i}", "FileName": "é" * 200, "Size": i} for i in range(8000)]}
    gaps: list[float] = []
    done = threading.Event()

    def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            time.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    old = sys.getswitchinterval()
    sys.setswitchinterval(0.001)
    thread = threading.Thread(target=ticker)
    thread.start()
    try:
        time.sleep(0.01)
        gaps.clear()
        whole = JSONResponse(body).body  # the C encoder in one call: the ticker waits it out
        worst_whole = max(gaps, default=0.0)
        gaps.clear()
        pieces = PiecewiseJSONResponse(body).body
        worst_pieces = max(gaps, default=0.0)
    finally:
        done.set()
        thread.join()
        sys.setswitchinterval(old)
    assert pieces == whole
    assert worst_pieces < worst_whole / 2, (worst_pieces, worst_whole)
