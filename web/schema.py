"""Model -> JSON: every API shape in one file, named and shaped as Mailpit's API v1 where it has one."""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Iterable
from typing import Any

from sandbox import mime
from sandbox.models import Address, Envelope, StoredMessage
from sandbox.store import MailboxStat, Page


def rfc3339(epoch: float | None) -> str:
    if epoch is None:
        return ""
    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def address(a: Address | None) -> dict[str, str] | None:
    return None if a is None else {"Name": a.name, "Address": a.address}


def addresses(items: Iterable[Address]) -> list[dict[str, str]]:
    return [{"Name": a.name, "Address": a.address} for a in items]


def envelope(env: Envelope) -> dict[str, Any]:
    """Our extra: what the SMTP dialogue said (Bcc recipients appear only here)."""
    return {
        "MailFrom": env.mail_from,
        "RcptTo": list(env.rcpt_tos),
        "Peer": env.peer,
        "Helo": env.helo,
        "TLS": env.tls,
        "Auth": env.auth_user,
        "SMTPUTF8": env.smtputf8,
        "Body8Bit": env.body_8bit,
    }


def summary(m: StoredMessage) -> dict[str, Any]:
    s = m.summary
    return {
        "ID": m.id,
        "MessageID": s.message_id,
        "Read": m.read,
        "From": address(s.from_),
        "To": addresses(s.to),
        "Cc": addresses(s.cc),
        "Bcc": addresses(s.bcc),
        "ReplyTo": addresses(s.reply_to),
        "Subject": s.subject,
        "Created": rfc3339(m.created),
        "Username": m.envelope.auth_user or "",
        "Tags": list(m.tags),
        "Size": s.size,
        "Attachments": s.attachments,
        "Snippet": s.snippet,
        # extras
        "Mailboxes": list(m.mailboxes),
        "Envelope": envelope(m.envelope),
    }


def page(p: Page, total_all: int | None = None) -> dict[str, Any]:
    return {
        "total": p.total if total_all is None else total_all,
        "unread": p.unread,
        "count": len(p.messages),
        "messages_count": p.total,
        "start": p.start,
        "tags": [],
        "messages": [summary(m) for m in p.messages],
    }


def part(info: mime.PartInfo, raw_part: bytes | None = None) -> dict[str, Any]:
    checksums = {"MD5": "", "SHA1": "", "SHA256": ""}
    if raw_part is not None:
        checksums = {
            "MD5": hashlib.md5(raw_part, usedforsecurity=False).hexdigest(),
            "SHA1": hashlib.sha1(raw_part, usedforsecurity=False).hexdigest(),
            "SHA256": hashlib.sha256(raw_part).hexdigest(),
        }
    return {
        "PartID": info.part_id,
        "FileName": info.filename,
        "ContentType": info.content_type,
        "ContentID": info.content_id,
        "Size": info.size,
        "Checksums": checksums,
    }


def structure(info: mime.PartInfo) -> dict[str, Any]:
    """Our extra: the MIME tree, for the UI's structure tab."""
    return {
        "PartID": info.part_id,
        "ContentType": info.content_type,
        "FileName": info.filename,
        "ContentID": info.content_id,
        "Disposition": info.disposition,
        "Size": info.size,
        "Parts": [structure(c) for c in info.children],
    }


def message(m: StoredMessage, parsed: mime.Parsed) -> dict[str, Any]:
    s = m.summary
    msg = parsed.message
    unsubscribe = mime.decode_words(str(msg.get("List-Unsubscribe") or ""))
    return {
        "ID": m.id,
        "MessageID": s.message_id,
        "From": address(s.from_),
        "To": addresses(s.to),
        "Cc": addresses(s.cc),
        "Bcc": addresses(s.bcc),
        "ReplyTo": addresses(s.reply_to),
        "ReturnPath": str(msg.get("Return-Path") or m.envelope.mail_from).strip().strip("<>"),
        "Subject": s.subject,
        "ListUnsubscribe": {
            "Header": unsubscribe,
            "Links": [x.strip().strip("<>") for x in unsubscribe.split(",") if x.strip()],
            "Errors": "",
            "HeaderPost": str(msg.get("List-Unsubscribe-Post") or ""),
        },
        "Date": rfc3339(s.date if s.date is not None else m.created),
        "Created": rfc3339(m.created),
        "Tags": list(m.tags),
        "Username": m.envelope.auth_user or "",
        "Text": parsed.text,
        "HTML": parsed.html,
        "Size": s.size,
        "Inline": [part(i) for i in parsed.inline],
        "Attachments": [part(a) for a in parsed.attachments],
        # extras
        "Read": m.read,
        "Envelope": envelope(m.envelope),
        "Mailboxes": list(m.mailboxes),
        "Structure": structure(parsed.structure) if parsed.structure else None,
    }


def mailboxes(stats: list[MailboxStat]) -> list[dict[str, Any]]:
    return [{"Mailbox": s.user, "Total": s.total, "Unread": s.unread} for s in stats]


def auth(report: dict[str, Any]) -> dict[str, Any]:
    """Our extra, GET /api/sandbox/message/{ID}/auth: each method's RFC 8601 result word and why,
    and the Authentication-Results field the sandbox would add (`header`, computed by sandbox/auth)."""
    spf, dmarc, arc = report["spf"], report["dmarc"], report["arc"]
    return {
        "SPF": {"Result": spf["result"], "Domain": spf["domain"], "ClientIP": spf["client_ip"],
                "Reason": spf["reason"]},
        "DKIM": [
            {"Result": d["result"], "Domain": d["domain"], "Selector": d["selector"], "Reason": d["reason"]}
            for d in report["dkim"]
        ],
        "DMARC": {"Result": dmarc["result"], "Policy": dmarc["policy"], "Domain": dmarc["domain"],
                  "Reason": dmarc["reason"]},
        "ARC": {"Result": arc["result"], "Reason": arc["reason"]},
        "AuthenticationResults": report["header"],
    }  # fmt: skip
