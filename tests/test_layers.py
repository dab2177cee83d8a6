"""Import rules between layers (ARCHITECTURE.md, "Layers and import rules"), checked on the source, and the public
API's exports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sandbox

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


def ours(names: set[str]) -> set[str]:
    return {n for n in names if n.split(".")[0] in ("sandbox", "web", "pytest_plugin")}


def files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def allowed(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize(
    ("folder", "may_import"),
    [
        # Sans-IO cores: no asyncio, sockets or storage; only plain data.
        ("sandbox/protocols", ("sandbox.protocols", "sandbox.models", "sandbox.zone", "sandbox.mime")),
        ("sandbox/store", ("sandbox.store", "sandbox.models", "sandbox.events", "sandbox.clock", "sandbox.mime",
                           "sandbox.mime")),
        # The web layer sees storage, data, events, the pure MIME and HTML parsers, the bounded thread pools and
        # the failed-login throttle; never servers or the relay.
        ("web", ("web", "sandbox.store", "sandbox.models", "sandbox.events", "sandbox.config", "sandbox.mime",
                 "sandbox.html_tokens", "sandbox.executors", "sandbox.throttle",
                 "sandbox.checks")),
        # The plugin uses the public sandbox API, the pure MIME model (so it reads mail as the API does) and HTTP.
        ("pytest_plugin", ("pytest_plugin", "sandbox.mime", "sandbox.Sandbox", "sandbox.SandboxThread", "sandbox.Config",
                           "sandbox.Listen", "sandbox.ManualClock", "sandbox.Address", "sandbox.Envelope",
                           "sandbox.StoredMessage", "sandbox.SigningKey", "sandbox.generate_key")),
    ],
)  # fmt: skip
def test_layer_imports(folder: str, may_import: tuple[str, ...]) -> None:
    wrong = {}
    for path in files(folder):
        names = {n for n in ours(imports(path)) if n != "sandbox"}
        # "from sandbox import Config" records both "sandbox" and "sandbox.Config".
        bad = sorted(n for n in names if not allowed(n, may_import))
        if bad:
            wrong[str(path.relative_to(ROOT))] = bad
    assert not wrong


def test_checks_stay_below_the_servers() -> None:
    # The message checks read stored messages; they know nothing of servers, the relay or the web.
    for path in files("sandbox/checks"):
        assert not {
            n for n in ours(imports(path)) if n.split(".")[1:2] and n.split(".")[1] in ("servers", "relay", "app")
        }, path
        assert not any(n.split(".")[0] == "web" for n in imports(path)), path


def test_cores_use_no_io() -> None:
    for path in files("sandbox/protocols"):
        assert not imports(path) & {"asyncio", "socket", "ssl", "sqlite3", "selectors"}, path


def test_only_the_composition_root_imports_web() -> None:
    for path in files("sandbox"):
        if path.name == "app.py" and path.parent.name == "sandbox":
            continue
        assert not any(n.split(".")[0] == "web" for n in imports(path)), path


def test_public_api_exports() -> None:
    assert sorted(sandbox.__all__) == sandbox.__all__
    for name in sandbox.__all__:
        assert getattr(sandbox, name).__name__ == name
