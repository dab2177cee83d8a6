"""examples/password_reset: a small real app, and its tests using the fixtures, run as a user would run them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parents[2] / "examples" / "password_reset"


def test_example_app_end_to_end(pytester: pytest.Pytester) -> None:
    for path in EXAMPLE.glob("*.py"):
        shutil.copy(path, pytester.path / path.name)
    result = pytester.runpytest_inprocess(
        "--strict-markers", "-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function"
    )
    result.assert_outcomes(passed=3)
