"""Mailpit's meanings through a running sandbox and httpx: PUT /api/v1/messages by IDs or Search (a
missing Read is unread), searches that touch only what they match, queries refused before anything
changes, the listing's and the search's counts, and `ok` as Mailpit writes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from mailsandbox.app import Sandbox
from tests.web.conftest import Send

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def _state(client: httpx.Client) -> dict[str, bool]:
    """Subject -> Read for every message in the store."""
    page = client.get("/api/v1/messages", params={"limit": 1000}).json()
    return {m["Subject"]: m["Read"] for m in page["messages"]}


def _ok(response: httpx.Response) -> None:
    assert (response.status_code, response.text) == (200, "ok"), response.text
    assert response.headers["content-type"] == "text/plain"


def _tag(client: httpx.Client, subject: str, tags: str) -> None:
    """Set a message's tags through Mailpit's PUT /api/v1/tags."""
    ids = [m["ID"] for m in client.get("/api/v1/messages").json()["messages"] if m["Subject"] == subject]
    _ok(client.put("/api/v1/tags", json={"IDs": ids, "Tags": tags.split(",")}))


@pytest.fixture
def corpus(send: Send, client: httpx.Client) -> list[str]:
    send(subject="alpha one", to=("ann@example.test",))
    send(subject="alpha two", to=("bob@example.test",), bcc=("hidden@example.test",))
    send(subject="beta", to=("ann@example.test",), html="<p>hi <img src='cid:logo'></p>",
         related=(("logo", "image/png", PNG),))  # fmt: skip
    send(subject="gamma", to=("carol@example.test",), attachments=(("a.pdf", "application/pdf", b"%PDF"),))
    subjects = sorted(_state(client))
    assert subjects == ["alpha one", "alpha two", "beta", "gamma"]
    return subjects


def test_put_by_search_changes_only_the_matches_and_a_missing_read_is_unread(
    client: httpx.Client, corpus: list[str]
) -> None:
    _ok(client.put("/api/v1/messages", json={"Read": True}))  # neither IDs nor Search: everything
    assert set(_state(client).values()) == {True}
    _ok(client.put("/api/v1/messages", json={"Search": "subject:alpha"}))  # no Read: false, as in Mailpit
    assert _state(client) == {"alpha one": False, "alpha two": False, "beta": True, "gamma": True}
    _ok(client.put("/api/v1/messages", json={"Search": "to:ann", "Read": True}))
    assert _state(client) == {"alpha one": True, "alpha two": False, "beta": True, "gamma": True}
    _ok(client.put("/api/v1/messages", json={"Search": "subject:nothing-matches", "Read": False}))
    assert _state(client) == {"alpha one": True, "alpha two": False, "beta": True, "gamma": True}
    _ok(client.put("/api/v1/messages", json={}))  # no Read, no IDs, no Search: all unread
    assert set(_state(client).values()) == {False}


def test_put_refusals_change_nothing(client: httpx.Client, corpus: list[str]) -> None:
    ids = [m["ID"] for m in client.get("/api/v1/messages").json()["messages"]]
    before = _state(client)
    both = client.put("/api/v1/messages", json={"IDs": ids[:1], "Search": "alpha", "Read": True})
    assert (both.status_code, both.text) == (400, "You may specify either IDs or a search query, not both")
    assert both.headers["content-type"] == "text/plain"
    for body in ({"Search": "is:foo", "Read": True}, {"Search": "to:", "Read": True},
                 {"Search": "before:soon", "Read": True}, {"Search": 5, "Read": True}, {"Read": "yes"}):  # fmt: skip
        refused = client.put("/api/v1/messages", json=body)
        assert refused.status_code == 400, (body, refused.text)
    bad_zone = client.put("/api/v1/messages", params={"tz": "Mars/Base"}, json={"Search": "after:2020-01-01"})
    assert bad_zone.status_code == 400 and "Mars/Base" in bad_zone.text
    bad_json = client.put("/api/v1/messages", content=b'{"Read": tru')
    assert bad_json.status_code == 400 and bad_json.headers["content-type"] == "text/plain"
    assert _state(client) == before


def test_put_by_ids_and_by_mailbox(client: httpx.Client, corpus: list[str]) -> None:
    by_subject = {m["Subject"]: m["ID"] for m in client.get("/api/v1/messages").json()["messages"]}
    _ok(client.put("/api/v1/messages", json={"IDs": [by_subject["beta"]], "Read": True}))
    assert _state(client) == {"alpha one": False, "alpha two": False, "beta": True, "gamma": False}
    # our ?mailbox= extra: "every message" means every one of that mailbox
    _ok(client.put("/api/v1/messages", params={"mailbox": "carol@example.test"}, json={"Read": True}))
    assert _state(client) == {"alpha one": False, "alpha two": False, "beta": True, "gamma": True}


@pytest.mark.parametrize(
    "query", ["is:foo", "is:tagged has:pdf", "to:", "larger:lots", "before:2024-13-01", "(", '-""']
)
def test_a_query_that_cannot_be_read_deletes_nothing(client: httpx.Client, corpus: list[str], query: str) -> None:
    response = client.delete("/api/v1/search", params={"query": query})
    assert response.status_code == 400 and response.headers["content-type"] == "text/plain"
    assert query.split()[-1].strip('-"') in response.text  # the refusal names the filter
    assert client.get("/api/v1/search", params={"query": query}).status_code == 400
    assert sorted(_state(client)) == corpus


def test_filters_match_only_their_own_field(running_sandbox: Sandbox, client: httpx.Client, corpus: list[str]) -> None:
    def found(query: str, **params: str) -> list[str]:
        response = client.get("/api/v1/search", params={"query": query, **params})
        assert response.status_code == 200, response.text
        return sorted(m["Subject"] for m in response.json()["messages"])

    assert found("bcc:hidden") == ["alpha two"]  # an envelope-only recipient is Bcc, as Mailpit reports it
    assert found("to:hidden") == [] and found("cc:hidden") == []
    assert found("addressed:hidden") == ["alpha two"]
    assert found("has:inline") == ["beta"]
    assert found("has:attachment") == ["gamma"]
    assert found("is:tagged") == []
    _ok(client.delete("/api/v1/search", params={"query": "is:tagged"}))  # nothing is tagged: nothing goes
    assert sorted(_state(client)) == corpus
    _tag(client, "beta", "urgent,Work")
    _tag(client, "gamma", "urgent")
    assert found("is:tagged") == ["beta", "gamma"]
    assert found("tag:urgent") == ["beta", "gamma"] and found("tag:Work") == ["beta"] and found("-tag:Work") == [
        "alpha one", "alpha two", "gamma"]  # fmt: skip
    now = datetime.now(UTC)
    today, tomorrow = now.strftime("%Y-%m-%d"), (now + timedelta(days=1)).strftime("%Y-%m-%d")
    assert found(f"after:{today}", tz="Etc/GMT-14") == corpus  # UTC+14: its day began 14 hours before UTC's
    assert found(f"before:{today}", tz="Etc/GMT-14") == []
    assert found(f"after:{tomorrow}", tz="Etc/GMT+12") == []  # UTC-12: 12:00 UTC tomorrow
    _ok(client.delete("/api/v1/search", params={"query": "tag:urgent -has:inline"}))
    assert sorted(_state(client)) == ["alpha one", "alpha two", "beta"]


def test_summaries_have_mailpits_meanings(running_sandbox: Sandbox, client: httpx.Client, corpus: list[str]) -> None:
    by_subject = {m["Subject"]: m["ID"] for m in client.get("/api/v1/messages").json()["messages"]}
    _ok(client.put("/api/v1/messages", json={"IDs": [by_subject["alpha one"]], "Read": True}))
    _tag(client, "gamma", "zeta,alpha")
    listing = client.get("/api/v1/messages", params={"start": 1, "limit": 2}).json()
    assert {k: v for k, v in listing.items() if k != "messages"} == {
        "total": 4, "unread": 3, "count": 2, "messages_count": 4, "messages_unread": 3, "start": 1,
        "tags": ["alpha", "zeta"],
    }  # fmt: skip
    search = client.get("/api/v1/search", params={"query": "subject:alpha", "limit": 1}).json()
    assert {k: v for k, v in search.items() if k != "messages"} == {
        "total": 4, "unread": 3, "count": 1, "messages_count": 2, "messages_unread": 1, "start": 0,
        "tags": ["alpha", "zeta"],
    }  # fmt: skip
    mailbox = client.get("/api/v1/messages", params={"mailbox": "ann@example.test"}).json()
    assert (mailbox["total"], mailbox["messages_count"], mailbox["messages_unread"]) == (4, 2, 1)
    empty = client.get("/api/v1/search", params={"query": ""})
    assert (empty.status_code, empty.text) == (400, "Error: no search query")


def test_unknown_ids_are_mailpits_404(client: httpx.Client, corpus: list[str]) -> None:
    for path in ("/api/v1/message/nope", "/api/v1/message/nope/headers", "/api/v1/message/nope/part/1",
                 "/api/v1/message/nope/raw"):  # fmt: skip
        response = client.get(path)
        assert (response.status_code, response.text, response.headers["content-type"]) == (
            404, "404 page not found", "text/plain")  # fmt: skip
    _ok(client.request("DELETE", "/api/v1/messages", json={"IDs": ["nope"]}))
    assert sorted(_state(client)) == corpus


def test_view_latest_and_embed_as_mailpit(send: Send, client: httpx.Client) -> None:
    none = client.get("/view/latest", follow_redirects=False)
    assert (none.status_code, none.headers["location"]) == (302, "/")
    assert client.get("/view/latest.html").text == "Message not found"
    send(subject="plain", body="just text")
    send(subject="letter", html='<p><a href="https://example.test/x" target="_top" rel="opener">go</a></p>')
    by_subject = {m["Subject"]: m["ID"] for m in client.get("/api/v1/messages").json()["messages"]}
    latest = client.get("/view/latest", follow_redirects=False)
    assert (latest.status_code, latest.headers["location"]) == (302, f"/view/{by_subject['letter']}")
    matching = client.get("/view/latest", params={"query": "subject:plain"}, follow_redirects=False)
    assert matching.headers["location"] == f"/view/{by_subject['plain']}"
    assert client.get("/view/latest", params={"query": "is:foo"}, follow_redirects=False).status_code == 400
    page = client.get(f"/view/{by_subject['letter']}", follow_redirects=False)
    assert (page.status_code, page.headers["location"]) == (302, f"/#id={by_subject['letter']}")

    plain = client.get("/view/latest.html")
    assert (
        plain.text
        == '<base target="_blank"><p><a href="https://example.test/x" target="_top" rel="opener">go</a></p>\n'
    )
    embedded = client.get("/view/latest.html", params={"embed": "1"})
    assert embedded.headers["content-type"] == "text/html; charset=utf-8"
    assert '<a href="https://example.test/x" target="_blank" rel="noreferrer noopener">go</a>' in embedded.text
    assert "sandbox" in embedded.headers["content-security-policy"]  # still inert: Mailpit's resize script is not added


def test_readyz_asks_the_store(running_sandbox: Sandbox, client: httpx.Client) -> None:
    ready = client.get("/readyz")
    assert (ready.status_code, ready.text) == (200, "ok")
    running_sandbox.store.close()  # a store that cannot answer a query: not ready
    broken = client.get("/readyz")
    assert (broken.status_code, broken.text) == (503, "Service Unavailable\n")
    assert client.get("/livez").status_code == 200  # alive all the same


def test_webui_configuration_is_mailpits_shape(client: httpx.Client) -> None:
    config = client.get("/api/v1/webui").json()
    assert set(config) == {"Label", "MessageRelay", "SpamAssassin", "ChaosEnabled", "DuplicatesIgnored",
                           "HideDeleteAllButton"}  # fmt: skip
    relay = config["MessageRelay"]
    assert relay["Enabled"] is False and relay["SMTPServer"] == ""  # no [release] upstream configured
    assert {"ReturnPath", "AllowedRecipients", "BlockedRecipients", "OverrideFrom"} <= set(relay)
    assert config["SpamAssassin"] is False and config["DuplicatesIgnored"] is False


def test_swagger_json_is_the_openapi_document(client: httpx.Client) -> None:
    swagger = client.get("/api/v1/swagger.json")
    assert swagger.status_code == 200 and swagger.json() == client.get("/api/sandbox/openapi.json").json()
    assert "/api/v1/webui" in swagger.json()["paths"]


def test_webui_reports_release_and_duplicates(sandbox_factory: Any) -> None:
    sb = sandbox_factory(release={"host": "upstream.test", "port": 2525, "allowed": "*@example.test",
                                  "return_path": "bounce@example.test"}, ignore_duplicate_ids=True)  # fmt: skip
    config = httpx.get(f"http://{sb.address('http')}/api/v1/webui", timeout=10).json()
    assert config["MessageRelay"] == {
        "Enabled": True, "SMTPServer": "upstream.test:2525", "ReturnPath": "bounce@example.test",
        "AllowedRecipients": "*@example.test", "BlockedRecipients": "", "OverrideFrom": "",
        "PreserveMessageIDs": False, "RecipientAllowlist": "*@example.test",
    }  # fmt: skip
    assert config["DuplicatesIgnored"] is True
