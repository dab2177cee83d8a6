"""Every way a new user gets the command line wrong: one line on stderr naming the file, address or setting
and what to do, a non-zero exit, never a traceback. Each case runs the real command in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from mailsandbox.app import Sandbox

MAILSANDBOX = [sys.executable, "-m", "mailsandbox"]
# Every listener off but SMTP on a free port: a serve that wrongly starts is stopped by the timeout.
QUIET = ["--smtp", "127.0.0.1:0", "--http", "off", "--pop3", "off", "--imap", "off", "--dns", "off"]


def run(args: list[str], cwd: Path, stdin: bytes = b"", env: dict[str, str] | None = None) -> tuple[int, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MAILSANDBOX_")}
    environ["MAILSANDBOX_DATA_DIR"] = str(cwd / "data")
    proc = subprocess.run([*MAILSANDBOX, *args], cwd=cwd, input=stdin, capture_output=True, timeout=20,
                          env={**environ, **(env or {})})  # fmt: skip
    return proc.returncode, proc.stderr.decode()


def one_line(code: int, err: str, *expected: str) -> str:
    """The error is a single line, without a traceback, that contains each expected piece."""
    assert code != 0, err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("mailsandbox"), line
    for piece in expected:
        assert piece in line, line
    return line


@pytest.fixture
def here(tmp_path: Path) -> Path:
    return tmp_path


# -- send ------------------------------------------------------------------------------------------------


def test_send_server_not_host_port(here: Path) -> None:
    code, err = run(["send", "--server", "nonsense", "-t", "a@example.test", "-s", "s", "--body", "b"], here)
    one_line(code, err, "--server", "'nonsense'", "HOST:PORT")


def test_send_missing_attachment(here: Path) -> None:
    code, err = run(["send", "--attach", str(here / "missing.pdf"), "-t", "a@example.test"], here)
    one_line(code, err, "--attach", "missing.pdf", "no such file")


def test_send_empty_stdin(here: Path) -> None:
    code, err = run(["send", "a@example.test"], here, stdin=b"")
    one_line(code, err, "stdin", "empty", "--subject")


def test_send_message_without_from_is_sent_from_the_default(here: Path, running_sandbox: Sandbox) -> None:
    # An IndexError on some Python patch releases: getaddresses() of no From: is [] there.
    smtp = str(running_sandbox.address("smtp"))
    code, err = run(["send", "--server", smtp], here, stdin=b"To: b@example.test\r\nSubject: no from\r\n\r\nhi\r\n")
    assert (code, err) == (0, "")
    with httpx.Client(base_url=f"http://{running_sandbox.address('http')}") as client:
        message = client.get("/api/v1/message/latest").json()
    assert message["Subject"] == "no from" and message["Envelope"]["MailFrom"] == "sender@example.test"


def test_send_to_a_server_that_is_not_there(here: Path) -> None:
    code, err = run(["send", "--server", "127.0.0.1:1", "-t", "b@example.test", "-s", "s", "--body", "b"], here)
    assert code == 1
    one_line(code, err, "127.0.0.1:1", "refused", "--server")


def test_send_nothing_to_send_to(here: Path) -> None:
    code, err = run(["send"], here, stdin=b"Subject: no one\r\n\r\nhi\r\n")
    one_line(code, err, "no recipients", "--to")


# -- serve: settings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--max-messages", "-5"], ("--max-messages", "-5", "0 or more")),
        (["--max-message-size", "0"], ("--max-message-size", "1 or more")),
        (["--max-messages", "lots"], ("--max-messages", "'lots'", "whole number")),
        (["--max-connections", "-1"], ("--max-connections", "0 or more")),
        (["--tls-cert", "cert.pem"], ("--tls-cert", "--tls-key")),
        (["--tls-key", "key.pem"], ("--tls-key", "--tls-cert")),
        (["--smtp", "999.1.1.1:25"], ("--smtp", "999.1.1.1", "not an IPv4 address", "give HOST:PORT", "127.0.0.1")),
        (["--smtp", "1.2.3:25"], ("--smtp", "1.2.3", "not an IPv4 address")),
        (["--smtp", "[::g]:25"], ("--smtp", "::g", "not an IPv6 address", "[::1]")),
        (["--http", "127.0.0.1:99999"], ("--http", "HOST:PORT")),
        (["--smtp-auth", "nopassword"], ("--smtp-auth", "user:password")),
        (["--smtp-auth", "@missing-users"], ("--smtp-auth", "missing-users")),
    ],
)
def test_serve_bad_flag(here: Path, flags: list[str], expected: tuple[str, ...]) -> None:
    code, err = run(["serve", *QUIET, *flags], here)
    assert code == 2
    one_line(code, err, *expected)


def test_serve_bad_environment_variable_is_named(here: Path) -> None:
    code, err = run(["serve", *QUIET], here, env={"MAILSANDBOX_MAX_MESSAGES": "lots"})
    one_line(code, err, "MAILSANDBOX_MAX_MESSAGES", "'lots'")
    code, err = run(["serve", *QUIET], here, env={"MAILSANDBOX_DNS_STRICT": "maybe"})
    one_line(code, err, "MAILSANDBOX_DNS_STRICT", "'maybe'", "true or false")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("smtp = \n", ("config file", "sandbox.toml", "not valid TOML", "line 1")),
        ('max-messages = "lots"\n', ("config file", "sandbox.toml", "max-messages", "'lots'")),
        ("max-messages = -5\n", ("config file", "sandbox.toml", "max-messages", "0 or more")),
        ("smpt = '127.0.0.1:25'\n", ("config file", "sandbox.toml", "unknown setting 'smpt'")),
    ],
)
def test_serve_bad_config_file(here: Path, text: str, expected: tuple[str, ...]) -> None:
    (here / "sandbox.toml").write_text(text)
    code, err = run(["serve", "--config", "sandbox.toml", *QUIET], here)
    assert code == 2
    one_line(code, err, *expected)


def test_serve_missing_config_file(here: Path) -> None:
    code, err = run(["serve", "--config", "absent.toml", *QUIET], here)
    one_line(code, err, "config file absent.toml", "No such file")


# -- serve: the database ---------------------------------------------------------------------------------


def test_db_is_a_directory(here: Path) -> None:
    code, err = run(["serve", "--db", ".", *QUIET], here)
    one_line(code, err, "database .", "is a directory", "--db")


def test_db_is_not_sqlite(here: Path) -> None:
    (here / "notes.db").write_text("these are my notes\n")
    code, err = run(["serve", "--db", "notes.db", *QUIET], here)
    one_line(code, err, "database notes.db", "not an SQLite database")
    assert (here / "notes.db").read_text() == "these are my notes\n"  # left as it was


def test_db_in_a_missing_directory_makes_no_directories(here: Path) -> None:
    target = here / "nonexistent" / "dir" / "x.db"
    code, err = run(["serve", "--db", str(target), *QUIET], here)
    one_line(code, err, str(target), "does not exist", "--db")
    assert not (here / "nonexistent").exists()


def test_db_in_an_unwritable_directory(here: Path) -> None:
    if os.geteuid() == 0:  # root writes anywhere a mode allows nothing: sysfs refuses even root
        if not Path("/sys/kernel").is_dir():
            pytest.skip("no sysfs to stand for an unwritable directory")
        target = Path("/sys/kernel/mailsandbox.db")
    else:
        locked = here / "locked"
        locked.mkdir(mode=0o555)
        target = locked / "x.db"
    code, err = run(["serve", "--db", str(target), *QUIET], here)
    one_line(code, err, str(target), "writable", "--db")


# -- serve: TLS files ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pem_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pem")
    ca = trustme.CA()
    ca.issue_cert("localhost").cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    ca.issue_cert("other").private_key_pem.write_to_path(str(folder / "other-key.pem"))
    (folder / "not-pem.txt").write_text("not a certificate\n")
    return folder


def test_tls_cert_missing(here: Path, pem_files: Path) -> None:
    code, err = run(["serve", "--tls-cert", "absent.pem", "--tls-key", str(pem_files / "other-key.pem"), *QUIET], here)
    one_line(code, err, "--tls-cert absent.pem", "No such file")


def test_tls_cert_not_pem(here: Path, pem_files: Path) -> None:
    bad = str(pem_files / "not-pem.txt")
    code, err = run(["serve", "--tls-cert", bad, "--tls-key", str(pem_files / "other-key.pem"), *QUIET], here)
    one_line(code, err, f"--tls-cert {bad}", "not a PEM certificate")


def test_tls_key_of_another_certificate(here: Path, pem_files: Path) -> None:
    cert, key = str(pem_files / "cert.pem"), str(pem_files / "other-key.pem")
    code, err = run(["serve", "--tls-cert", cert, "--tls-key", key, *QUIET], here)
    one_line(code, err, f"--tls-key {key}", "does not match", cert)


# -- serve: addresses ------------------------------------------------------------------------------------


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port held by another socket, on TCP and UDP (DNS binds both)."""
    with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen()
        port = tcp.getsockname()[1]
        udp.bind(("127.0.0.1", port))
        yield port


@pytest.mark.parametrize("flag", ["--http", "--dns", "--smtp", "--imap"])
def test_port_in_use_names_the_listener_and_address(here: Path, taken_port: int, flag: str) -> None:
    listeners = dict(zip(QUIET[::2], QUIET[1::2], strict=True))
    listeners[flag] = f"127.0.0.1:{taken_port}"
    if flag != "--smtp":
        listeners["--smtp"] = "off"
    code, err = run(["serve", *(x for pair in listeners.items() for x in pair)], here)
    assert code == 1
    one_line(code, err, f"{flag} 127.0.0.1:{taken_port}", "already in use", f"{flag} HOST:PORT")


def test_address_not_of_this_machine(here: Path) -> None:
    # 192.0.2.1 (TEST-NET-1) is a valid address that no interface here holds.
    code, err = run(["serve", *QUIET, "--smtp", "192.0.2.1:2525"], here)
    one_line(code, err, "--smtp 192.0.2.1:2525", "not an address this machine can listen on", "127.0.0.1")


# -- zone files ------------------------------------------------------------------------------------------


def test_bad_zone_file_names_file_and_line(here: Path) -> None:
    (here / "shop.zone").write_text("$ORIGIN shop.test.\n@ MX 10 mx\n\nmx A 192.0.2.300\n")
    code, err = run(["serve", *QUIET, "--zone", "shop.zone"], here)
    one_line(code, err, "shop.zone:4:", "192.0.2.300")  # the line itself: dnspython says only "malformed"


def unreadable_file(here: Path) -> Path:
    """A file this process may not read: mode 000, or as root (whom modes do not stop) a write-only sysctl."""
    if os.geteuid() != 0:
        target = here / "locked.zone"
        target.write_text("$ORIGIN shop.test.\n@ MX 10 mx\n")
        target.chmod(0)
    else:
        target = Path("/proc/sys/vm/compact_memory")
    try:
        target.read_bytes()
    except PermissionError:
        return target
    except OSError:
        pass
    pytest.skip(f"no file here that {'root' if os.geteuid() == 0 else 'this user'} is refused")


@pytest.mark.parametrize("kind", ["not readable", "a directory", "not UTF-8", "missing"])
def test_unreadable_zone_file_is_named(here: Path, kind: str) -> None:
    expected: tuple[str, ...]
    if kind == "not readable":
        zone, expected = unreadable_file(here), ("cannot be read", "Permission denied")
    elif kind == "a directory":
        zone, expected = here / "shop.zone", ("is a directory", "--zone takes a zone file")
        zone.mkdir()
    elif kind == "not UTF-8":
        zone, expected = here / "shop.zone", ("not UTF-8", "byte 0xe9", "save it as UTF-8")
        zone.write_bytes("$ORIGIN caf\u00e9.test.\n@ MX 10 mx\n".encode("latin-1"))
    else:
        zone, expected = here / "absent.zone", ("cannot be read", "No such file")
    code, err = run(["serve", *QUIET, "--zone", str(zone)], here)
    assert code == 1
    one_line(code, err, f"zone file {zone}:", *expected)


def test_readme_marker_zone_saved_as_a_file_serves(here: Path) -> None:
    (here / "shop.zone").write_text("$ORIGIN shop.test.\n@ MX 10 mx\nmx A 192.0.2.10\n")  # no $TTL
    proc = subprocess.Popen([*MAILSANDBOX, "serve", *QUIET, "--zone", "shop.zone", "--data-dir", str(here / "d")],
                            cwd=here, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("mailsandbox "), first + (proc.stderr.read() if proc.stderr else "")
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


# -- the command itself ----------------------------------------------------------------------------------


def test_no_subcommand_prints_help_and_fails(here: Path) -> None:
    proc = subprocess.run(MAILSANDBOX, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "serve" in proc.stderr and "send" in proc.stderr and "usage:" in proc.stderr


def test_version(here: Path) -> None:
    from importlib.metadata import version

    proc = subprocess.run([*MAILSANDBOX, "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"mailsandbox {version('mailsandbox')}"
