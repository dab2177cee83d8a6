"""Installed under one name: a user's project with its own `web` and `sandbox` packages still gets the plugin."""

from __future__ import annotations

import subprocess
import sys

import pytest

USER_TEST = '''
import smtplib

import web.app
from sandbox import settings


def test_own_packages_and_the_plugin(mail_sandbox, outbox):
    assert web.app.NAME == "the user's web app" and settings.MODE == "test"
    with smtplib.SMTP(mail_sandbox.smtp_host, mail_sandbox.smtp_port, timeout=10) as smtp:
        smtp.sendmail("app@example.test", ["ann@example.test"], b"Subject: hello\\r\\n\\r\\nhi\\r\\n")
    assert outbox.wait_for(subject="hello").subject == "hello"
'''


def test_a_project_with_its_own_web_and_sandbox_packages(pytester: pytest.Pytester) -> None:
    pytester.mkpydir("web").joinpath("app.py").write_text('NAME = "the user\'s web app"\n')
    pytester.mkpydir("sandbox").joinpath("settings.py").write_text('MODE = "test"\n')
    pytester.makepyfile(test_user=USER_TEST)
    # A subprocess with the project's folder first on sys.path, as `python -m pytest` in it would have.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:xdist")
    result.assert_outcomes(passed=1)


def test_python_dash_m_from_a_project_with_its_own_sandbox_package(pytester: pytest.Pytester) -> None:
    pytester.mkpydir("sandbox").joinpath("__main__.py").write_text("raise SystemExit('the user package ran')\n")
    proc = subprocess.run([sys.executable, "-m", "mailsandbox", "--help"], cwd=pytester.path,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0 and "serve" in proc.stdout, proc.stderr
