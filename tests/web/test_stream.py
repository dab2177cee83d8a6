"""/api/events over a real WebSocket: Mailpit-shaped frames for new, update, delete, truncate, stats."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

from mailsandbox.events import EventBus
from mailsandbox.models import Envelope
from mailsandbox.store.sqlite import SqliteStore
from mailsandbox.web import schema
from mailsandbox.web.stream import EventHub, stream_routes

Send = Callable[..., None]  # the `send` fixture of conftest.py


@pytest.fixture
def events(base_url: str) -> Iterator[ClientConnection]:
    with connect(base_url.replace("http://", "ws://") + "/api/events", open_timeout=5) as ws:
        next_of(ws, "stats")  # the counts every new client is sent
        yield ws


def next_of(ws: ClientConnection, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    """The next frame of this type; frames of other types (stats) are skipped."""
    while True:
        frame = json.loads(ws.recv(timeout=timeout))
        assert set(frame) == {"Type", "Data"}, frame
        if frame["Type"] == kind:
            return frame  # type: ignore[no-any-return]


def test_new_update_delete_truncate(events: ClientConnection, client: httpx.Client, send: Send) -> None:
    send(subject="live one", to=("ann@example.test",), bcc=("bcc@example.test",))
    new = next_of(events, "new")["Data"]
    assert new["Subject"] == "live one"
    assert new["Read"] is False
    assert sorted(new["Mailboxes"]) == ["ann@example.test", "bcc@example.test"]
    listed = client.get("/api/v1/messages").json()["messages"][0]
    assert new == listed  # the same MessageSummary shape as the listing
    stats = next_of(events, "stats")["Data"]
    assert stats == {"Total": 1, "Unread": 1, "Version": version("mailsandbox")}

    client.put("/api/v1/messages", json={"IDs": [new["ID"]], "Read": True})
    update = next_of(events, "update")["Data"]
    assert update == {"ID": new["ID"], "Read": True}
    assert next_of(events, "stats")["Data"] == {"Total": 1, "Unread": 0, "Version": version("mailsandbox")}

    client.request("DELETE", "/api/v1/messages", json={"IDs": [new["ID"]]})
    assert next_of(events, "delete")["Data"] == {"ID": new["ID"]}

    send(subject="two")
    send(subject="three")
    next_of(events, "new")
    next_of(events, "new")
    client.request("DELETE", "/api/v1/messages")
    assert next_of(events, "truncate")["Data"] is None
    assert next_of(events, "stats")["Data"]["Total"] == 0


def test_a_new_client_is_sent_the_counts_without_a_change(base_url: str, send: Send) -> None:
    send(subject="counted")
    url = base_url.replace("http://", "ws://") + "/api/events"
    with connect(url, open_timeout=5) as ws:
        stats = next_of(ws, "stats")["Data"]  # nothing changes after the connect
    assert stats["Total"] >= 1 and stats["Version"] == version("mailsandbox")


def test_one_frame_per_id_and_only_for_what_changed(events: ClientConnection, client: httpx.Client, send: Send) -> None:
    for subject in ("one", "two", "three"):
        send(subject=subject)
        next_of(events, "new")
    ids = [m["ID"] for m in client.get("/api/v1/messages").json()["messages"]]
    client.put("/api/v1/messages", json={"IDs": ids[:1], "Read": True})
    assert next_of(events, "update")["Data"] == {"ID": ids[0], "Read": True}
    client.put("/api/v1/messages", json={"IDs": ids, "Read": True})  # ids[0] is read already: no frame for it
    updates = [next_of(events, "update")["Data"] for _ in range(2)]
    assert sorted(u["ID"] for u in updates) == sorted(ids[1:]) and all(u["Read"] for u in updates)
    client.request("DELETE", "/api/v1/messages", json={"IDs": ids[1:]})
    deletes = [next_of(events, "delete")["Data"] for _ in range(2)]
    assert sorted(d["ID"] for d in deletes) == sorted(ids[1:])


def test_every_client_gets_every_event(base_url: str, send: Send) -> None:
    url = base_url.replace("http://", "ws://") + "/api/events"
    with connect(url) as first, connect(url) as second:
        send(subject="fan out")
        assert next_of(first, "new")["Data"]["Subject"] == "fan out"
        assert next_of(second, "new")["Data"]["Subject"] == "fan out"


def test_cross_site_pages_may_not_listen(base_url: str) -> None:
    url = base_url.replace("http://", "ws://") + "/api/events"
    with pytest.raises(InvalidStatus) as refused:
        connect(url, origin=Origin("http://evil.test"))
    assert refused.value.response.status_code == 403
    host = base_url.removeprefix("http://")
    with connect(url, origin=Origin(f"http://{host}")) as ws:
        ws.ping().wait(5)


def test_under_another_asgi_server_frames_go_one_send_each(tmp_path: Path) -> None:
    """Stock uvicorn has no frame extension: the hub sends through ASGI, one send_text per frame."""
    bus = EventBus()
    store = SqliteStore(str(tmp_path / "stream.db"), bus=bus)
    hub = EventHub(store, bus, schema.summary)
    config = uvicorn.Config(Starlette(routes=stream_routes(hub)), ws="websockets-sansio", lifespan="off",
                            log_level="warning")  # fmt: skip
    server = uvicorn.Server(config)
    sock = socket.create_server(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    raw = b"From: a@example.test\r\nTo: b@example.test\r\nSubject: via asgi %d\r\n\r\nhi\r\n"
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        with connect(f"ws://127.0.0.1:{sock.getsockname()[1]}/api/events", open_timeout=5) as ws:
            while hub.clients < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            for n in range(3):
                asyncio.run(store.add_message(raw % n, Envelope("a@example.test", ("b@example.test",))))
            assert [next_of(ws, "new")["Data"]["Subject"] for _ in range(3)] == [f"via asgi {n}" for n in range(3)]
            while (stats := next_of(ws, "stats")["Data"])["Total"] < 3:
                pass  # one counted mid-burst; one more always follows the last change
            assert stats == {"Total": 3, "Unread": 3, "Version": version("mailsandbox")}
    finally:
        server.should_exit = True
        thread.join(10)
        store.close()
