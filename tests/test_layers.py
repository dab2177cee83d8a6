"""Import rules between layers (ARCHITECTURE.md, "Layers and import rules"), checked on the source, and the public
API's exports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mailsandbox

ROOT = Path(__file__).resolve().parent.parent


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


S, WEB, PLUGIN = "mailsandbox", "mailsandbox.web", "mailsandbox.pytest_plugin"


def ours(names: set[str]) -> set[str]:
    return {n for n in names if n == S or n.startswith(S + ".")}


def files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def allowed(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize(
    ("folder", "may_import"),
    [
        # Sans-IO cores: no asyncio, sockets or storage; only plain data.
        ("sandbox/protocols", (f"{S}.protocols", f"{S}.models", f"{S}.zone", f"{S}.mime")),
        ("sandbox/store", (f"{S}.store", f"{S}.models", f"{S}.events", f"{S}.clock", f"{S}.mime")),
        # The web layer sees storage, data, events, the pure MIME and HTML parsers, the bounded thread pools,
        # the failed-login throttle and the message checks; never servers or the relay.
        ("web", (WEB, f"{S}.store", f"{S}.models", f"{S}.events", f"{S}.config", f"{S}.mime", f"{S}.html_tokens",
                 f"{S}.executors", f"{S}.throttle", f"{S}.checks")),
        # The plugin uses the public mailsandbox API, the pure MIME model (so it reads mail as the API does)
        # and HTTP.
        ("pytest_plugin", (PLUGIN, f"{S}.mime", *(f"{S}.{name}" for name in mailsandbox.__all__))),
    ],
)  # fmt: skip
def test_layer_imports(folder: str, may_import: tuple[str, ...]) -> None:
    wrong = {}
    for path in files(folder):
        names = {n for n in ours(imports(path)) if n != S}
        # "from mailsandbox import Config" records both "mailsandbox" and "mailsandbox.Config".
        bad = sorted(n for n in names if not allowed(n, may_import))
        if bad:
            wrong[str(path.relative_to(ROOT))] = bad
    assert not wrong


def test_checks_stay_below_the_servers() -> None:
    # The message checks read stored messages; they know nothing of servers, the relay or the web.
    for path in files("sandbox/checks"):
        assert not {n for n in imports(path) if allowed(n, (f"{S}.servers", f"{S}.relay", f"{S}.app", WEB))}, path


def test_cores_use_no_io() -> None:
    for path in files("sandbox/protocols"):
        assert not imports(path) & {"asyncio", "socket", "ssl", "sqlite3", "selectors"}, path


def test_only_the_composition_root_imports_web() -> None:
    for path in files("sandbox"):
        if path.relative_to(ROOT) == Path("sandbox/app.py"):
            continue
        assert not any(allowed(n, (WEB, PLUGIN)) for n in imports(path)), path


def test_nothing_imports_the_folder_names() -> None:
    # Installed, the folders are mailsandbox, mailsandbox.web and mailsandbox.pytest_plugin: an import of
    # `web` or `sandbox` would find a user's own package of that name.
    for folder in ("sandbox", "web", "pytest_plugin", "tests", "bench", "examples"):
        for path in files(folder):
            assert not {n for n in imports(path) if n.split(".")[0] in ("sandbox", "web", "pytest_plugin")}, path


def test_every_package_folder_is_installed() -> None:
    # The folders map onto mailsandbox by name in pyproject.toml; a package missing there is missing from
    # the wheel, though the editable install of a checkout would still find it.
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    homes = {"sandbox": S, "web": WEB, "pytest_plugin": PLUGIN}
    found = set()
    for folder, name in homes.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            found.add(".".join([name, *init.parent.relative_to(ROOT / folder).parts]))
    assert found == listed


def test_public_api_exports() -> None:
    assert sorted(mailsandbox.__all__) == mailsandbox.__all__
    for name in mailsandbox.__all__:
        assert getattr(mailsandbox, name).__name__ == name
