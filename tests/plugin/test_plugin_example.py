"""The recipes under examples/: small real apps and their tests using the fixtures, run as a user would run
them (each in its own pytest process, from a copy of its folder)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from _plugin_sources import INNER_OPTIONS

EXAMPLES = Path(__file__).parents[2] / "examples"
# Each example and how many tests it has: a test that stopped being collected is a failure too.
TESTS = {"password_reset": 3, "django_signup": 2, "flask_mail_invite": 2, "fastapi_receipts": 3, "celery_reminders": 2}


def test_every_example_is_run() -> None:
    assert {p.parent.name for p in EXAMPLES.glob("*/pytest.ini")} == set(TESTS)


@pytest.mark.parametrize("name", sorted(TESTS))
def test_example_passes(pytester: pytest.Pytester, name: str) -> None:
    shutil.copytree(EXAMPLES / name, pytester.path, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    # A process of its own: Django and Celery configure themselves once per process.
    result = pytester.runpytest_subprocess(*INNER_OPTIONS, "-W", "error::pytest.PytestUnraisableExceptionWarning")
    result.assert_outcomes(passed=TESTS[name])
