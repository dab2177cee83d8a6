"""data/refresh.py, the script that regenerates the HTML check's copy of the caniemail.com tables: run on a small
local package tarball of the npm package's shape (no npm, no network), what it writes is what the check loads,
in the committed copy's format, with the attribution kept."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType
from typing import Any

from mailsandbox.checks import caniemail

SCRIPT = caniemail.DATA.parent / "refresh.py"
COMMITTED = (caniemail.DATA, caniemail.DATA.parent / "LICENSE-caniemail.md")
LICENCE = "MIT License\n\nCopyright (c) Test Author\n\nPermission is hereby granted, free of charge...\n"

# Two features as the npm package's data/caniemail.json has them, with the fields the copy drops.
DATA: dict[str, Any] = {
    "api_version": "1.0.4",
    "last_update_date": "2030-01-02 03:04:05 +0000",
    "nicenames": {
        "family": {"outlook": "Outlook", "gmail": "Gmail"},
        "platform": {"windows": "Windows", "desktop-webmail": "Desktop Webmail"},
        "support": {"supported": "Supported", "mitigated": "Partially supported"},
        "category": {"css": "CSS", "html": "HTML"},
    },
    "data": [
        {
            "slug": "html-video",
            "title": "<video> element",
            "description": None,
            "url": "https://www.caniemail.com/features/html-video/",
            "category": "html",
            "tags": None,
            "keywords": None,
            "last_test_date": "2029-01-01",
            "test_url": "https://example.test/t",
            "test_results_url": None,
            "stats": {"outlook": {"windows": {"2019": "n"}}},
            "notes": None,
            "notes_by_num": None,
        },
        {
            "slug": "css-padding",
            "title": "padding",
            "description": "Use `padding` on <td> **only**, see [the test](https://example.test/padding).",
            "url": "https://www.caniemail.com/features/css-padding/",
            "category": "css",
            "tags": ["layout"],
            "keywords": "padding, spacing",
            "last_test_date": "2029-01-01",
            "test_url": "https://example.test/t",
            "test_results_url": None,
            "stats": {"outlook": {"windows": {"2019": "a #1"}}, "gmail": {"desktop-webmail": {"2023-01": "y"}}},
            "notes": "Partial.",
            "notes_by_num": {"1": "Ignored on `<div>` & <p>."},
        },
    ],
}


def _package(path: Path) -> Path:
    """caniemail-9.9.9.tgz as `npm pack` writes it: everything under package/."""
    meta = {"name": "caniemail", "version": "9.9.9", "homepage": "https://example.test/caniemail#readme"}
    files = {
        "package/package.json": json.dumps(meta),
        "package/data/caniemail.json": json.dumps(DATA),
        "package/LICENSE": LICENCE,
    }
    tgz = path / "caniemail-9.9.9.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        for name, text in files.items():
            blob = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return tgz


def _refresh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                          check=False)  # fmt: skip


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("caniemail_refresh", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _digests() -> list[str]:
    return [hashlib.sha256(path.read_bytes()).hexdigest() for path in COMMITTED]


def test_refresh_from_a_package_tarball_writes_what_the_check_loads(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    before = _digests()
    done = _refresh("--out", str(out), str(_package(tmp_path)))
    assert done.returncode == 0, done.stderr
    assert "2 features" in done.stdout
    assert _digests() == before  # --out: the committed copy is untouched

    generated = out / "caniemail.json"
    text = generated.read_text(encoding="utf-8")
    new, committed = json.loads(text), json.loads(caniemail.DATA.read_text(encoding="utf-8"))
    # The committed copy's format: the same keys at the top and in every feature, one feature a line.
    assert set(new) == set(committed)
    assert {frozenset(item) for item in new["data"]} == {frozenset(item) for item in committed["data"]}
    assert text.count("\n") == len(DATA["data"]) + 2
    assert new["nicenames"] == {"family": DATA["nicenames"]["family"], "platform": DATA["nicenames"]["platform"]}

    # The attribution: the package and version in the copy, the licence beside it.
    assert new["source"] == "npm caniemail 9.9.9: data from caniemail.com (MIT licence, see LICENSE-caniemail.md)"
    licence = (out / "LICENSE-caniemail.md").read_text()
    assert "`caniemail` 9.9.9 (https://example.test/caniemail#readme)" in licence
    assert LICENCE.strip() in licence and "https://www.caniemail.com" in licence

    # What the checker loads from it.
    tables = caniemail.load(generated)
    assert tables.updated == "2030-01-02 03:04:05 +0000"
    assert tables.families == {"outlook": "Outlook", "gmail": "Gmail"}
    assert list(tables.features) == ["css-padding", "html-video"]  # sorted by slug
    padding, video = tables.features["css-padding"], tables.features["html-video"]
    assert padding.description == (
        "Use <code>padding</code> on &lt;td&gt; <strong>only</strong>, see "
        '<a href="https://example.test/padding" target="_blank">the test</a>.'
    )  # the Markdown rendered, the markup of the data escaped
    assert padding.notes_by_num == {"1": "Ignored on <code>&lt;div&gt;</code> &amp; &lt;p&gt;."}
    assert padding.tags == ("layout",) and padding.keywords == "padding, spacing"
    assert padding.stats["outlook"]["windows"] == {"2019": "a #1"}
    assert (video.description, video.tags, video.keywords, video.notes_by_num) == ("", (), "", {})  # nulls
    scored = caniemail.warning(padding, 2)
    assert scored["NotesByNumber"] == {"1": padding.notes_by_num["1"]}
    assert scored["Score"] == {"Found": 2, "Supported": 50.0, "Partial": 50.0, "Unsupported": 0.0}


def test_refresh_from_a_data_file_keeps_the_licence(tmp_path: Path) -> None:
    (tmp_path / "LICENSE-caniemail.md").write_text("kept\n")
    data = tmp_path / "caniemail.json"
    data.write_text(json.dumps(DATA))
    done = _refresh("--out", str(tmp_path), str(data))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "LICENSE-caniemail.md").read_text() == "kept\n"
    assert caniemail.load(data).features.keys() == {"css-padding", "html-video"}
    assert "caniemail.com" in json.loads(data.read_text())["source"]


def test_the_committed_copy_is_the_scripts_output() -> None:
    """The committed copy is in the script's exact format, its licence names the same package version, and the
    check's tables are loaded from it."""
    text = caniemail.DATA.read_text(encoding="utf-8")
    raw = json.loads(text)
    assert _script()._dumps(raw) == text
    version = raw["source"].removeprefix("npm caniemail ").split(":")[0]
    assert version and version[0].isdigit()
    assert f"`caniemail` {version} " in COMMITTED[1].read_text()
    assert caniemail.tables() == caniemail.load(caniemail.DATA)
    assert len(caniemail.tables().features) == len(raw["data"]) > 100
