"""Message tags, as Mailpit has them: cleaned names, unique across the store whatever their case.

A message's tags are one column, `messages.tags`: the names joined by commas (a clean name has no comma),
sorted case-insensitively. A name that differs only in case from one the store has takes the stored
spelling, as Mailpit's `tags` table (Name COLLATE NOCASE, unique) makes it. On arrival the tags come from
the X-Tags header, plus-addresses (`ann+invoice@...`), the SMTP AUTH username and tagging rules (a search
query -> tags); `Tagging` says which.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mailsandbox import mime
from mailsandbox.models import Envelope, Summary
from mailsandbox.store._schema import shown

MAX_TAG = 100  # characters, as Mailpit truncates
# Tags on one message: every one is a look-up in the writer's transaction, so a hostile X-Tags header of a
# megabyte of commas must not become 100,000 of them (the API refuses more; arrival keeps the first).
MAX_TAGS = 100
_INVALID = re.compile(r"[^a-zA-Z0-9\- _.@]")  # Mailpit's tag alphabet; anything else becomes a space
_SPACES = re.compile(r"\s+")
_WORD_START = re.compile(r"(?<![A-Za-z0-9])[a-z]")


def clean_tag(name: str) -> str:
    """Mailpit's CleanTag: characters outside its alphabet become spaces, runs of spaces one, trimmed."""
    return _SPACES.sub(" ", _INVALID.sub(" ", name)).strip()[:MAX_TAG]


def title_case(name: str) -> str:
    """Upper-case each word's first letter, leaving the rest (Go's cases.Title with NoLower)."""
    return _WORD_START.sub(lambda m: m.group(0).upper(), name)


def unique_tags(names: Iterable[str]) -> list[str]:
    """Clean names, the first spelling of each (case-insensitively), at most MAX_TAGS of them (the first
    given), sorted as Mailpit lists them."""
    seen: dict[str, str] = {}
    for name in names:
        tag = clean_tag(name)
        if tag and tag.lower() not in seen:
            seen[tag.lower()] = tag
            if len(seen) == MAX_TAGS:
                break
    return sorted(seen.values(), key=str.lower)


def join(tags: Sequence[str]) -> str:
    return ",".join(tags)


def split(column: str) -> tuple[str, ...]:
    return tuple(t for t in column.split(",") if t)


@dataclass(frozen=True)
class TagRule:
    """Tag a new message with `tags` when it matches the search `query` (Mailpit's --tag, our TOML `tags`)."""

    query: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Tagging:
    """Where new messages get their tags (Mailpit's --tags-disable, --tags-title-case, --tags-username)."""

    x_tags: bool = True
    plus_addresses: bool = True
    title_case: bool = False
    username: bool = False
    rules: tuple[TagRule, ...] = ()


def _plus_tags(address: str) -> list[str]:
    """`ann+invoice+2024@x` -> invoice, 2024: what follows the local part's first `+`."""
    local, at, _ = address.rpartition("@")
    if not at or "+" not in local:
        return []
    return local.partition("+")[2].split("+")


def arrival_tags(tagging: Tagging, raw: bytes, summary: Summary, envelope: Envelope) -> list[str]:
    """The tags a new message gets before the rules run (they need it stored): X-Tags, plus-addresses,
    the username. The header is read from the top block only."""
    found: list[str] = []
    if tagging.x_tags and b"x-tags" in raw[:65536].lower():  # cheap test before a header parse
        value = mime.Message(raw).header.get("X-Tags")
        if value:  # room for MAX_TAGS names of MAX_TAG characters, twice over: a huge header costs no more
            names = mime.decode_words(mime.header_text(value[: 2 * MAX_TAGS * (MAX_TAG + 2)])).split(",")
            found += [title_case(n) for n in names] if tagging.title_case else names
    if tagging.plus_addresses:
        people = [a.address for a in (*summary.to, *summary.cc, *summary.bcc)]
        if summary.from_ is not None:
            people.append(summary.from_.address)
        names = [t for address in dict.fromkeys([*people, *envelope.rcpt_tos]) for t in _plus_tags(address)]
        found += [title_case(n) for n in names] if tagging.title_case else names
    if tagging.username and envelope.auth_user:
        found.append(envelope.auth_user)
    return found


def canonical(conn: sqlite3.Connection, tags: Sequence[str]) -> list[str]:
    """Each tag in the spelling the store has for it (case-insensitively: table tag_names), else as given,
    which becomes the store's spelling. A name whose messages all went may keep its old spelling."""
    out: list[str] = []
    for tag in tags:
        row = conn.execute("SELECT name FROM tag_names WHERE name = ?", (tag,)).fetchone()
        if row is None:
            conn.execute("INSERT INTO tag_names (name) VALUES (?)", (tag,))
        out.append(row[0] if row else tag)
    return sorted(dict.fromkeys(out), key=str.lower)


def forget(conn: sqlite3.Connection, tag: str) -> None:
    """A renamed or deleted tag's name is free again."""
    conn.execute("DELETE FROM tag_names WHERE name = ?", (tag,))


def holding(conn: sqlite3.Connection, tag: str) -> list[tuple[int, str, str]]:
    """(rowid, id, tags) of every message that has `tag` (case-insensitively)."""
    return conn.execute(
        f"SELECT rowid, id, tags FROM messages WHERE tags != '' AND instr(',' || lower(tags) || ',', ?) > 0"
        f" AND {shown('rowid')}",
        (f",{tag.lower()},",),
    ).fetchall()


def store_spelling(conn: sqlite3.Connection, tag: str) -> str | None:
    """The spelling of `tag` (case-insensitively) on the messages, or None when no message has it: a scan
    of the partial index `messages_tagged` (only tagged messages), for renames and deletes."""
    row = conn.execute(
        f"SELECT tags FROM messages WHERE tags != '' AND instr(',' || lower(tags) || ',', ?) > 0"
        f" AND {shown('rowid')} LIMIT 1",
        (f",{tag.lower()},",),
    ).fetchone()
    return next((t for t in split(row[0]) if t.lower() == tag.lower()), None) if row else None
