"""The command line: serve with a config file and environment, send, and max-messages pruning."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailsandbox.app import Sandbox
from mailsandbox.cli import build_parser, main
from mailsandbox.config import Config


def test_send_composes_a_message_with_attachment(running_sandbox: Sandbox, tmp_path: Path) -> None:
    attachment = tmp_path / "notes.txt"
    attachment.write_text("attached words")
    smtp = running_sandbox.address("smtp")
    code = main(["send", "--server", str(smtp), "--from", "ann@example.test", "-t", "bob@example.test",
                 "-s", "From the CLI", "--body", "hello", "--html", "<p>hello</p>", "--attach", str(attachment)])  # fmt: skip
    assert code == 0
    with httpx.Client(base_url=f"http://{running_sandbox.address('http')}") as client:
        message = client.get("/api/v1/message/latest").json()
    assert message["Subject"] == "From the CLI" and message["Text"] == "hello\n"
    assert message["HTML"] == "<p>hello</p>\n"
    assert [a["FileName"] for a in message["Attachments"]] == ["notes.txt"]
    assert message["Envelope"]["RcptTo"] == ["bob@example.test"]


def test_send_reads_a_whole_message_from_stdin(running_sandbox: Sandbox, monkeypatch: Any) -> None:
    import io

    raw = b"From: a@example.test\r\nTo: b@example.test\r\nBcc: hidden@example.test\r\nSubject: piped\r\n\r\nbody\r\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    assert main(["send", "--server", str(running_sandbox.address("smtp"))]) == 0
    with httpx.Client(base_url=f"http://{running_sandbox.address('http')}") as client:
        message = client.get("/api/v1/message/latest").json()
    assert message["Subject"] == "piped"
    assert sorted(message["Envelope"]["RcptTo"]) == ["b@example.test", "hidden@example.test"]


def test_send_takes_a_piped_message_where_to_says(running_sandbox: Sandbox, monkeypatch: Any) -> None:
    import io

    raw = b"From: a@example.test\r\nSubject: no To header\r\n\r\nbody\r\n"  # as a template might be
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    assert main(["send", "--server", str(running_sandbox.address("smtp")), "--to", "c@example.test"]) == 0
    with httpx.Client(base_url=f"http://{running_sandbox.address('http')}") as client:
        message = client.get("/api/v1/message/latest").json()
    assert message["Subject"] == "no To header" and message["Envelope"]["RcptTo"] == ["c@example.test"]


def test_send_reports_a_refused_connection(capsys: Any) -> None:
    assert main(["send", "--server", "127.0.0.1:1", "-t", "x@example.test", "-s", "s", "--body", "b"]) == 1
    assert "mailsandbox send:" in capsys.readouterr().err


def test_max_messages_prunes_the_oldest(sandbox_factory: Any) -> None:
    sb = sandbox_factory(max_messages=3)
    smtp = str(sb.address("smtp"))
    for i in range(5):
        assert main(["send", "--server", smtp, "-t", "x@example.test", "-s", f"m{i}", "--body", "b"]) == 0
    with httpx.Client(base_url=f"http://{sb.address('http')}") as client:
        listing = client.get("/api/v1/messages").json()
    assert listing["total"] == 3
    assert [m["Subject"] for m in listing["messages"]] == ["m4", "m3", "m2"]


def test_serve_reads_config_file_and_environment_and_stops_cleanly(tmp_path: Path) -> None:
    config = tmp_path / "sandbox.toml"
    config.write_text('smtp = "127.0.0.1:0"\npop3 = "off"\nimap = "off"\ndns = "off"\n')
    env = {**os.environ, "MAILSANDBOX_HTTP": "127.0.0.1:0", "MAILSANDBOX_DATA_DIR": str(tmp_path / "d")}
    proc = subprocess.Popen([sys.executable, "-m", "mailsandbox", "serve", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("Press Ctrl-C"):
            break
    listeners = {line.split()[0]: line.split()[1] for line in lines[1:-1]}
    assert set(listeners) == {"smtp", "http"}, lines
    assert str(tmp_path / "d" / "mailsandbox.db") in lines[0]
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "Traceback" not in err and "stopped" in out


def test_serve_reports_a_port_in_use(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "mailsandbox", "serve", "--smtp", f"127.0.0.1:{port}", "--http", "off",
             "--pop3", "off", "--imap", "off", "--dns", "off", "--data-dir", str(tmp_path)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert proc.returncode == 1
    assert "mailsandbox:" in proc.stderr and "Traceback" not in proc.stderr


def test_exposed_listeners_without_ui_auth_warn_at_start(
    sandbox_factory: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from mailsandbox.config import Listen

    caplog.set_level(logging.WARNING, logger="mailsandbox")
    sandbox_factory(smtp=Listen("0.0.0.0", 0), pop3=None, imap=None)
    [line] = [r.getMessage() for r in caplog.records if "without UI authentication" in r.getMessage()]
    assert "smtp" in line and "--ui-auth-file" in line
    caplog.clear()
    users = tmp_path / "users"
    users.write_text("ann:pw\n")
    sandbox_factory(smtp=Listen("0.0.0.0", 0), http=Listen("0.0.0.0", 0), ui_auth_file=users, smtp_auth="a:b")
    assert not [r for r in caplog.records if "beyond loopback" in r.getMessage()]
    caplog.clear()
    sandbox_factory()  # loopback only: nothing to say
    assert not [r for r in caplog.records if "beyond loopback" in r.getMessage()]


def test_a_bad_ui_auth_file_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text("ann:$apr1$salt$hash\n")
    command = [sys.executable, "-m", "mailsandbox", "serve", "--smtp", "127.0.0.1:0", "--http", "127.0.0.1:0",
               "--pop3", "off", "--imap", "off", "--dns", "off", "--db", ":memory:", "--data-dir", str(tmp_path),
               "--ui-auth-file", str(users)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "only bcrypt hashes are supported" in done.stderr and "Traceback" not in done.stderr


def _subcommand(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    found: argparse.ArgumentParser = sub.choices[name]
    return found


@pytest.mark.parametrize("command", ["serve", "send"])
def test_every_flag_has_help_and_shows_its_default(command: str) -> None:
    parser = _subcommand(command)
    for action in parser._actions:
        assert action.help, action.option_strings or action.dest
        takes_value = action.nargs != 0 and action.option_strings and action.dest != "help"
        # Every flag that takes a value says its default, except the few whose default is "none given".
        if takes_value and action.dest not in ("config", "tls_key", "zones", "subject", "to", "html", "attach"):
            assert "default" in action.help, action.option_strings
    text = " ".join(parser.format_help().split())  # without the line wrapping
    assert "(default: 127.0.0.1:1025)" in text
    if command == "serve":
        assert "--hostname NAME" in text and "(default: mailsandbox.local)" in text and "Received:" in text
        assert "(default: 0)" in text and "(default: on)" in text and "MAILSANDBOX_" in text


def test_every_serve_flag_sets_a_config_field() -> None:
    from mailsandbox.cli import SERVE_FLAGS

    fields = set(Config.__dataclass_fields__)
    assert {flag.field for flag in SERVE_FLAGS} <= fields
    args = build_parser().parse_args(["serve", "--max-messages", "7", "--zone", "a", "--zone", "b", "--fsync"])
    config = Config.load(environ={}, overrides={k: v for k, v in vars(args).items() if k in fields})
    assert config.max_messages == 7 and config.zones == (Path("a"), Path("b")) and config.fsync
