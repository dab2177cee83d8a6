"""mailsandbox dump: every message of a database file (read-only) or of a running sandbox's API, to disk."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from mailsandbox import mailfiles
from mailsandbox.store.export import Exported, read_only

DEFAULT_URL = "http://127.0.0.1:8025"
PAGE = 1000  # the API's largest page


def register(sub: Any) -> None:
    p = sub.add_parser(
        "dump", help="write every message to a folder (.eml files, mbox or Maildir)",
        description="Write every message, oldest first, from a database file (opened read-only, so a running"
        " sandbox can keep using it) or from a running sandbox's API (Mailpit's works too).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )  # fmt: skip
    source = p.add_mutually_exclusive_group()
    source.add_argument("--db", metavar="PATH", default=argparse.SUPPRESS, help="a Mailsandbox database file")
    source.add_argument("--url", metavar="URL", default=DEFAULT_URL, help="a running sandbox's web address")
    p.add_argument("--format", choices=("eml", "mbox", "maildir"), default="eml",
                   help="eml: DIR/ID.eml each; mbox: DIR/mailsandbox.mbox (mboxrd); maildir: DIR/new")  # fmt: skip
    p.add_argument("dir", metavar="DIR", help="the folder to write into (made if missing)")
    p.set_defaults(run=run)


def from_api(url: str) -> Iterator[Exported]:
    """Oldest first, through /api/v1/messages and /api/v1/message/{ID}/raw."""
    import httpx

    with httpx.Client(base_url=url.rstrip("/"), timeout=60) as client:
        summaries: list[dict[str, Any]] = []
        start = 0
        while True:  # newest first, by pages; IDs are collected first so paging does not shift under us
            page = client.get("/api/v1/messages", params={"start": start, "limit": PAGE})
            page.raise_for_status()
            got = page.json().get("messages") or []
            summaries.extend(got)
            start += len(got)
            if len(got) < PAGE:
                break
        for summary in reversed(summaries):
            answer = client.get(f"/api/v1/message/{summary['ID']}/raw")
            if answer.status_code == 404:  # deleted since the listing
                continue
            answer.raise_for_status()
            created = _epoch(summary.get("Created"))
            sender = (summary.get("From") or {}).get("Address", "") if isinstance(summary.get("From"), dict) else ""
            yield Exported(summary["ID"], created, sender, answer.content)


def _epoch(text: Any) -> float:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time()


def write(messages: Iterator[Exported], folder: Path, fmt: str) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    if fmt == "mbox":
        with (folder / "mailsandbox.mbox").open("wb") as out:
            for m in messages:
                mailfiles.write_mbox_message(out, m.raw, m.mail_from, m.created)
                count += 1
        return count
    box = mailfiles.maildir(folder) if fmt == "maildir" else folder
    for m in messages:
        if fmt == "maildir":
            mailfiles.write_maildir(box, m.id, m.raw, m.created)
        else:
            mailfiles.write_eml(folder, m.id, m.raw, m.created)
        count += 1
    return count


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    db = getattr(args, "db", None)
    source = read_only(db) if db else from_api(args.url)
    try:
        count = write(source, Path(args.dir), args.format)
    except Exception as exc:  # a missing file, a refused connection, an HTTP error: one line, no traceback
        print(f"mailsandbox dump: {exc}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - started
    print(f"dumped {count} message(s) to {args.dir} ({args.format}) in {seconds:.2f}s", file=sys.stderr)
    return 0
