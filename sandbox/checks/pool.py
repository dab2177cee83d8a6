"""HtmlChecker: HTML checks in a worker process of their own (`python -m mailsandbox.checks.pool`). The check
is pure Python over up to 2 MiB; on a thread it would hold the interpreter lock the event loop needs and
slow capture while it runs. A plain child process over pipes, not multiprocessing: "spawn" would import
the embedding program's __main__ again, and "fork" would copy a process full of threads. A check that
runs past its time is ended with its process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import sys
from typing import Any, BinaryIO

from mailsandbox.checks import html

_LENGTH = struct.Struct(">I")
MAX_ANSWER = 64 << 20


class CheckFailed(RuntimeError):
    """The worker could not answer (it died or ran out of time); the next check starts a new one."""


class HtmlChecker:
    """One worker process, started on the first check; one check at a time, at most `max_pending` waiting
    (more fail at once), each within `timeout` seconds."""

    def __init__(self, timeout: float = 60.0, max_pending: int = 16) -> None:
        self.timeout = timeout
        self._max_pending = max_pending
        self._pending = 0
        self._process: asyncio.subprocess.Process | None = None
        self._turn: asyncio.Lock | None = None

    async def check(self, markup: str, places: bool = False) -> dict[str, Any]:
        answer: dict[str, Any] = json.loads(await self.check_json(markup, places))
        return answer

    async def check_json(self, markup: str, places: bool = False) -> bytes:
        """The answer as the worker wrote it: JSON, ready to send."""
        return await self.ask(self.request(markup, places))

    @staticmethod
    def request(markup: str, places: bool = False) -> bytes:
        """A check's request, encoded (milliseconds for megabytes: a caller may do it off the loop); only
        what the check reads is sent."""
        return json.dumps({"markup": markup[: html.MAX_HTML], "places": places}).encode()

    async def ask(self, request: bytes) -> bytes:
        """The JSON answer to an encoded `request`."""
        if self._pending >= self._max_pending:
            raise CheckFailed("too many HTML checks waiting")
        if self._turn is None:
            self._turn = asyncio.Lock()
        self._pending += 1
        try:
            async with self._turn:
                return await self._ask(request)
        finally:
            self._pending -= 1

    async def _ask(self, request: bytes) -> bytes:
        process = self._process
        if process is None or process.returncode is not None:
            process = self._process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "mailsandbox.checks.pool",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=MAX_ANSWER,
            )  # fmt: skip
        assert process.stdin is not None and process.stdout is not None
        try:
            async with asyncio.timeout(self.timeout):
                process.stdin.write(_LENGTH.pack(len(request)) + request)
                await process.stdin.drain()
                (size,) = _LENGTH.unpack(await process.stdout.readexactly(_LENGTH.size))
                return await process.stdout.readexactly(size)
        except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
            await self._end()
            raise CheckFailed("the HTML check did not finish") from exc

    async def _end(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    async def close(self) -> None:
        await self._end()


def _serve(reader: BinaryIO, writer: BinaryIO) -> None:
    import os

    os.nice(10)  # on a small machine the kernel then favours the sandbox's own process: capture comes first
    while header := reader.read(_LENGTH.size):
        (size,) = _LENGTH.unpack(header)
        request = json.loads(reader.read(size))
        answer = json.dumps(html.check(request["markup"], bool(request["places"]))).encode()
        writer.write(_LENGTH.pack(len(answer)) + answer)
        writer.flush()


if __name__ == "__main__":
    _serve(sys.stdin.buffer, sys.stdout.buffer)
