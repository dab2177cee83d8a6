"""Zone files as users write them: errors name the file and the line at fault; $TTL may be left out."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailsandbox.zone import DEFAULT_TTL, Zone, ZoneError

GOOD = "$ORIGIN shop.test.\n@ MX 10 mx\nmx A 192.0.2.10\n"


def test_the_readme_marker_zone_loads_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "shop.zone"
    path.write_text(GOOD)  # no $TTL, no SOA: as the README's marker example
    zone = Zone.from_files([path])
    assert zone.mx("shop.test").hosts == [(10, "mx.shop.test")]
    assert {r["ttl"] for r in zone.records() if r["type"] in ("MX", "A")} == {DEFAULT_TTL}


def test_ttl_directive_and_own_ttls_still_win(tmp_path: Path) -> None:
    path = tmp_path / "t.zone"
    path.write_text("$TTL 90\n$ORIGIN t.test.\n@ MX 10 mx\nmx 45 A 192.0.2.10\n")
    ttls = {r["type"]: r["ttl"] for r in Zone.from_files([path]).records() if r["type"] in ("MX", "A")}
    assert ttls == {"MX": 90, "A": 45}


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (GOOD + "bad A 192.0.2.300\n", 4),  # read to the end of its line before it fails
        (GOOD + "bad A 192.0.2.300", 4),  # no final newline
        (GOOD + "\n; a comment\n\nbad BOGUS x\n", 7),  # fails mid-line
        (GOOD + "bad MX ten mx\nok A 192.0.2.1\n", 4),
        ("$TTL 60\n" + GOOD + 'txt TXT ( "a"\n  "b"\n  ) extra\nbad A 1.2.3\n', 8),  # after a multi-line record
        (GOOD + "$ORIGIN other.test.\n@ MX 10 mx\nmx A 192.0.2\n", 6),  # in a second zone of the file
        (GOOD + "\r\nbad A x\r\n", 5),  # CRLF line ends
    ],
)
def test_errors_name_the_line_at_fault(tmp_path: Path, text: str, line: int) -> None:
    path = tmp_path / "bad.zone"
    path.write_bytes(text.encode())
    with pytest.raises(ZoneError, match=rf"^{path}:{line}: "):
        Zone.from_files([path])


def test_zone_text_errors_count_from_the_text_too() -> None:
    with pytest.raises(ZoneError, match=r"^<text>:3: "):
        Zone().load_text("$ORIGIN a.test.\n@ MX 10 mx\nmx A nope\n")
