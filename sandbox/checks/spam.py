"""The spam score: a small client of SpamAssassin's spamd (the SPAMC/1.5 protocol, spamd/PROTOCOL in
SpamAssassin's sources) and its REPORT answer in Mailpit's `SpamAssassinResponse` shape."""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import Any

NOT_CONFIGURED = "no SpamAssassin service defined"  # Mailpit's words
MAX_REPLY = 1 << 20  # a REPORT is a few kilobytes
_RULES_RULE = "---- "  # the line under the "pts rule name description" heading


def _floor1(value: float) -> float:
    return math.floor(value * 10 + 1e-9) / 10  # Mailpit rounds down to one decimal (1e-9: 2.3 * 10 is 22.99...)


def parse_report(reply: bytes) -> dict[str, Any]:
    """spamd's answer to REPORT -> {"IsSpam", "Error", "Score", "Rules": [{"Score", "Name", "Description"}]}."""
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(None, 2)  # "SPAMD/1.1 0 EX_OK"
    if len(status) < 2 or not status[0].startswith("SPAMD/") or status[1] != "0":
        return _failed(f"spamd: {' '.join(status[1:]) or 'no answer'}")
    spam, score = False, 0.0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "spam":  # "Spam: True ; 6.1 / 5.0"
            verdict, _, numbers = value.partition(";")
            spam = verdict.strip().lower() in ("true", "yes")
            with contextlib.suppress(ValueError):
                score = float(numbers.split("/")[0])
    rules: list[dict[str, Any]] = []
    in_table = False
    for line in body.decode("utf-8", "replace").splitlines():
        if not in_table:
            in_table = line.startswith(_RULES_RULE)
            continue
        fields = line.split(None, 2)
        if not fields:
            continue
        try:
            points = float(fields[0])
        except ValueError:
            if rules and line[:1].isspace():  # a description continued on the next line
                rules[-1]["Description"] += " " + line.strip()
            continue
        rules.append({"Score": _floor1(points), "Name": fields[1] if len(fields) > 1 else "",
                      "Description": fields[2].strip() if len(fields) > 2 else ""})  # fmt: skip
    return {"IsSpam": spam, "Error": "", "Score": _floor1(score), "Rules": rules}


def _failed(reason: str) -> dict[str, Any]:
    return {"IsSpam": False, "Error": reason, "Score": 0.0, "Rules": None}


class SpamAssassin:
    """spamd at `host:port`; at most `concurrency` checks at once, each within `timeout` seconds."""

    def __init__(self, host: str, port: int, *, timeout: float = 10.0, concurrency: int = 2) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._concurrency = concurrency
        self._slots: asyncio.Semaphore | None = None

    async def check(self, raw: bytes) -> dict[str, Any]:
        """The score and rules of a whole message; a spamd that cannot answer is an `Error`, not an exception."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._concurrency)
        async with self._slots:
            try:
                reply = await asyncio.wait_for(self._report(raw), self.timeout)
            except TimeoutError:
                return _failed(f"spamd at {self.host}:{self.port} did not answer in {self.timeout:g} s")
            except OSError as exc:
                return _failed(f"spamd at {self.host}:{self.port}: {exc.strerror or exc}")
        return parse_report(reply)

    async def _report(self, raw: bytes) -> bytes:
        reader, writer = await asyncio.open_connection(self.host, self.port, limit=MAX_REPLY)
        try:
            writer.write(b"REPORT SPAMC/1.5\r\nContent-length: %d\r\n\r\n" % len(raw))
            writer.write(raw)
            await writer.drain()
            writer.write_eof()  # spamd reads until the client half-closes
            reply = await reader.read(MAX_REPLY)
            while len(reply) < MAX_REPLY:
                more = await reader.read(MAX_REPLY - len(reply))
                if not more:
                    break
                reply += more
            return reply
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
