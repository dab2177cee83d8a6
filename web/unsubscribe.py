"""List-Unsubscribe (RFC 2369, RFC 8058) checked as Mailpit checks it: the links, and what is wrong."""

from __future__ import annotations

import itertools
import re

_COMMENT = re.compile(r"\([^()]*+\)")
_LINK = re.compile(r"<([^<>]*+)>")
_MAILTO = re.compile(r"mailto:[a-zA-Z0-9]")
_HTTP = re.compile(r"https?://[a-zA-Z0-9]", re.IGNORECASE)


def check(value: str) -> tuple[list[str], str]:
    """(links, errors): at most one mailto: and one http(s) link, each in <>, separated by commas."""
    value = _COMMENT.sub("", value).strip()
    matches = list(_LINK.finditer(value))
    if not matches:
        return [], f'"{value}" no valid unsubscribe links found'
    if not (value.startswith("<") and value.endswith(">")):
        return [], f'"{value}" should be enclosed in <>'
    if len(matches) > 2:
        return [], f'"{value}" should include a maximum of one email and one HTTP link'
    for before, after in itertools.pairwise(matches):
        if value[before.end() : after.start()].strip(" \t") != ",":
            return [], f'"{value}" <> should be split with a comma and optional spaces'
    links: list[str] = []
    errors: list[str] = []
    seen: set[str] = set()
    for match in matches:
        link = match.group(1)
        kind = "mailto" if _MAILTO.match(link) else "http" if _HTTP.match(link) else ""
        if any(c.isspace() for c in link):
            errors.append(f'"{link}" should not contain spaces')
        elif not kind:
            errors.append(f'"{link}" should start with either http(s):// or mailto:')
        elif kind in seen:
            errors.append(f'"{link}" should only contain one {"mailto:" if kind == "mailto" else "HTTP link"}')
        else:
            seen.add(kind)
            links.append(link)
    return links, ", ".join(errors)
