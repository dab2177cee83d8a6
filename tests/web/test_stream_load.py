"""/api/events under load, with websockets' asyncio client: many listeners during a burst each get every
event in order (or a 1013 close), and a listener that stops reading is closed without slowing the others."""

from __future__ import annotations

import asyncio
import json
import smtplib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from mailsandbox.app import Sandbox
from mailsandbox.web.stream import CLOSE_TOO_SLOW, MAX_LAG, EventHub

SENDERS = 4


def hub_of(sandbox: Sandbox) -> EventHub:
    """The running server's hub, to wait on its client count (a condition, not a sleep)."""
    server = sandbox._uvicorn
    assert server is not None
    app = server.config.app
    assert isinstance(app, Starlette)
    for route in app.routes:
        if isinstance(route, WebSocketRoute) and route.path == "/api/events":
            hub = getattr(route.endpoint, "__self__", None)
            assert isinstance(hub, EventHub)
            return hub
    raise AssertionError("no /api/events route")


def burst(sandbox: Sandbox, count: int, subject: Callable[[int, int], str]) -> None:
    """`count` messages over SENDERS smtplib connections at once; sender s sends subject(s, i), i rising."""
    smtp = sandbox.address("smtp")

    def sender(s: int) -> None:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=30) as client:
            for i in range(s, count, SENDERS):
                msg = EmailMessage()
                msg["From"] = "load@example.test"
                msg["To"] = "sink@example.test"
                msg["Subject"] = subject(s, i)
                msg.set_content("x")
                client.send_message(msg)

    with ThreadPoolExecutor(SENDERS) as pool:
        list(pool.map(sender, range(SENDERS)))


async def collect(ws: ClientConnection, expected: int, got: list[str]) -> tuple[int, str] | None:
    """The subjects of "new" frames until `expected` arrived; the close code and reason if closed first."""
    try:
        while len(got) < expected:
            frame = json.loads(await ws.recv())
            if frame["Type"] == "new":
                got.append(frame["Data"]["Subject"])
    except ConnectionClosed as closed:
        assert closed.rcvd is not None, "the server closed without a close frame"
        return closed.rcvd.code, closed.rcvd.reason
    return None


def in_order(subjects: list[str]) -> bool:
    """Each sender's messages are committed one after the other: its numbers must rise."""
    last: dict[str, int] = {}
    for subject in subjects:
        sender, number = subject.split()[1:3]
        if int(number) <= last.get(sender, -1):
            return False
        last[sender] = int(number)
    return True


def test_fifty_clients_during_a_burst_get_every_event_in_order(running_sandbox: Sandbox) -> None:
    clients, count = 50, 300
    http = running_sandbox.address("http")
    url = f"ws://{http.host}:{http.port}/api/events"
    hub = hub_of(running_sandbox)
    results: list[tuple[list[str], tuple[int, str] | None]] = []

    async def listen() -> None:
        conns = [await connect(url, open_timeout=10) for _ in range(clients)]
        while hub.clients < clients:  # the server has registered every one before the burst starts
            await asyncio.sleep(0.01)
        got: list[list[str]] = [[] for _ in conns]
        sending = asyncio.create_task(asyncio.to_thread(burst, running_sandbox, count, lambda s, i: f"load {s} {i}"))
        closes = await asyncio.wait_for(
            asyncio.gather(*(collect(c, count, g) for c, g in zip(conns, got, strict=True))), 120
        )
        await sending
        for conn in conns:
            await conn.close()
        results.extend(zip(got, closes, strict=True))

    asyncio.run(listen())
    complete = 0
    expected = sorted(f"load {i % SENDERS} {i}" for i in range(count))
    first: list[str] | None = None
    for subjects, close in results:
        if close is not None:
            # Closed for falling behind (a starved reader on a loaded machine): told so, with a reason.
            assert close[0] == CLOSE_TOO_SLOW and "too slow" in close[1], close
            assert in_order(subjects)
            continue
        complete += 1
        assert sorted(subjects) == expected  # every event, once
        assert in_order(subjects)
        first = first or subjects
        assert subjects == first  # the same order for every client
    # 300 events cannot put a reader 2 s behind unless the machine starves it; most must keep up.
    assert complete >= clients - 5, f"only {complete} of {clients} clients kept up"


def test_a_reader_that_stops_is_closed_and_the_others_keep_up(running_sandbox: Sandbox) -> None:
    fast_clients, count = 5, 800
    http = running_sandbox.address("http")
    url = f"ws://{http.host}:{http.port}/api/events"
    hub = hub_of(running_sandbox)
    padding = "p" * 900  # frames of ~1.5 KB fill the stalled client's buffers sooner
    Closes = list[tuple[int, str] | None]

    async def run() -> tuple[Closes, list[list[str]], bool, tuple[int, str] | None, list[str]]:
        # max_queue=1: the library stops reading the socket once one message waits unread.
        slow = await connect(url, open_timeout=10, max_queue=1)
        fast = [await connect(url, open_timeout=10) for _ in range(fast_clients)]
        while hub.clients < fast_clients + 1:
            await asyncio.sleep(0.01)
        got: list[list[str]] = [[] for _ in fast]
        readers = asyncio.gather(*(collect(c, count, g) for c, g in zip(fast, got, strict=True)))
        await asyncio.to_thread(burst, running_sandbox, count, lambda s, i: f"load {s} {i} {padding}")
        closes = await asyncio.wait_for(readers, 60)
        # The stalled client is dropped MAX_LAG after its frames started waiting, events or not.
        deadline = time.monotonic() + MAX_LAG + 15
        while hub.clients > fast_clients and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        dropped = hub.clients == fast_clients
        slow_got: list[str] = []
        slow_close = await asyncio.wait_for(collect(slow, count, slow_got), 30)
        for conn in fast:
            await conn.close()
        return closes, got, dropped, slow_close, slow_got

    closes, got, dropped, slow_close, slow_got = asyncio.run(run())
    assert closes == [None] * fast_clients  # the others were not closed...
    for subjects in got:
        assert len(subjects) == count and in_order(subjects)  # ...and got every event, in order
    assert dropped, "the stalled client was not closed"
    assert slow_close is not None and slow_close[0] == CLOSE_TOO_SLOW and "too slow" in slow_close[1]
    assert len(slow_got) < count  # it was cut off, not fed the whole backlog
    assert in_order(slow_got)  # what it did get is a prefix in order


def test_a_broken_bus_listener_costs_the_others_nothing(running_sandbox: Sandbox) -> None:
    """A listener that raises is logged and skipped; the stream still gets the event."""
    from mailsandbox.events import Event

    calls: list[Event] = []
    ready = threading.Event()

    def broken(event: Event) -> None:
        calls.append(event)
        raise RuntimeError("listener bug")

    def subscribe() -> None:
        running_sandbox.bus.subscribe(broken)
        ready.set()

    assert running_sandbox.loop is not None
    running_sandbox.loop.call_soon_threadsafe(subscribe)  # on the sandbox's loop, as a listener there
    assert ready.wait(5)
    http = running_sandbox.address("http")

    async def run() -> tuple[list[str], tuple[int, str] | None]:
        async with connect(f"ws://{http.host}:{http.port}/api/events", open_timeout=10) as ws:
            while hub_of(running_sandbox).clients < 1:
                await asyncio.sleep(0.01)
            await asyncio.to_thread(burst, running_sandbox, 4, lambda s, i: f"load {s} {i}")
            got: list[str] = []
            return got, await asyncio.wait_for(collect(ws, 4, got), 10)

    got, close = asyncio.run(run())
    assert close is None and len(got) == 4
    assert calls  # the broken listener was called, and raising did not stop delivery
