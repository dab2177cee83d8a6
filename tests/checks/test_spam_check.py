"""The spam score from a real spamd (Debian's spamassassin, started on a free loopback port with the
shipped rules and no network tests), through our client and through the sandbox's sa-check."""

from __future__ import annotations

import asyncio
import smtplib
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from mailsandbox.checks.spam import SpamAssassin, parse_report
from mailsandbox.config import Listen
from mailsandbox.pytest_plugin.checks import SpamCheck
from tests.checks.spamd import free_port, running_spamd
from tests.conftest import require_binary

MESSAGE = b"From: ann@example.test\r\nTo: bob@example.test\r\nSubject: hello\r\n\r\nJust a note.\r\n"
GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


@pytest.fixture(scope="module")
def spamd() -> Iterator[int]:
    """spamd on 127.0.0.1:PORT, local tests only; yields PORT."""
    with running_spamd(require_binary("spamd")) as port:
        yield port


def check(port: int, raw: bytes) -> dict[str, Any]:
    return asyncio.run(SpamAssassin("127.0.0.1", port, timeout=60).check(raw))


def test_score_and_rules_agree_with_spamc(spamd: int) -> None:
    result = check(spamd, MESSAGE)
    assert set(result) == {"IsSpam", "Error", "Score", "Rules"}
    assert result["Error"] == "" and result["IsSpam"] is False
    names = {rule["Name"] for rule in result["Rules"]}
    assert {"MISSING_DATE", "MISSING_MID"} <= names
    assert all(set(rule) == {"Score", "Name", "Description"} and rule["Description"] for rule in result["Rules"])
    spamc = subprocess.run([require_binary("spamc"), "-d", "127.0.0.1", "-p", str(spamd), "-c"], input=MESSAGE,
                           capture_output=True, timeout=60)  # fmt: skip
    score = float(spamc.stdout.decode().split("/")[0])
    assert result["Score"] == pytest.approx(score, abs=0.1)
    assert result["Score"] == pytest.approx(sum(rule["Score"] for rule in result["Rules"]), abs=0.3)


def test_gtube_is_spam(spamd: int) -> None:
    result = check(spamd, MESSAGE.replace(b"Just a note.", GTUBE))
    assert result["IsSpam"] is True and result["Score"] >= 1000
    assert "GTUBE" in {rule["Name"] for rule in result["Rules"]}
    # The pytest plugin's view of the same answer.
    seen = SpamCheck.from_json(result)
    assert seen.is_spam and seen.score >= 1000 and "GTUBE" in seen.rules and seen.error == ""
    assert not SpamCheck.from_json(check(spamd, MESSAGE)).is_spam


def test_a_spamd_that_is_not_there_is_an_error_not_an_exception() -> None:
    result = check(free_port(), MESSAGE)
    assert result["Error"] and result["Score"] == 0 and result["Rules"] is None


def test_a_reply_that_is_not_spamd() -> None:
    assert parse_report(b"HTTP/1.1 400 Bad Request\r\n\r\n")["Error"]
    assert parse_report(b"SPAMD/1.1 76 Bad header line\r\n\r\n")["Error"] == "spamd: 76 Bad header line"


def _send(sandbox: Any, body: str) -> str:
    smtp = sandbox.address("smtp")
    with smtplib.SMTP(smtp.host, smtp.port) as s:
        s.sendmail("ann@example.test", ["bob@example.test"], f"Subject: s\r\n\r\n{body}\r\n")
    http = sandbox.address("http")
    with httpx.Client(base_url=f"http://{http.host}:{http.port}", timeout=60) as client:
        return str(client.get("/api/v1/messages").json()["messages"][0]["ID"])


def test_sa_check_through_the_sandbox(spamd: int, sandbox_factory: Callable[..., Any]) -> None:
    sandbox = sandbox_factory(spamassassin=Listen("127.0.0.1", spamd))
    message_id = _send(sandbox, GTUBE.decode())
    http = sandbox.address("http")
    with httpx.Client(base_url=f"http://{http.host}:{http.port}", timeout=60) as client:
        for key in (message_id, "latest"):
            answer = client.get(f"/api/v1/message/{key}/sa-check")
            assert answer.status_code == 200
            assert answer.json()["IsSpam"] is True
        assert client.get("/api/v1/message/nope/sa-check").status_code == 404


def test_sa_check_without_spamassassin_says_so(sandbox_factory: Callable[..., Any]) -> None:
    sandbox = sandbox_factory()
    message_id = _send(sandbox, "hi")
    http = sandbox.address("http")
    answer = httpx.get(f"http://{http.host}:{http.port}/api/v1/message/{message_id}/sa-check", timeout=10)
    assert answer.status_code == 404
    assert "no SpamAssassin service defined" in answer.json()["Error"]
    assert "--spamassassin" in answer.json()["Error"]
