"""The sendmail command as PHP, cron and Git run it: by a symlink named sendmail and as a subcommand."""

from __future__ import annotations

import os
import subprocess
import sys
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailsandbox.app import Sandbox
from mailsandbox.sendmail import EX_TEMPFAIL, EX_USAGE, parse_args
from tests.conftest import require_binary

SCRIPT = Path(sys.executable).with_name("mailsandbox")  # the console script pip installed


@pytest.fixture
def sendmail(tmp_path: Path) -> Path:
    """A symlink named sendmail to the console script, as a user would put in /usr/sbin."""
    link = tmp_path / "bin" / "sendmail"
    link.parent.mkdir()
    link.symlink_to(SCRIPT)
    return link


def env_for(sb: Sandbox) -> dict[str, str]:
    return {**os.environ, "MAILSANDBOX_SMTP": str(sb.address("smtp"))}


def messages(sb: Sandbox) -> list[tuple[dict[str, Any], bytes]]:
    with httpx.Client(base_url=f"http://{sb.address('http')}", timeout=10) as client:
        listing = client.get("/api/v1/messages").json()["messages"]
        return [(m, client.get(f"/api/v1/message/{m['ID']}/raw").content) for m in reversed(listing)]


def run(command: str, stdin: bytes, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    # PHP's mail() does popen(sendmail_path, "w"): /bin/sh -c with the message on stdin.
    return subprocess.run(["sh", "-c", command], input=stdin, env=env, capture_output=True, timeout=60)


def test_php_style_sendmail_path(running_sandbox: Sandbox, sendmail: Path) -> None:
    # What PHP 8 writes for mail($to, $subject, $body, $headers): To, Subject, the extra headers, a blank
    # line and the body, with LF line ends; a body line of one dot must survive (-i).
    stdin = (b"To: ann@example.test\nSubject: Order 42\nX-PHP-Originating-Script: 1000:shop.php\n"
             b"From: shop@example.test\n\nThanks for your order.\n.\nA line after the dot.\n")  # fmt: skip
    done = run(f"{sendmail} -t -i", stdin, env_for(running_sandbox))
    assert done.returncode == 0, done.stderr
    [(summary, raw)] = messages(running_sandbox)
    assert summary["Subject"] == "Order 42" and summary["From"]["Address"] == "shop@example.test"
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed.get_content() == "Thanks for your order.\r\n.\r\nA line after the dot.\r\n"  # CRLF on the wire
    assert parsed["Message-ID"] and parsed["Date"]  # added, as a real sendmail does
    assert running_sandbox.store.get(summary["ID"]).envelope.rcpt_tos == ("ann@example.test",)  # type: ignore[union-attr]


def test_real_php_mail(running_sandbox: Sandbox, sendmail: Path) -> None:
    php = require_binary("php")
    code = (
        'exit(mail("ann@example.test", "From PHP", "Line one\\n.\\nLine three",'
        ' ["From" => "app@example.test", "Cc" => "cc@example.test"]) ? 0 : 1);'
    )
    done = subprocess.run(
        [php, "-n", "-d", f"sendmail_path={sendmail} -t -i", "-r", code],
        env=env_for(running_sandbox), capture_output=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout, done.stderr)
    [(summary, raw)] = messages(running_sandbox)
    assert summary["Subject"] == "From PHP"
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed.get_content().replace("\r\n", "\n").rstrip("\n") == "Line one\n.\nLine three"
    stored = running_sandbox.store.get(summary["ID"])
    assert stored is not None and set(stored.envelope.rcpt_tos) == {"ann@example.test", "cc@example.test"}
    assert stored.envelope.mail_from == "app@example.test"


def test_cron_style(running_sandbox: Sandbox, sendmail: Path) -> None:
    # Debian's cron: sendmail -FCronDaemon -i -B8BITMIME -oem MAILTO, a message without From.
    stdin = b"Subject: Cron <root@host> run-parts /etc/cron.daily\nTo: root@example.test\n\nsome output\n"
    done = run(f"{sendmail} -FCronDaemon -i -B8BITMIME -oem -f root@example.test root@example.test", stdin,
               env_for(running_sandbox))  # fmt: skip
    assert done.returncode == 0, done.stderr
    [(summary, _raw)] = messages(running_sandbox)
    assert summary["From"] == {"Name": "CronDaemon", "Address": "root@example.test"}


def test_git_style_recipients_as_arguments_and_subcommand(running_sandbox: Sandbox) -> None:
    # git send-email with sendmail: sendmail -i -f SENDER RECIPIENT...; here as `mailsandbox sendmail`.
    stdin = (b"From 1234abcd Mon Sep 17 00:00:00 2001\nFrom: Dev <dev@example.test>\nTo: list@example.test\n"
             b"Subject: [PATCH] fix\n\n---\n.\n diff\n")  # fmt: skip
    done = run(f"{SCRIPT} sendmail -i -f dev@example.test list@example.test maint@example.test", stdin,
               env_for(running_sandbox))  # fmt: skip
    assert done.returncode == 0, done.stderr
    [(summary, raw)] = messages(running_sandbox)
    stored = running_sandbox.store.get(summary["ID"])
    assert stored is not None and stored.envelope.rcpt_tos == ("list@example.test", "maint@example.test")
    assert raw.endswith(b"---\r\n.\r\n diff\r\n")  # the dot line went through SMTP dot-stuffed and back
    assert b"1234abcd" not in raw  # format-patch's From_ line is dropped, as sendmail does


def test_bcc_is_a_recipient_and_leaves_the_message(running_sandbox: Sandbox, sendmail: Path) -> None:
    stdin = (
        b"From: a@example.test\nTo: b@example.test\nBcc: hidden@example.test,\n  other@example.test\nSubject: s\n\nx\n"
    )
    done = run(f"{sendmail} -t -S {running_sandbox.address('smtp')}", stdin, dict(os.environ))
    assert done.returncode == 0, done.stderr
    [(summary, raw)] = messages(running_sandbox)
    stored = running_sandbox.store.get(summary["ID"])
    assert stored is not None
    assert set(stored.envelope.rcpt_tos) == {"b@example.test", "hidden@example.test", "other@example.test"}
    assert b"hidden@" not in raw and b"Bcc" not in raw and b"other@" not in raw


def test_without_i_a_dot_line_ends_the_message(running_sandbox: Sandbox, sendmail: Path) -> None:
    stdin = b"From: a@example.test\nTo: b@example.test\nSubject: s\n\nkept\n.\nnot read\n"
    done = run(f"{sendmail} -t", stdin, env_for(running_sandbox))
    assert done.returncode == 0, done.stderr
    [(_summary, raw)] = messages(running_sandbox)
    assert raw.endswith(b"\r\n\r\nkept\r\n") and b"not read" not in raw


def test_bs_speaks_smtp_on_stdio(running_sandbox: Sandbox, sendmail: Path) -> None:
    dialogue = (b"EHLO client\nMAIL FROM:<a@example.test>\nRCPT TO:<b@example.test>\nDATA\n"
                b"Subject: over stdio\n\nhello\n.\nQUIT\n")  # fmt: skip
    done = run(f"{sendmail} -bs", dialogue, env_for(running_sandbox))
    assert done.returncode == 0, done.stderr
    replies = done.stdout.decode()
    assert replies.startswith("220 ") and "354" in replies and "250 2.0.0 Ok: queued" in replies
    assert replies.rstrip().splitlines()[-1].startswith("221")
    [(summary, _raw)] = messages(running_sandbox)
    assert summary["Subject"] == "over stdio"


def test_failures_have_sendmail_exit_codes(tmp_path: Path, sendmail: Path) -> None:
    env = {**os.environ, "MAILSANDBOX_SMTP": "127.0.0.1:9"}  # nothing listens on discard
    done = run(f"{sendmail} -t -i", b"To: a@example.test\n\nx\n", env)
    assert done.returncode == EX_TEMPFAIL and b"cannot send" in done.stderr  # PHP's mail() returns false
    assert run(f"{sendmail} -Z", b"", env).returncode == EX_USAGE
    assert run(f"{sendmail} -i", b"Subject: no one\n\nx\n", env).returncode == EX_USAGE  # no recipients
    helped = run(f"{sendmail} --help", b"", env)
    assert helped.returncode == 0 and b"-t" in helped.stdout


def test_argument_syntax() -> None:
    opts = parse_args(["-ti", "-fme@example.test", "-F", "Full Name", "-oem", "-odb", "-S", "h:1", "a@x", "--", "-b@x"])
    assert opts.extract and not opts.dots_end and opts.sender == "me@example.test" and opts.full_name == "Full Name"
    assert opts.server == "h:1" and opts.recipients == ["a@x", "-b@x"] and opts.mode == "m"
    assert (
        not parse_args(["-oi"]).dots_end
        and parse_args(["-bs"]).mode == "s"
        and parse_args(["-r", "<x@y>"]).sender == "x@y"
    )
