"""examples/password_reset: a small real app, and its tests using the fixtures, run as a user would run them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from _plugin_sources import INNER_OPTIONS

EXAMPLE = Path(__file__).parents[2] / "examples" / "password_reset"


def test_example_app_end_to_end(pytester: pytest.Pytester) -> None:
    for path in [*EXAMPLE.glob("*.py"), EXAMPLE / "pytest.ini"]:
        shutil.copy(path, pytester.path / path.name)
    result = pytester.runpytest_inprocess(*INNER_OPTIONS)
    result.assert_outcomes(passed=3)
