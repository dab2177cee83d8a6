"""The caniemail.com support tables (a generated copy in data/caniemail.json) and Mailpit's scoring of them."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data" / "caniemail.json"


@dataclass(frozen=True)
class Feature:
    slug: str
    title: str
    description: str  # HTML: code, links and emphasis only
    url: str
    category: str
    tags: tuple[str, ...]
    keywords: str
    stats: dict[str, dict[str, dict[str, str]]]  # family -> platform -> version -> "y", "n", "a #1", "u"
    notes_by_num: dict[str, str]


@dataclass(frozen=True)
class Tables:
    updated: str
    families: dict[str, str]  # slug -> nice name
    platforms: dict[str, str]
    features: dict[str, Feature]

    def platform_families(self) -> dict[str, list[str]]:
        """Every platform and the client families tested on it (Mailpit's `Platforms`)."""
        found: dict[str, set[str]] = {}
        for feature in self.features.values():
            for family, platforms in feature.stats.items():
                for platform in platforms:
                    found.setdefault(platform, set()).add(self.families.get(family, family))
        return {platform: sorted(names) for platform, names in sorted(found.items())}


@functools.cache
def tables() -> Tables:
    return load(DATA)


def load(path: Path) -> Tables:
    """The tables of a copy that data/refresh.py generated."""
    raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    features = {
        item["slug"]: Feature(
            slug=item["slug"],
            title=item["title"],
            description=item["description"],
            url=item["url"],
            category=item["category"],
            tags=tuple(item["tags"]),
            keywords=item["keywords"],
            stats=item["stats"],
            notes_by_num=item["notes_by_num"],
        )
        for item in raw["data"]
    }
    names = raw["nicenames"]
    return Tables(raw["last_update_date"], names["family"], names["platform"], features)


def _support(value: str) -> tuple[str, str]:
    """A table cell -> (Mailpit's support word, note number). Like Mailpit, only a bare "y" or "n" is a plain
    yes or no: a supported-with-note ("y #1"), partial ("a") or unknown ("u") cell counts as partial."""
    rest = value.partition(" ")[2]
    note = ""
    for piece in rest.split():
        if piece.startswith("#") and piece[1:].isdigit():
            note = piece[1:]
    if value == "y":
        return "yes", note
    if value == "n":
        return "no", note
    return "partial", note


def warning(feature: Feature, found: int) -> dict[str, Any]:
    """Mailpit's `HTMLCheckWarning` for a feature the message uses `found` times."""
    data = tables()
    results = []
    counts = {"yes": 0, "no": 0, "partial": 0}
    for family in sorted(feature.stats):
        for platform in sorted(feature.stats[family]):
            for version, cell in sorted(feature.stats[family][platform].items()):
                support, note = _support(cell)
                counts[support] += 1
                family_name = data.families.get(family, family)
                platform_name = data.platforms.get(platform, platform)
                results.append({
                    "Name": f"{family_name} {platform_name} ({version})", "Platform": platform, "Family": family,
                    "Version": version, "Support": support, "NoteNumber": note,
                })  # fmt: skip
    total = sum(counts.values()) or 1
    return {
        "Slug": feature.slug,
        "Title": feature.title,
        "Description": feature.description,
        "URL": feature.url,
        "Category": feature.category,
        "Tags": list(feature.tags),
        "Keywords": "",  # Mailpit leaves it empty
        "Results": results,
        "NotesByNumber": dict(feature.notes_by_num),
        "Score": {
            "Found": found,
            "Supported": counts["yes"] / total * 100,
            "Partial": counts["partial"] / total * 100,
            "Unsupported": counts["no"] / total * 100,
        },
    }


def script_warning(found: int) -> dict[str, Any]:
    """Not in the tables: no email client runs JavaScript (Mailpit's own `html-script` entry)."""
    return {
        "Slug": "html-script", "Title": "<script> element",
        "Description": "JavaScript is not supported in any email client.", "URL": "", "Category": "html",
        "Tags": [], "Keywords": "", "Results": [], "NotesByNumber": {},
        "Score": {"Found": found, "Supported": 0.0, "Partial": 0.0, "Unsupported": 100.0},
    }  # fmt: skip
