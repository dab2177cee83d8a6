"""The database goes away under a running sandbox (a PostgreSQL restart, a failover): the web API answers
503 and SMTP a temporary 451 meanwhile, never a 500 or a traceback, and both serve again, without a
restart of the sandbox, once the database is back."""

from __future__ import annotations

import asyncio
import json
import smtplib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from mailsandbox.app import Sandbox, SandboxThread
from mailsandbox.models import Envelope
from mailsandbox.store.postgres.store import PostgresStore
from tests.conftest import free_config
from tests.store_contract.pg import Cluster, pg_bin, start_cluster

pytestmark = pytest.mark.fleet


@pytest.fixture
def own_cluster() -> Iterator[Cluster]:
    """A cluster of this test's own: it is stopped and started under the sandbox."""
    if pg_bin() is None:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    cluster = start_cluster(Path(tempfile.mkdtemp(prefix="mailsandbox-pg-outage-")))
    try:
        yield cluster
    finally:
        cluster.stop()


def _send(sandbox: Sandbox, subject: str) -> None:
    smtp = sandbox.address("smtp")
    with smtplib.SMTP(smtp.host, smtp.port, timeout=20) as client:
        client.sendmail("a@example.test", ["b@example.test"], f"Subject: {subject}\r\n\r\nhi\r\n")


def test_a_database_that_goes_away_and_comes_back(own_cluster: Cluster, tmp_path: Path) -> None:
    thread = SandboxThread(free_config(tmp_path, db=own_cluster.create_database("outage"), dns=None, pop3=None))
    sandbox = thread.start()
    http = sandbox.address("http")
    api = httpx.Client(base_url=f"http://{http.host}:{http.port}", timeout=20)
    try:
        _send(sandbox, "before")
        assert api.get("/api/v1/messages").json()["total"] == 1
        own_cluster.stop_server()
        answer = api.get("/api/v1/messages")
        assert answer.status_code == 503, answer.text
        assert answer.json() == {"Error": "the database is unavailable"}
        with pytest.raises(smtplib.SMTPDataError) as refused:
            _send(sandbox, "while down")
        assert refused.value.smtp_code == 451
        time.sleep(2.5)  # down for longer than the listener's pause between reconnects: it meets the outage
        own_cluster.start_server()
        deadline = time.monotonic() + 20
        while api.get("/api/v1/messages").status_code != 200:  # the next request reconnects
            assert time.monotonic() < deadline
            time.sleep(0.2)
        _send(sandbox, "after")  # the writer reconnected too
        subjects = [m["Subject"] for m in api.get("/api/v1/messages").json()["messages"]]
        assert subjects == ["after", "before"]
        # and the listener is back: another frontend's message is announced here again
        other = PostgresStore(own_cluster.dsn.rsplit("/", 1)[0] + "/outage")
        try:
            with connect(f"ws://{http.host}:{http.port}/api/events", open_timeout=5) as ws:
                deadline = time.monotonic() + 10
                while True:
                    asyncio.run(other.add_message(b"Subject: elsewhere\r\n\r\nhi\r\n", Envelope("a@x.test", ("b@x.test",))))
                    try:
                        frame = json.loads(ws.recv(timeout=1))
                    except TimeoutError:
                        assert time.monotonic() < deadline, "no event from the other frontend after the outage"
                        continue
                    if frame["Type"] == "new":
                        assert frame["Data"]["Subject"] == "elsewhere"
                        break
        finally:
            other.close()
    finally:
        api.close()
        thread.stop()
