"""pytest11 entry: `mail_sandbox` and `outbox` fixtures, the `mailsandbox` marker, options, ini settings."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

# The heavy imports (httpx, the sandbox itself) wait until a test asks for a fixture, so merely
# having the plugin installed costs other projects' test runs nothing.
if TYPE_CHECKING:
    from mailsandbox import Config, SigningKey
    from mailsandbox.pytest_plugin.controls import ChaosControl
    from mailsandbox.pytest_plugin.handle import SandboxHandle
    from mailsandbox.pytest_plugin.outbox import Outbox

MARKER = (
    "mailsandbox(*, zone=None, hosts=None, records=None): for this test only, load zone-file text "
    "(or a pathlib.Path) into the fake DNS, add records [(name, type, value[, ttl]) or dicts], and set "
    "simulated host behaviours {host: 'down' | 'tempfail' | 'permfail' | 'greylist' | 'slow' | dict}; "
    "undone after the test."
)
ISOLATION = ("auto", "time", "session")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mailsandbox", "mail sandbox (captured SMTP, fake DNS, simulated relay)")
    group.addoption(
        "--mailsandbox-url",
        dest="mailsandbox_url",
        metavar="URL",
        default=None,
        help="use the sandbox already running at URL (its HTTP API) instead of starting one in-process",
    )
    group.addoption(
        "--mailsandbox-smtp",
        dest="mailsandbox_smtp",
        metavar="HOST:PORT",
        default=None,
        help="with --mailsandbox-url: where that sandbox takes SMTP, if its API does not say",
    )
    group.addoption(
        "--mailsandbox-token",
        dest="mailsandbox_token",
        metavar="TOKEN",
        default=None,
        help="with --mailsandbox-url: the sandbox's --api-token (default: $MAILSANDBOX_API_TOKEN); for basic"
        " auth put the user in the URL: http://user:pass@host:8025",
    )
    group.addoption(
        "--mailsandbox-db",
        dest="mailsandbox_db",
        metavar="URL",
        default=None,
        help="the in-process sandbox's database: postgresql://... (one for the tests alone: each test empties"
        " it; '{worker}' in it becomes the xdist worker's id; also $MAILSANDBOX_PYTEST_DB); default in memory",
    )
    parser.addini("mailsandbox_url", "sandbox HTTP API URL to use instead of starting one (--mailsandbox-url)")
    parser.addini("mailsandbox_db", "the in-process sandbox's database (--mailsandbox-db); default in memory")
    parser.addini("mailsandbox_token", "bearer token of the sandbox at mailsandbox_url (--mailsandbox-token)")
    parser.addini("mailsandbox_smtp", "SMTP HOST:PORT of the sandbox at mailsandbox_url (--mailsandbox-smtp)")
    parser.addini("mailsandbox_timeout", "seconds the outbox waits before failing (default 5)", default="5")
    parser.addini(
        "mailsandbox_isolation",
        "with a sandbox URL: 'time' (an outbox shows mail that arrived during its test), 'session' (also "
        "only mail sent as mail_sandbox.smtp_username or to mail_sandbox.address(...)), 'auto' (session "
        "under pytest-xdist, else time)",
        default="auto",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)


def _setting(config: pytest.Config, name: str) -> str:
    value = config.getoption(name, default=None) or config.getini(name)
    return str(value).strip() if value else ""


def pytest_report_header(config: pytest.Config) -> str | None:
    url = _setting(config, "mailsandbox_url")
    if not url:
        return None
    parts = urlsplit(url)
    if parts.password:  # never print a password in the report
        url = parts._replace(netloc=f"{parts.username}:***@{parts.netloc.rpartition('@')[2]}").geturl()
    return f"mailsandbox: using {url}"


def _worker(config: pytest.Config) -> str | None:
    # Only this session's own config says it is an xdist worker: PYTEST_XDIST_WORKER is also
    # inherited by sessions a worker starts (pytester), which are no workers themselves.
    workerinput = getattr(config, "workerinput", None)
    if isinstance(workerinput, Mapping) and workerinput.get("workerid"):
        return str(workerinput["workerid"])
    return None


def _tag(config: pytest.Config) -> str | None:
    isolation = _setting(config, "mailsandbox_isolation") or "auto"
    if isolation not in ISOLATION:
        raise pytest.UsageError(f"mailsandbox_isolation must be one of {', '.join(ISOLATION)}, not {isolation!r}")
    worker = _worker(config)
    if isolation == "time" or (isolation == "auto" and worker is None):
        return None
    # Random per session, so two CI jobs sharing one sandbox do not share a tag either.
    return f"{worker or 'ms'}-{secrets.token_hex(3)}"


def _database(config: pytest.Config) -> str:
    """--mailsandbox-db (or $MAILSANDBOX_PYTEST_DB), `{worker}` replaced by the pytest-xdist worker's id
    (`main` without xdist): each worker's sandbox empties its database before every test, so workers
    need a database each."""
    db = _setting(config, "mailsandbox_db") or os.environ.get("MAILSANDBOX_PYTEST_DB", "").strip()
    return db.replace("{worker}", _worker(config) or "main") if db else ":memory:"


@pytest.fixture(scope="session")
def mail_sandbox_config(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Config:
    """The Config an in-process `mail_sandbox` starts with: every listener on a free loopback
    port, an in-memory store (or `--mailsandbox-db`'s), TLS material in a temporary directory. Override it
    to change that::

        @pytest.fixture(scope="session")
        def mail_sandbox_config(mail_sandbox_config):
            return mail_sandbox_config.replace(zones=["tests/example.zone"], dns_strict=True)
    """
    from mailsandbox import Config, Listen

    free = Listen("127.0.0.1", 0)  # the OS picks the port; the sandbox reports what it bound
    return Config(
        smtp=free,
        http=free,
        pop3=free,
        imap=free,
        dns=free,
        db=_database(request.config),
        data_dir=tmp_path_factory.mktemp("mailsandbox"),
        smtp_auth_allow_insecure=True,  # apps under test often log in over plain loopback SMTP
        enable_chaos=True,  # so a test can make SMTP fail on purpose (mail_chaos); every fault is off until set
    )


@pytest.fixture(scope="session")
def mail_sandbox(request: pytest.FixtureRequest) -> Iterator[SandboxHandle]:
    """A whole mail sandbox for the test session (one per pytest-xdist worker).

    Started in-process on free loopback ports (well under a second), or, with
    `--mailsandbox-url URL`, the one already running there. Point the code under test at
    `mail_sandbox.smtp_host` / `mail_sandbox.smtp_port`; `http_url`, `pop3_port`,
    `imap_port`, `dns_port` say where the rest listens, and `dns`, `hosts`, `clock`
    change the simulated world::

        def test_bounce(mail_sandbox, outbox):
            mail_sandbox.dns.add("example.test", "MX", "10 mx.example.test")
            mail_sandbox.hosts["mx.example.test"] = "permfail"
    """
    from mailsandbox.pytest_plugin.handle import SandboxHandle

    config = request.config
    timeout = float(_setting(config, "mailsandbox_timeout") or 5)
    url = _setting(config, "mailsandbox_url")
    if url:
        token = _setting(config, "mailsandbox_token") or os.environ.get("MAILSANDBOX_API_TOKEN") or None
        handle = SandboxHandle.connect(
            url, smtp=_setting(config, "mailsandbox_smtp") or None, tag=_tag(config), timeout=timeout, token=token
        )
    else:
        handle = SandboxHandle.start(request.getfixturevalue("mail_sandbox_config"), timeout=timeout)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def outbox(mail_sandbox: SandboxHandle) -> Outbox:
    """The mail sent during this test, emptied before it (an in-process sandbox is reset:
    messages, queue, run-time DNS records, host behaviours, clock)::

        def test_signup(outbox, mail_sandbox):
            signup("ann@example.test", smtp=(mail_sandbox.smtp_host, mail_sandbox.smtp_port))
            msg = outbox.wait_for(to="ann@example.test", subject="Welcome")
            assert msg.links[0].startswith("https://app.example/confirm/")
    """
    if not mail_sandbox.external:
        mail_sandbox.reset()  # a shared sandbox is never reset: the outbox shows only this test's mail
    return mail_sandbox.outbox()


@pytest.fixture
def dkim_key(mail_sandbox: SandboxHandle, request: pytest.FixtureRequest) -> Iterator[Callable[..., SigningKey]]:
    """Make DKIM key pairs for this test: `dkim_key(domain, selector, bits=2048)` generates an RSA key,
    publishes its public key as `selector._domainkey.domain` TXT in the fake DNS (removed after the
    test) and returns it: give `key.private_key` (PEM) to the code that signs, or sign with
    `key.sign(raw)`::

        def test_signed_welcome(outbox, dkim_key):
            key = dkim_key("app.test", "s2026")
            app.send_welcome("ann@example.test", dkim=(key.domain, key.selector, key.private_key))
            msg = outbox.wait_for(subject="Welcome")
            assert msg.auth.dkim == "pass", msg.auth.dkim.reason
    """
    from mailsandbox import generate_key

    request.getfixturevalue("outbox")  # reset first, so the published keys survive the reset
    published: list[tuple[str, str]] = []

    def make(domain: str, selector: str, bits: int = 2048) -> SigningKey:
        key = generate_key(domain, selector, bits)
        mail_sandbox.dns.add(key.record_name, "TXT", key.txt_record)
        published.append((key.record_name, key.txt_record))
        return key

    try:
        yield make
    finally:
        for name, value in published:
            mail_sandbox.dns.remove(name, "TXT", value)


@pytest.fixture
def mail_chaos(mail_sandbox: SandboxHandle) -> Iterator[ChaosControl]:
    """SMTP faults for this test, undone after it (the sandbox must run with chaos enabled, as the
    in-process one does)::

        def test_retries_a_tempfail(mail_chaos, outbox):
            mail_chaos.set(["rcpt:451 every=2"], messages_per_minute=10)
            app.send_welcome("ann@example.test")  # its first RCPT hears 451, the retry goes through
    """
    before = mail_sandbox.chaos.state()
    try:
        yield mail_sandbox.chaos
    finally:
        mail_sandbox.chaos.restore(before)


def _marker_options(
    *,
    zone: str | Path | Sequence[str | Path] | None = None,
    hosts: Mapping[str, str | Mapping[str, Any]] | None = None,
    records: Sequence[Any] | None = None,
) -> dict[str, Any]:
    return {"zone": zone, "hosts": hosts, "records": records}


@pytest.fixture(autouse=True)
def _mailsandbox_marker(request: pytest.FixtureRequest) -> Iterator[None]:
    marker = request.node.get_closest_marker("mailsandbox")
    if marker is None:
        yield
        return
    try:
        options, problem = _marker_options(*marker.args, **marker.kwargs), ""
    except TypeError as exc:
        options, problem = {}, str(exc)
    if problem:  # failed outside the except block, so the report carries no chained traceback
        pytest.fail(f"@pytest.mark.{MARKER.split(':')[0]}: {problem}", pytrace=False)
    request.getfixturevalue("outbox")  # reset first, so the marker's changes survive the reset
    handle: SandboxHandle = request.getfixturevalue("mail_sandbox")
    undo: Callable[[], None] = handle.apply(**options)
    try:
        yield
    finally:
        undo()
