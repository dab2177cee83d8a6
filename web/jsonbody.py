"""JSON bodies encoded in pieces, so a large one never holds the interpreter lock for long.

json.dumps runs its C encoder over the whole value in one call, holding the lock throughout: the answer
for a message of 8,000 parts (3.4 MB of JSON) took 36 ms, and the event loop, which shares that lock with
the worker encoding it, waited as long. Encoding each element of a long list on its own gives other
threads the lock between them; the bytes are the same as JSONResponse's.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import JSONResponse

_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
LONG = 64  # elements of a list encoded together at most


def encode(value: Any) -> str:
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return "{" + ",".join(_dumps(k) + ":" + encode(v) for k, v in value.items()) + "}"
    if isinstance(value, list) and len(value) > LONG:
        return "[" + ",".join(encode(v) for v in value) + "]"
    return _dumps(value)


class PiecewiseJSONResponse(JSONResponse):
    """A JSONResponse for bodies that can be large (a message's parts, headers)."""

    def render(self, content: Any) -> bytes:
        return encode(content).encode("utf-8")
