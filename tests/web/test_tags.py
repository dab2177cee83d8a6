"""Tags as Mailpit has them, over real sockets: set on arrival (X-Tags, plus-addresses, the SMTP username,
tagging rules from flags and the TOML file), read and changed through /api/v1/tags, found by tag: and
is:tagged, and announced on /api/events."""

from __future__ import annotations

import json
import smtplib
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from mailsandbox.app import Sandbox
from mailsandbox.config import Config, SettingError
from mailsandbox.store._tags import TagRule, clean_tag, title_case

Sandboxes = Any  # conftest's sandbox_factory


def _client(sandbox: Sandbox) -> httpx.Client:
    http = sandbox.address("http")
    return httpx.Client(base_url=f"http://{http.host}:{http.port}", timeout=10)


def _send(sandbox: Sandbox, headers: str, rcpts: list[str], login: tuple[str, str] | None = None) -> None:
    smtp = sandbox.address("smtp")
    with smtplib.SMTP(smtp.host, smtp.port) as s:
        if login:
            s.login(*login)
        s.sendmail("bob@example.test", rcpts, f"{headers}\r\n\r\nbody text\r\n".encode())


def _by_subject(client: httpx.Client) -> dict[str, dict[str, Any]]:
    return {m["Subject"]: m for m in client.get("/api/v1/messages").json()["messages"]}


def _ok(response: httpx.Response) -> None:
    assert (response.status_code, response.text, response.headers["content-type"]) == (200, "ok", "text/plain")


def _error(response: httpx.Response, text: str) -> None:
    assert (response.status_code, response.text, response.headers["content-type"]) == (400, text, "text/plain")


def _found(client: httpx.Client, query: str) -> list[str]:
    page = client.get("/api/v1/search", params={"query": query}).json()
    return sorted(m["Subject"] for m in page["messages"])


def test_clean_names_as_mailpit() -> None:
    assert clean_tag('  Dirty! "Tag"  ') == "Dirty Tag"
    assert clean_tag("a\tb,c") == "a b c"
    assert clean_tag("x" * 150) == "x" * 100
    assert clean_tag("ünïcode") == "n code"  # Mailpit's alphabet is ASCII letters, digits, - _ . @ and space
    assert title_case("x-tag1 and more") == "X-Tag1 And More"
    assert title_case("mIxed") == "MIxed"  # first letters only, as Go's cases.Title with NoLower


def test_arrival_tags_from_x_tags_plus_addresses_and_username(sandbox_factory: Sandboxes) -> None:
    sandbox = sandbox_factory(tags_username=True, smtp_auth_allow_insecure=True)
    _send(sandbox, "Subject: one\r\nFrom: bob+FromTag@example.test\r\nTo: ann+invoice+2024@example.test\r\n"
          "Cc: cc+CcTag@example.test\r\nX-Tags: urgent, Work,  bad!name ,urgent",
          ["ann+invoice+2024@example.test", "hidden+BccTag@example.test"], login=("app-user", "pw"))  # fmt: skip
    _send(sandbox, "Subject: two\r\nTo: ann@example.test\r\nX-Tags: work", ["ann@example.test"])
    with _client(sandbox) as client:
        got = _by_subject(client)
        assert got["one"]["Tags"] == ["2024", "app-user", "bad name", "BccTag", "CcTag", "FromTag", "invoice",
                                      "urgent", "Work"]  # fmt: skip
        assert got["two"]["Tags"] == ["Work"]  # the store's spelling: tag names are unique whatever their case
        assert got["one"]["Username"] == "app-user"
        message = client.get(f"/api/v1/message/{got['two']['ID']}").json()
        assert message["Tags"] == ["Work"]
        assert client.get("/api/v1/tags").json() == ["2024", "app-user", "bad name", "BccTag", "CcTag",
                                                      "FromTag", "invoice", "urgent", "Work"]  # fmt: skip
        assert client.get("/api/v1/info").json()["Tags"]["Work"] == 2
        assert _found(client, "tag:work") == ["one", "two"] and _found(client, "tag:WORK") == ["one", "two"]
        assert _found(client, "tag:wor") == [] and _found(client, "-tag:invoice") == ["two"]
        assert _found(client, 'tag:"bad name"') == ["one"]
        assert _found(client, "is:tagged") == ["one", "two"]


def test_tag_sources_can_be_turned_off_and_title_cased(sandbox_factory: Sandboxes) -> None:
    off = sandbox_factory(tags_disable="x-tags,plus-addresses")
    _send(off, "Subject: s\r\nTo: ann+plus@example.test\r\nX-Tags: header", ["ann+plus@example.test"])
    with _client(off) as client:
        assert _by_subject(client)["s"]["Tags"] == []
        assert _found(client, "is:tagged") == [] and _found(client, "-is:tagged") == ["s"]
    titled = sandbox_factory(tags_title_case=True, tags_disable="xtags")
    _send(titled, "Subject: t\r\nTo: ann+big-deal@example.test\r\nX-Tags: header", ["ann+big-deal@example.test"])
    with _client(titled) as client:  # the same database as `off`
        assert _by_subject(client)["t"]["Tags"] == ["Big-Deal"]


def test_tagging_rules_from_the_toml_file_and_flags(sandbox_factory: Sandboxes, tmp_path: Path) -> None:
    toml = tmp_path / "sandbox.toml"
    toml.write_text('[[tags]]\nmatch = "subject:invoice"\ntags = ["Billing", "money"]\n\n'
                    '[[tags]]\nmatch = "from:alerts@ body:outage"\ntags = "ops,Pager"\n')  # fmt: skip
    loaded = Config.load(environ={}, config_file=toml)
    assert loaded.tags == (TagRule("subject:invoice", ("Billing", "money")),
                           TagRule("from:alerts@ body:outage", ("ops", "Pager")))  # fmt: skip
    flags = Config.load(environ={}, overrides={"tags": ['vip="from:boss@" late=subject:overdue']})
    assert flags.tags == (TagRule("from:boss@", ("vip",)), TagRule("subject:overdue", ("late",)))
    sandbox = sandbox_factory(tags=[*loaded.tags, *flags.tags])
    _send(sandbox, "Subject: Your invoice, overdue\r\nTo: ann@example.test\r\nX-Tags: money", ["ann@example.test"])
    _send(sandbox, "Subject: hi\r\nFrom: alerts@example.test\r\nTo: ann@example.test", ["ann@example.test"])
    smtp = sandbox.address("smtp")
    with smtplib.SMTP(smtp.host, smtp.port) as s:  # the body matters to the second rule: a real FTS match
        s.sendmail("alerts@example.test", ["ann@example.test"],
                   b"Subject: down\r\nFrom: alerts@example.test\r\n\r\nA major outage now.\r\n")  # fmt: skip
    with _client(sandbox) as client:
        got = _by_subject(client)
        assert got["Your invoice, overdue"]["Tags"] == ["Billing", "late", "money"]
        assert got["hi"]["Tags"] == [] and got["down"]["Tags"] == ["ops", "Pager"]


def test_bad_tag_settings_are_refused() -> None:
    with pytest.raises(SettingError, match="x-tags, plus-addresses"):
        Config(tags_disable=("headers",))
    with pytest.raises(SettingError, match="TAG,TAG=QUERY"):
        Config.load(environ={}, overrides={"tags": ["no-equals-sign"]})
    with pytest.raises(SettingError, match="not a search query"):
        Config.load(environ={}, overrides={"tags": ["x=is:bogus"]})
    with pytest.raises(SettingError, match="--tags"):  # named after where it came from
        Config.load(environ={}, overrides={"tags": ["x="]})


def test_tag_endpoints_have_mailpits_shapes(running_sandbox: Sandbox) -> None:
    for subject in ("alpha", "beta", "gamma"):
        _send(running_sandbox, f"Subject: {subject}\r\nTo: ann@example.test", ["ann@example.test"])
    with _client(running_sandbox) as client:
        ids = {s: m["ID"] for s, m in _by_subject(client).items()}
        assert client.get("/api/v1/tags").json() == []
        _ok(client.put("/api/v1/tags", json={"IDs": [ids["alpha"], ids["beta"]], "Tags": ["b", "A", "a", " "]}))
        _ok(client.put("/api/v1/tags", json={"IDs": [ids["gamma"], "no-such-id"], "Tags": ["zed"]}))
        assert [_by_subject(client)[s]["Tags"] for s in ("alpha", "beta", "gamma")] == [["A", "b"], ["A", "b"],
                                                                                        ["zed"]]  # fmt: skip
        assert client.get("/api/v1/tags").json() == ["A", "b", "zed"]
        listing = client.get("/api/v1/messages").json()
        assert listing["tags"] == ["A", "b", "zed"]
        _ok(client.put("/api/v1/tags", json={"IDs": [ids["beta"]], "Tags": ["a"]}))  # replaces; stored spelling
        assert _by_subject(client)["beta"]["Tags"] == ["A"]
        _ok(client.put("/api/v1/tags", json={"IDs": [], "Tags": ["ignored"]}))
        _ok(client.put("/api/v1/tags/A", json={"Name": "Renamed!"}))
        assert client.get("/api/v1/tags").json() == ["b", "Renamed", "zed"]
        _ok(client.put("/api/v1/tags/renamed", json={"Name": "RENAMED"}))  # a change of case is a rename
        assert _found(client, "tag:renamed") == ["alpha", "beta"]
        assert _by_subject(client)["alpha"]["Tags"] == ["b", "RENAMED"]
        _ok(client.put("/api/v1/tags/zed", json={"Name": "zed"}))
        _error(client.put("/api/v1/tags/nope", json={"Name": "other"}), "tag not found: nope")
        _error(client.put("/api/v1/tags/b", json={"Name": "Zed"}), "tag already exists: Zed")
        _error(client.put("/api/v1/tags/b", json={"Name": "!!"}), "invalid tag name: !!")
        _error(client.put("/api/v1/tags/b", content=b"{"), client.put("/api/v1/tags/b", content=b"{").text)
        assert client.put("/api/v1/tags/b", content=b"{").text.startswith("malformed JSON")
        _error(client.put("/api/v1/tags", json={"IDs": [ids["alpha"]], "Tags": "x"}), "Tags must be a list of strings")
        _error(client.put("/api/v1/tags", json={"IDs": "x", "Tags": []}), "IDs must be a list of strings")
        _ok(client.request("DELETE", "/api/v1/tags/Renamed"))
        _error(client.request("DELETE", "/api/v1/tags/Renamed"), "tag not found: Renamed")
        assert client.get("/api/v1/tags").json() == ["b", "zed"]
        assert len(_by_subject(client)) == 3  # the messages stay
        _ok(client.put("/api/v1/tags", json={"IDs": [ids["gamma"]], "Tags": []}))
        _ok(client.put("/api/v1/tags", json={"IDs": [ids["alpha"]], "Tags": None}))
        assert client.get("/api/v1/tags").json() == [] and _found(client, "is:tagged") == []
        spaced = client.put("/api/v1/tags", json={"IDs": [ids["beta"]], "Tags": ["Tag 1"]})
        _ok(spaced)
        _ok(client.request("DELETE", "/api/v1/tags/Tag%201"))
        assert client.get("/api/v1/tags").json() == []


def test_tag_changes_are_live_events(running_sandbox: Sandbox) -> None:
    _send(running_sandbox, "Subject: live\r\nTo: ann@example.test\r\nX-Tags: first", ["ann@example.test"])
    with _client(running_sandbox) as client:
        mid = _by_subject(client)["live"]["ID"]
        http = running_sandbox.address("http")
        with connect(f"ws://{http.host}:{http.port}/api/events", open_timeout=5) as ws:

            def next_of(kind: str) -> Any:
                while True:
                    frame = json.loads(ws.recv(timeout=5))
                    if frame["Type"] == kind:
                        return frame["Data"]

            _send(running_sandbox, "Subject: arrives\r\nTo: ann+plus@example.test", ["ann+plus@example.test"])
            assert next_of("new")["Tags"] == ["plus"]
            _ok(client.put("/api/v1/tags", json={"IDs": [mid], "Tags": ["second", "First"]}))
            assert next_of("update") == {"ID": mid, "Tags": ["first", "second"]}
            _ok(client.put("/api/v1/tags/second", json={"Name": "third"}))
            assert next_of("prune") is None  # as Mailpit: every listing reloads
            _ok(client.request("DELETE", "/api/v1/tags/third"))
            assert next_of("prune") is None
