"""Model -> JSON: every API shape in one file, named and shaped as Mailpit's API v1 where it has one."""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Iterable
from typing import Any

from mailsandbox import mime
from mailsandbox.models import Address, Envelope, StoredMessage, Summary
from mailsandbox.store import MailboxStat, Page
from mailsandbox.web import unsubscribe


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
        "Bcc": bcc(s, m.envelope),
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


def page(p: Page, total: int) -> dict[str, Any]:
    """Mailpit's MessagesSummary: `total`/`unread` count the whole store, `messages_count`/`messages_unread`
    what the listing or search matched, `tags` every tag in the store."""
    return {
        "total": total,
        "unread": p.unread,
        "count": len(p.messages),
        "messages_count": p.total,
        "messages_unread": p.matching_unread,
        "start": p.start,
        "tags": list(p.tags),
        "messages": [summary(m) for m in p.messages],
    }


def part(info: mime.PartInfo) -> dict[str, Any]:
    """Mailpit's Attachment: checksums of the decoded content; FileName falls back to the Content-ID."""
    content = info.content()
    return {
        "PartID": info.part_id,
        "FileName": info.filename or info.content_id,
        "ContentType": info.content_type,
        "ContentID": info.content_id,
        "Size": info.size,
        "Checksums": {
            "MD5": hashlib.md5(content, usedforsecurity=False).hexdigest(),
            "SHA1": hashlib.sha1(content, usedforsecurity=False).hexdigest(),
            "SHA256": hashlib.sha256(content).hexdigest(),
        },
    }


def structure(info: mime.PartInfo) -> dict[str, Any]:
    """Our extra: the MIME tree, for the UI's structure tab (PartIDs as IMAP numbers them)."""
    return {
        "PartID": info.part_id,
        "ContentType": info.content_type,
        "FileName": info.filename,
        "ContentID": info.content_id,
        "Disposition": info.disposition,
        "Size": info.size,
        "Parts": [structure(c) for c in info.children],
    }


def bcc(s: Summary, env: Envelope) -> list[dict[str, str]]:
    """The Bcc header's addresses, then envelope recipients no header names, as Mailpit lists them
    (it writes those into a Bcc header on arrival; we keep the message as sent)."""
    named = {a.address.lower() for a in (*s.to, *s.cc, *s.bcc)}
    out = addresses(s.bcc)
    for rcpt in env.rcpt_tos:
        if rcpt.lower() not in named:
            named.add(rcpt.lower())
            out.append({"Name": "", "Address": rcpt})
    return out


def list_unsubscribe(parsed: mime.Parsed) -> dict[str, Any]:
    value = mime.decode_words(parsed.header("List-Unsubscribe")).strip()
    if not value:
        return {"Header": "", "Links": [], "Errors": "", "HeaderPost": ""}
    links, errors = unsubscribe.check(value)
    return {"Header": value, "Links": links, "Errors": errors, "HeaderPost": parsed.header("List-Unsubscribe-Post")}


def message(m: StoredMessage, parsed: mime.Parsed) -> dict[str, Any]:
    s = m.summary
    return_path = parsed.header("Return-Path").strip().strip("<>") or m.envelope.mail_from
    return {
        "ID": m.id,
        "MessageID": s.message_id,
        "From": address(s.from_),
        "To": addresses(s.to),
        "Cc": addresses(s.cc),
        "Bcc": bcc(s, m.envelope),
        "ReplyTo": addresses(s.reply_to),
        "ReturnPath": return_path or (s.from_.address if s.from_ else ""),
        "Subject": s.subject,
        "ListUnsubscribe": list_unsubscribe(parsed),
        "Date": rfc3339(s.date if s.date is not None else m.created),
        "Created": rfc3339(m.created),
        "Tags": list(m.tags),
        "Username": m.envelope.auth_user or "",
        "Text": parsed.display_text(),
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


def canonical_key(name: str) -> str:
    """Go's textproto.CanonicalMIMEHeaderKey, whose spelling Mailpit's /headers keys have: "Message-Id"."""
    if not name or any(not (c.isascii() and (c.isalnum() or c in "!#$%&'*+-.^_`|~")) for c in name):
        return name  # not a token: Go leaves it as it is
    return "-".join(word[:1].upper() + word[1:].lower() for word in name.split("-"))


def headers(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Mailpit's MessageHeadersResponse: canonical key -> every value in order; keys alphabetical."""
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        out.setdefault(canonical_key(name), []).append(value)
    return dict(sorted(out.items()))


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


def webui(
    *,
    relay_server: str | None = None,
    return_path: str = "",
    allowed: str = "",
    spamassassin: bool = False,
    chaos: bool = False,
    duplicates_ignored: bool = False,
    label: str = "",
) -> dict[str, Any]:
    """GET /api/v1/webui: Mailpit's WebUIConfiguration (what its UI and `getConfiguration` read). Release
    is on when an upstream is set; `allowed` is our release allow-list (globs, comma-separated)."""
    return {
        "Label": label,
        "MessageRelay": {
            "Enabled": relay_server is not None,
            "SMTPServer": relay_server or "",
            "ReturnPath": return_path,
            "AllowedRecipients": allowed,
            "BlockedRecipients": "",
            "OverrideFrom": "",
            "PreserveMessageIDs": False,
            "RecipientAllowlist": allowed,  # Mailpit's older name of AllowedRecipients, still sent
        },
        "SpamAssassin": spamassassin,
        "ChaosEnabled": chaos,
        "DuplicatesIgnored": duplicates_ignored,
        "HideDeleteAllButton": False,
    }
