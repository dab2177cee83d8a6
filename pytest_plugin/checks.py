"""The message checks as test code reads them: `msg.html_check()`, `msg.link_check()`, `msg.spam_check()`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class HtmlCheck:
    """Mailpit's html-check answer. `supported`, `partial`, `unsupported`: the overall percentages;
    `"css-display-flex" in check`; `check.warning(slug)`; `check.unsupported_in("outlook")`."""

    supported: float
    partial: float
    unsupported: float
    warnings: list[Mapping[str, Any]] = field(repr=False)
    data: Mapping[str, Any] = field(repr=False)  # the whole answer

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HtmlCheck:
        total = data["Total"]
        return cls(float(total["Supported"]), float(total["Partial"]), float(total["Unsupported"]),
                   list(data["Warnings"]), data)  # fmt: skip

    @property
    def slugs(self) -> list[str]:
        """The caniemail.com features the HTML uses, worst first ("css-display-flex", "image-webp", ...)."""
        return [w["Slug"] for w in self.warnings]

    def __contains__(self, slug: object) -> bool:
        return slug in self.slugs

    def warning(self, slug: str) -> Mapping[str, Any] | None:
        return next((w for w in self.warnings if w["Slug"] == slug), None)

    def unsupported_in(self, family: str) -> list[str]:
        """The features that some client of `family` ("outlook", "gmail", "apple-mail") does not support."""
        return [w["Slug"] for w in self.warnings if any(
            r["Family"] == family and r["Support"] == "no" for r in w["Results"])]  # fmt: skip


@dataclass(frozen=True)
class LinkCheck:
    """Mailpit's link-check answer: `errors`, `links` ({"URL", "StatusCode", "Status"}), `broken`, `status(url)`."""

    errors: int
    links: list[Mapping[str, Any]]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LinkCheck:
        return cls(int(data["Errors"]), list(data["Links"]))

    @property
    def broken(self) -> list[str]:
        """The URLs that answered 400 or more, or not at all (0)."""
        return [link["URL"] for link in self.links if link["StatusCode"] >= 400 or link["StatusCode"] == 0]

    def status(self, url: str) -> int | None:
        return next((int(link["StatusCode"]) for link in self.links if link["URL"] == url), None)


@dataclass(frozen=True)
class SpamCheck:
    """Mailpit's sa-check answer: `score`, `is_spam`, `rules` (names), `error` ("" when spamd answered)."""

    score: float
    is_spam: bool
    rules: list[str]
    error: str = ""
    data: Mapping[str, Any] = field(default_factory=dict, repr=False)  # the whole answer

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SpamCheck:
        rules = [str(rule["Name"]) for rule in data.get("Rules") or ()]
        return cls(float(data["Score"]), bool(data["IsSpam"]), rules, str(data.get("Error") or ""), data)
