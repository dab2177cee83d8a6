"""The plugin across processes: pytest-xdist workers, and a sandbox started by the CLI (--mailsandbox-url)."""

from __future__ import annotations

import re
import signal
import smtplib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from _plugin_sources import BASIC, INNER_OPTIONS, SEND

from tests.conftest import ON_POSTGRES

OPTIONS = INNER_OPTIONS


@dataclass(frozen=True)
class CliSandbox:
    url: str
    smtp: tuple[str, int]


def _serve(folder: Path, *flags: str) -> Iterator[CliSandbox]:
    """`mailsandbox serve` on free ports with `flags`, as a CI service container would run it."""
    command = [
        str(Path(sys.executable).with_name("mailsandbox")), "serve",
        "--smtp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--pop3", "off", "--imap", "off", "--dns", "off",
        "--db", ":memory:", "--data-dir", str(folder), *flags,
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:  # the CLI prints where each listener bound, then this line
        lines.append(line)
        if line.startswith("Press Ctrl-C"):
            break
    text = "".join(lines)
    http = re.search(r"^\s+http\s+(http://\S+)", text, re.MULTILINE)
    smtp = re.search(r"^\s+smtp\s+(\S+):(\d+)$", text, re.MULTILINE)
    assert http and smtp, text
    try:
        yield CliSandbox(http.group(1), (smtp.group(1), int(smtp.group(2))))
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)


@pytest.fixture(scope="module")
def cli_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliSandbox]:
    yield from _serve(tmp_path_factory.mktemp("cli"), "--smtp-auth-allow-insecure")


def test_xdist_workers_get_their_own_sandbox(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    if ON_POSTGRES:  # a database each: a worker empties its own before every test
        from tests.store_contract.pg import fresh_database, shared_cluster

        base = fresh_database()
        for worker in ("gw0", "gw1"):
            shared_cluster().create_database(f"{base.rsplit('/', 1)[1]}_{worker}")
        monkeypatch.setenv("MAILSANDBOX_PYTEST_DB", base + "_{worker}")
    pytester.makepyfile(
        test_workers=SEND
        + """
import os
import pytest

@pytest.mark.parametrize("n", range(6))
def test_own_outbox(outbox, mail_sandbox, n):
    worker = os.environ["PYTEST_XDIST_WORKER"]
    with open(f"port-{worker}-{n}", "w") as fh:
        fh.write(str(mail_sandbox.smtp_port))
    send(mail_sandbox, subject=f"n{n}", to=("ann@example.test",))
    assert [m.subject for m in outbox.wait(1)] == [f"n{n}"]
"""
    )
    result = pytester.runpytest_inprocess(*OPTIONS, "-p", "xdist", "-n", "2")
    result.assert_outcomes(passed=6)
    ports: dict[str, set[str]] = {}
    for path in pytester.path.glob("port-*"):
        ports.setdefault(path.name.split("-")[1], set()).add(path.read_text())
    assert all(len(p) == 1 for p in ports.values()), ports  # one sandbox per worker, for its session
    assert len({p for ps in ports.values() for p in ps}) == len(ports)  # and no two workers share one


def test_url_mode_same_fixtures(pytester: pytest.Pytester, cli_sandbox: CliSandbox) -> None:
    # Mail that was there before the run: the shared sandbox is never reset, the outbox ignores it.
    with smtplib.SMTP(*cli_sandbox.smtp) as smtp:
        smtp.sendmail("old@example.test", ["ann@example.test"], b"Subject: before\r\n\r\nold\r\n")
    before = httpx.get(cli_sandbox.url + "/api/v1/messages", trust_env=False).json()["messages"]
    pytester.makepyfile(test_basic=BASIC)
    result = pytester.runpytest_inprocess(*OPTIONS, "--mailsandbox-url", cli_sandbox.url)
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines([f"mailsandbox: using {cli_sandbox.url}"])
    for message in before:
        response = httpx.get(f"{cli_sandbox.url}/api/v1/message/{message['ID']}", trust_env=False)
        assert response.status_code == 200


def test_url_mode_isolates_xdist_workers(pytester: pytest.Pytester, cli_sandbox: CliSandbox) -> None:
    pytester.makeini(f"[pytest]\nmailsandbox_url = {cli_sandbox.url}\n")
    pytester.makepyfile(
        test_shared=SEND
        + """
import pytest

@pytest.mark.parametrize("n", range(8))
def test_sees_only_its_own_mail(outbox, mail_sandbox, n):
    assert mail_sandbox.external and mail_sandbox.tag
    # Every worker mails the same address at once: SMTP AUTH marks whose mail it is ...
    send(mail_sandbox, subject=f"auth {n}", to=("ann@example.test",), login=True)
    # ... and so does a tagged recipient address.
    send(mail_sandbox, subject=f"tagged {n}", to=(mail_sandbox.address("bob@example.test"),))
    # Mail nobody marked belongs to no session.
    send(mail_sandbox, subject=f"foreign {n}", to=("ann@example.test",))
    assert sorted(m.subject for m in outbox.wait(2)) == [f"auth {n}", f"tagged {n}"]
    outbox.assert_nothing_sent(subject="foreign")
    assert "from other test sessions hidden" in outbox.report()
"""
    )
    result = pytester.runpytest_inprocess(*OPTIONS, "-p", "xdist", "-n", "2")
    result.assert_outcomes(passed=8)


LOCKED = (
    SEND
    + """
def test_locked_sandbox(outbox, mail_sandbox):
    send(mail_sandbox, subject="through the lock")
    [message] = outbox.wait(1)
    assert message.subject == "through the lock" and "pw" not in mail_sandbox.http_url
"""
)


@pytest.fixture(scope="module")
def locked_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliSandbox]:
    """A shared sandbox locked with --ui-auth-file and --api-token."""
    folder = tmp_path_factory.mktemp("locked")
    (folder / "users").write_text("ci:pw-123\n")
    yield from _serve(folder, "--ui-auth-file", str(folder / "users"), "--api-token", "tok-9")


def test_url_mode_with_credentials(pytester: pytest.Pytester, locked_sandbox: CliSandbox) -> None:
    assert httpx.get(locked_sandbox.url + "/api/v1/messages", trust_env=False).status_code == 401
    pytester.makepyfile(test_locked=LOCKED)
    with_user = locked_sandbox.url.replace("http://", "http://ci:pw-123@")
    result = pytester.runpytest_inprocess(*OPTIONS, "--mailsandbox-url", with_user)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"mailsandbox: using {locked_sandbox.url.replace('http://', 'http://ci:***@')}"])
    assert "pw-123" not in result.stdout.str()
    result = pytester.runpytest_inprocess(
        *OPTIONS, "--mailsandbox-url", locked_sandbox.url, "--mailsandbox-token", "tok-9"
    )
    result.assert_outcomes(passed=1)
    result = pytester.runpytest_inprocess(*OPTIONS, "--mailsandbox-url", locked_sandbox.url)
    result.assert_outcomes(errors=1)  # no credentials: the fixture says why, the test does not run
    result.stdout.fnmatch_lines(["*401*"])


def test_in_process_sandbox_with_ui_auth(pytester: pytest.Pytester, tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text("ann:secret\n")
    pytester.makeconftest(
        f"""
import pytest

@pytest.fixture(scope="session")
def mail_sandbox_config(mail_sandbox_config):
    return mail_sandbox_config.replace(ui_auth_file={str(users)!r})
"""
    )
    pytester.makepyfile(test_locked=LOCKED)
    result = pytester.runpytest_inprocess(*OPTIONS)
    result.assert_outcomes(passed=1)
