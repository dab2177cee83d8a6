"""The queue across restarts, release to a second sandbox over real SMTP, and the API's error answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mailsandbox.clock import ManualClock
from mailsandbox.config import Listen
from tests.relay.conftest import World, WorldFactory


def test_queue_survives_a_restart(world_factory: WorldFactory) -> None:
    first = world_factory()
    first.set_host("mx.single.test", "tempfail")  # a run-time fault: gone after the restart
    message_id = first.send(["bob@single.test"])
    first.settle()
    [item] = first.queue()
    first.close()

    # The new process starts an hour later: the retry is due, and the queue resumes on its own.
    second = world_factory(clock=ManualClock(offset=3600))
    second.settle()
    assert second.queue() == []
    assert [t["Code"] for t in second.trace(message_id)] == [451, 250]
    assert len(second.mailbox("bob@single.test")) == 1
    assert item["ID"] == message_id


def test_queue_waits_for_its_time_after_a_restart(world_factory: WorldFactory) -> None:
    first = world_factory()
    first.set_host("mx.single.test", "tempfail")
    first.send(["bob@single.test"])
    first.settle()
    first.close()

    second = world_factory()
    second.settle()
    [item] = second.queue()
    assert item["Attempts"] == 1  # not due yet: nothing was tried at start
    clock = second.next_retry()
    assert clock["Queued"] == 0 and len(second.mailbox("bob@single.test")) == 1


@pytest.fixture
def upstream(world_factory: WorldFactory, tmp_path: Path) -> World:
    """A second sandbox, with its own database, acting as the real world's SMTP server."""
    return world_factory(
        data_dir=tmp_path / "upstream", db=str(tmp_path / "upstream" / "up.db"),
        smtp_tls_port=Listen("127.0.0.1", 0),
    )


def _release_config(upstream: World, **extra: object) -> dict[str, object]:
    smtp = upstream.sandbox.address("smtp")
    return {"host": smtp.host, "port": smtp.port, "allowed": ["*@partner.example", "ops@*"], **extra}


def _release(world: World, message_id: str, **kwargs: Any) -> None:
    response = world.api("POST", f"/api/v1/message/{message_id}/release", **kwargs)
    assert (response.status_code, response.text) == (200, "ok")


def test_release_to_a_second_sandbox(world_factory: WorldFactory, upstream: World) -> None:
    world = world_factory(release=_release_config(upstream))
    message_id = world.send(["bob@anywhere.example"], subject="Ship it")

    result = world.api("POST", f"/api/v1/message/{message_id}/release", json={"To": ["x@partner.example"]})
    assert (result.status_code, result.text, result.headers["content-type"]) == (200, "ok", "text/plain")

    listing = upstream.ok("GET", "/api/v1/messages")
    assert listing["total"] == 1
    released = upstream.sandbox.store.get(listing["messages"][0]["ID"])
    assert released is not None
    assert released.summary.subject == "Ship it"
    assert released.envelope.mail_from == "alice@sender.test"
    assert released.envelope.rcpt_tos == ("x@partner.example",)


def test_release_refusals(world_factory: WorldFactory, upstream: World) -> None:
    world = world_factory(release=_release_config(upstream))
    message_id = world.send(["bob@anywhere.example"])
    path = f"/api/v1/message/{message_id}/release"

    # Mailpit's answers to the same mistakes (server/apiv1/release.go): a 400, its text, as text/plain
    refusals = {
        ("x@partner.example", "evil@elsewhere.test"): "Failed: 1 Address do not match the allowlist: evil@elsewhere.test",
        ("a@elsewhere.test", "x@partner.example", "B <b@elsewhere.test>"):
            "Failed: 2 Addresses do not match the allowlist: a@elsewhere.test, B <b@elsewhere.test>",
        ("x@partner.example", "not an address"): "Invalid email address: not an address",
        (): "No valid addresses found",
    }  # fmt: skip
    for to, text in refusals.items():
        refused = world.api("POST", path, json={"To": list(to)})
        assert (refused.status_code, refused.text, refused.headers["content-type"]) == (400, text, "text/plain"), to
    assert world.api("POST", path, json={"To": "x@partner.example"}).status_code == 400
    assert world.api("POST", path, content=b"{nope").status_code == 400
    missing = world.api("POST", "/api/v1/message/nope/release", json={"To": ["x@partner.example"]})
    assert (missing.status_code, missing.text) == (404, "404 page not found")
    assert upstream.ok("GET", "/api/v1/messages")["total"] == 0  # nothing went out


def test_release_is_off_unless_configured(world: World) -> None:
    message_id = world.send(["bob@anywhere.example"])
    response = world.api("POST", f"/api/v1/message/{message_id}/release", json={"To": ["x@partner.example"]})
    assert response.status_code == 400 and "not configured" in response.text


def test_release_upstream_down_is_mailpits_smtp_error(world_factory: WorldFactory) -> None:
    world = world_factory(release={"host": "127.0.0.1", "port": 1, "timeout": 5})
    message_id = world.send(["bob@anywhere.example"])
    response = world.api("POST", f"/api/v1/message/{message_id}/release", json={"To": ["x@partner.example"]})
    assert response.status_code == 400 and response.text.startswith("SMTP error: ")


def test_release_over_starttls_with_auth(world_factory: WorldFactory, upstream: World) -> None:
    world = world_factory(release=_release_config(
        upstream, starttls=True, insecure=True, username="relay-user", password="secret",
    ))
    message_id = world.send(["bob@anywhere.example"])
    _release(world, message_id, json={"To": ["ops@anywhere.example"]})
    [summary] = upstream.ok("GET", "/api/v1/messages")["messages"]
    released = upstream.sandbox.store.get(summary["ID"])
    assert released is not None and released.envelope.tls and released.envelope.auth_user == "relay-user"


def test_release_over_implicit_tls(world_factory: WorldFactory, upstream: World) -> None:
    tls = upstream.sandbox.address("smtp_tls")
    world = world_factory(release={"host": tls.host, "port": tls.port, "tls": True, "insecure": True})
    message_id = world.send(["bob@anywhere.example"])
    _release(world, message_id, json={"To": ["x@partner.example"]})
    [summary] = upstream.ok("GET", "/api/v1/messages")["messages"]
    released = upstream.sandbox.store.get(summary["ID"])
    assert released is not None and released.envelope.tls


def test_api_errors(world: World) -> None:
    host = "/api/sandbox/hosts/mx.single.test"
    assert world.api("PUT", host, json={"behaviour": "explode"}).status_code == 400
    wrong_class = {"behaviour": "tempfail", "reply": "550 5.0.0 a 5xx for a temporary failure"}
    assert world.api("PUT", host, json=wrong_class).status_code == 400
    assert world.api("PUT", host, content=b"[").status_code == 400
    assert world.api("DELETE", "/api/sandbox/hosts/never-set.test").status_code == 404
    assert world.ok("GET", "/api/sandbox/hosts/never-set.test")["behaviour"] == "accept"
    assert "gw1.chain.test" in world.ok("GET", "/api/sandbox/hosts")

    assert world.api("POST", "/api/sandbox/clock", json={}).status_code == 400
    assert world.api("POST", "/api/sandbox/clock", json={"advance": -5}).status_code == 400
    assert world.api("POST", "/api/sandbox/clock", json={"advance": "soon"}).status_code == 400

    assert world.api("POST", "/api/sandbox/dns/records", json={"Name": "x.example"}).status_code == 400
    bad = {"Name": "x.example", "Type": "MX", "Value": "not a preference"}
    assert world.api("POST", "/api/sandbox/dns/records", json=bad).status_code == 400
    gone = {"Name": "x.example", "Type": "A", "Value": "192.0.2.99"}
    assert world.api("DELETE", "/api/sandbox/dns/records", json=gone).status_code == 404

    assert world.api("GET", "/api/v1/message/nope/trace").status_code == 404
    assert world.api("POST", "/api/sandbox/queue/nope/retry").status_code == 404
    assert world.api("DELETE", "/api/sandbox/queue/nope").status_code == 404


def test_clock_endpoint(world: World) -> None:
    before = world.ok("GET", "/api/sandbox/clock")
    assert before["NextRetry"] is None and before["RetryInterval"] == 1800
    after = world.advance(90)
    assert after["Offset"] - before["Offset"] == 90
    assert world.next_retry()["Queued"] == 0  # nothing queued: the clock stays put


def test_relay_off_keeps_trace_clock_and_release(world_factory: WorldFactory, upstream: World) -> None:
    world = world_factory(relay=False, release=_release_config(upstream))
    assert world.sandbox.relay is None
    message_id = world.send(["bob@single.test"])  # no relay: captured and delivered locally
    assert len(world.mailbox("bob@single.test")) == 1
    assert world.trace(message_id) == []
    assert world.queue() == []
    assert world.advance(60)["Offset"] == 60
    assert world.api("POST", "/api/sandbox/clock", json={"next_retry": True}).status_code == 404
    assert world.api("POST", f"/api/sandbox/queue/{message_id}/retry").status_code == 404
    assert world.api("DELETE", f"/api/sandbox/queue/{message_id}").status_code == 404
    assert world.api("GET", "/api/sandbox/hosts").status_code == 404
    assert world.api("PUT", "/api/sandbox/hosts/x.test", json="down").status_code == 404
    assert world.ok("GET", "/api/sandbox/dns/records")  # the zone is still there
    _release(world, message_id, json={"To": ["x@partner.example"]})
    assert upstream.ok("GET", "/api/v1/messages")["total"] == 1


def test_postmaster_without_a_domain_is_local_in_strict_mode(world_factory: WorldFactory) -> None:
    world = world_factory(dns_strict=True)
    world.send(["postmaster"])
    assert world.queue() == [] and len(world.mailbox("postmaster")) == 1
