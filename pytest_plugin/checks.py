"""The message checks as test code reads them: `msg.html_check()`, `msg.link_check()`, `msg.spam_check()`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class HtmlCheck:
    """Mailpit's html-check answer: `supported`, `partial` and `unsupported` are the overall percentages;
    `"css-display-flex" in check`; `check.warning(slug)`; `check.unsupported_in("outlook")`."""

    data: Mapping[str, Any] = field(repr=False)

    @property
    def supported(self) -> float:
        return float(self.data["Total"]["Supported"])

    @property
    def partial(self) -> float:
        return float(self.data["Total"]["Partial"])

    @property
    def unsupported(self) -> float:
        return float(self.data["Total"]["Unsupported"])

    @property
    def warnings(self) -> list[Mapping[str, Any]]:
        return list(self.data["Warnings"])

    @property
    def slugs(self) -> list[str]:
        """The caniemail.com features the HTML uses, worst first ("css-display-flex", "image-webp", ...)."""
        return [w["Slug"] for w in self.data["Warnings"]]

    def __contains__(self, slug: object) -> bool:
        return slug in self.slugs

    def warning(self, slug: str) -> Mapping[str, Any] | None:
        return next((w for w in self.data["Warnings"] if w["Slug"] == slug), None)

    def unsupported_in(self, family: str) -> list[str]:
        """The features that some client of `family` ("outlook", "gmail", "apple-mail") does not support."""
        return [w["Slug"] for w in self.data["Warnings"] if any(
            r["Family"] == family and r["Support"] == "no" for r in w["Results"])]  # fmt: skip

    def __repr__(self) -> str:
        return f"<HtmlCheck {self.supported:.0f}% supported: {', '.join(self.slugs[:5]) or 'no warnings'}>"


@dataclass(frozen=True)
class LinkCheck:
    """Mailpit's link-check answer: `errors`, `links` ({"URL", "StatusCode", "Status"}), `broken`, `status(url)`."""

    data: Mapping[str, Any] = field(repr=False)

    @property
    def errors(self) -> int:
        return int(self.data["Errors"])

    @property
    def links(self) -> list[Mapping[str, Any]]:
        return list(self.data["Links"])

    @property
    def broken(self) -> list[str]:
        """The URLs that answered 400 or more, or not at all (0)."""
        return [link["URL"] for link in self.data["Links"] if link["StatusCode"] >= 400 or link["StatusCode"] == 0]

    def status(self, url: str) -> int | None:
        return next((int(link["StatusCode"]) for link in self.data["Links"] if link["URL"] == url), None)

    def __repr__(self) -> str:
        return f"<LinkCheck {len(self.links)} links, {self.errors} errors: {', '.join(self.broken[:3])}>"


@dataclass(frozen=True)
class SpamCheck:
    """Mailpit's sa-check answer: `score`, `is_spam`, `rules` (names), `error` ("" when spamd answered)."""

    data: Mapping[str, Any] = field(repr=False)

    @property
    def score(self) -> float:
        return float(self.data["Score"])

    @property
    def is_spam(self) -> bool:
        return bool(self.data["IsSpam"])

    @property
    def error(self) -> str:
        return str(self.data.get("Error") or "")

    @property
    def rules(self) -> list[str]:
        return [rule["Name"] for rule in self.data.get("Rules") or ()]

    def __repr__(self) -> str:
        return f"<SpamCheck score {self.score} {'spam' if self.is_spam else 'not spam'}: {', '.join(self.rules)}>"
