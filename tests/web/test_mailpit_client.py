"""The real npm Mailpit client (`mailpit-api`, pinned in mailpit_client/package-lock.json) against a running
sandbox: every method of it, after a varied corpus went in over SMTP. drive.mjs runs the methods and checks
the types the client declares and the effects Mailpit documents; here each method is one test, and every
one must pass. sa-check needs a spamd: a real one is started when the machine has it (always in CI)."""

from __future__ import annotations

import contextlib
import json
import shutil
import smtplib
import subprocess
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailsandbox.config import Listen
from tests.checks.spamd import running_spamd
from tests.conftest import IN_CI, require_binary

CLIENT = Path(__file__).parent / "mailpit_client"
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201a5e2a1d90000000049454e44ae426082"
)
RELEASE_TO = "x@partner.example"

# Mailpit serves sa-check only with SpamAssassin configured: the sandbox gets a real spamd when the
# machine has one (CI does), and without one the method can only get Mailpit's 404.
NO_SPAMD = "no spamd on this machine: sa-check answers Mailpit's 404 until --spamassassin names one"
METHODS = [
    "getInfo", "getConfiguration", "getMessageSummary", "getMessageHeaders", "getMessageAttachment",
    "getAttachmentThumbnail", "getMessageSource", "releaseMessage", "sendMessage", "listMessages",
    "setReadStatus", "searchMessages", "waitForMessage", "waitForMessages", "htmlCheck", "linkCheck",
    "spamAssassinCheck", "getTags", "setTags", "renameTag", "deleteTag", "getChaosTriggers", "setChaosTriggers",
    "renderMessageHTML", "renderMessageText", "deleteMessagesBySearch", "deleteMessages",
]  # fmt: skip


def _corpus() -> list[tuple[EmailMessage, list[str]]]:
    """(message, envelope recipients): an HTML newsletter with a cid image, Cc and List-Unsubscribe; several
    attachments including an attached .eml; plain text with an envelope-only (Bcc) recipient; one to delete."""
    news = EmailMessage(policy=SMTP)
    news["From"] = "News Desk <sender@example.test>"
    news["To"] = "Ännchen <ann@example.test>"
    news["Cc"] = "cc-person@example.test"
    news["Subject"] = "Newsletter für Ännchen ✉"
    news["Message-ID"] = "<news-1@example.test>"
    news["List-Unsubscribe"] = "<mailto:leave@news.example.test>, <https://news.example.test/unsubscribe?u=1>"
    news["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    news.set_content("Grüße! Read it online.")
    news.add_alternative(
        '<html><body><img src="cid:logo@news"><p>Grüße <a href="https://news.example.test/read">read</a></p>'
        "</body></html>",
        subtype="html",
    )
    html_part = news.get_payload()[-1]  # type: ignore[index]
    assert isinstance(html_part, EmailMessage)
    html_part.add_related(PNG, maintype="image", subtype="png", cid="<logo@news>")

    inner = EmailMessage(policy=SMTP)
    inner["From"] = "someone@elsewhere.test"
    inner["To"] = "ann@example.test"
    inner["Subject"] = "The forwarded one"
    inner.set_content("inside")
    several = EmailMessage(policy=SMTP)
    several["From"] = "sender@example.test"
    several["To"] = "bob@example.test"
    several["Subject"] = "Several attachments"
    several.set_content("See attached.")
    several.add_attachment(b"%PDF-1.4 report", maintype="application", subtype="pdf", filename="report.pdf")
    several.add_attachment("note one\n", filename="notes.txt")
    several.add_attachment(inner, filename="forwarded.eml")

    plain = EmailMessage(policy=SMTP)
    plain["From"] = "sender@example.test"
    plain["To"] = "carol@example.test"
    plain["Subject"] = "Plain hello"
    plain.set_content("Hello from the plain message.")

    disposable = EmailMessage(policy=SMTP)
    disposable["From"] = "other@example.test"
    disposable["To"] = "dan@example.test"
    disposable["Subject"] = "Disposable"
    disposable.set_content("bye")
    return [
        (news, ["ann@example.test", "cc-person@example.test"]),
        (several, ["bob@example.test"]),
        (plain, ["carol@example.test", "secret@example.test"]),
        (disposable, ["dan@example.test"]),
    ]


def _installed(npm: str) -> None:
    if not (CLIENT / "node_modules" / "mailpit-api" / "package.json").exists():
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=CLIENT, capture_output=True, text=True,
                              timeout=300, check=False)  # fmt: skip
        if done.returncode != 0:
            message = f"npm ci failed: {done.stderr[-2000:]}"
            if IN_CI:
                pytest.fail(message)
            pytest.skip(message)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from mailsandbox.app import SandboxThread
    from tests.conftest import free_config

    node, npm = require_binary("node"), require_binary("npm")
    _installed(npm)
    tmp = tmp_path_factory.mktemp("mailpit-client")
    stack = contextlib.ExitStack()
    spam: dict[str, Any] = {}
    if IN_CI or shutil.which("spamd"):
        spam["spamassassin"] = Listen("127.0.0.1", stack.enter_context(running_spamd(require_binary("spamd"))))
    upstream_thread = SandboxThread(free_config(tmp, db=":memory:"))
    upstream = upstream_thread.start()
    smtp = upstream.address("smtp")
    thread = SandboxThread(free_config(tmp, release={"host": smtp.host, "port": smtp.port}, enable_chaos=True,
                                      **spam))  # fmt: skip
    sandbox = thread.start()
    try:
        capture = sandbox.address("smtp")
        with smtplib.SMTP(capture.host, capture.port) as s:
            for message, rcpts in _corpus():
                s.send_message(message, to_addrs=rcpts)
        http = sandbox.address("http")
        base = f"http://{http.host}:{http.port}"
        listing = httpx.get(f"{base}/api/v1/messages", timeout=10).json()
        context = {"ids": {m["Subject"]: m["ID"] for m in listing["messages"]}, "releaseTo": RELEASE_TO,
                   "corpus": listing["total"]}  # fmt: skip
        assert context["corpus"] == 4
        done = subprocess.run([node, str(CLIENT / "drive.mjs"), base, json.dumps(context)], cwd=CLIENT,
                              capture_output=True, text=True, timeout=240, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        upstream_http = upstream.address("http")
        released = httpx.get(f"http://{upstream_http.host}:{upstream_http.port}/api/v1/messages", timeout=10).json()
        out["__released__"] = [(m["Subject"], [a["Address"] for a in m["To"]]) for m in released["messages"]]
        out["__spamd__"] = bool(spam)
        return out
    finally:
        thread.stop()
        upstream_thread.stop()
        stack.close()


def test_every_method_of_the_client_has_a_check(results: dict[str, Any]) -> None:
    assert results["__missing__"] == []
    assert sorted(k for k in results if not k.startswith("__")) == sorted(METHODS)


@pytest.mark.parametrize("method", METHODS)
def test_method(results: dict[str, Any], method: str) -> None:
    outcome = results[method]
    if method == "spamAssassinCheck" and not results["__spamd__"]:
        assert not outcome["ok"] and "404" in outcome["error"], outcome  # Mailpit's answer without SpamAssassin
        pytest.xfail(NO_SPAMD)
    assert outcome["ok"], outcome["error"]


def test_release_reached_the_upstream(results: dict[str, Any]) -> None:
    assert results["releaseMessage"]["ok"], results["releaseMessage"]["error"]
    assert results["__released__"] == [("Plain hello", ["carol@example.test"])]
