"""Model -> JSON: every API shape in one file, named and shaped as Mailpit's API v1 where it has one."""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Iterable
from typing import Any

from mailsandbox import mime
from mailsandbox.models import Address, Attempt, Envelope, StoredMessage, Summary
from mailsandbox.store import MailboxStat, Page, QueueItem
from mailsandbox.web import unsubscribe

# JSON Schema of every answer, stream frame and the info object, by name: web/openapi.py puts them in
# the document's components, web/routes.py's table names one for each route. The functions below build
# the answers; tests/web/test_openapi.py checks real answers against these.
Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: bool = True, **props: Schema) -> Schema:
    out: Schema = {"type": "object", "properties": props}
    if required:
        out["required"] = list(props)
    return out


def arr(item: Schema) -> Schema:
    return {"type": "array", "items": item}


STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
BOOL: Schema = {"type": "boolean"}
NUM: Schema = {"type": "number"}
TIME: Schema = {"type": "string", "format": "date-time"}

SHAPES: dict[str, Schema] = {
    "WebUIConfiguration": obj(
        Label=STR,
        MessageRelay=obj(
            Enabled=BOOL,
            SMTPServer=STR,
            ReturnPath=STR,
            AllowedRecipients=STR,
            BlockedRecipients=STR,
            OverrideFrom=STR,
            PreserveMessageIDs=BOOL,
            RecipientAllowlist=STR,
        ),
        SpamAssassin=BOOL,
        ChaosEnabled=BOOL,
        DuplicatesIgnored=BOOL,
        HideDeleteAllButton=BOOL,
    ),
    "Address": obj(Name=STR, Address=STR),
    "Envelope": obj(
        MailFrom=STR,
        RcptTo=arr(STR),
        Peer=STR,
        Helo=STR,
        TLS=BOOL,
        Auth={"type": ["string", "null"]},
        SMTPUTF8=BOOL,
        Body8Bit=BOOL,
    ),
    "MessageSummary": obj(
        ID=STR,
        MessageID=STR,
        Read=BOOL,
        From={"oneOf": [ref("Address"), {"type": "null"}]},
        To=arr(ref("Address")),
        Cc=arr(ref("Address")),
        Bcc=arr(ref("Address")),
        ReplyTo=arr(ref("Address")),
        Subject=STR,
        Created=TIME,
        Username=STR,
        Tags=arr(STR),
        Size=INT,
        Attachments={**INT, "description": "number of attachments"},
        Snippet=STR,
        Mailboxes={**arr(STR), "description": "extra: the mailboxes (users) it was delivered to"},
        Envelope={**ref("Envelope"), "description": "extra: what the SMTP dialogue said"},
    ),
    "MessagesPage": obj(
        total={**INT, "description": "all messages in the store"},
        unread={**INT, "description": "unread messages in the store"},
        count={**INT, "description": "messages in this page"},
        messages_count={**INT, "description": "messages matching the search (or mailbox), before paging"},
        messages_unread={**INT, "description": "unread messages matching the search (or mailbox)"},
        start=INT,
        tags={**arr(STR), "description": "every tag in the store"},
        messages=arr(ref("MessageSummary")),
    ),
    "Attachment": obj(
        PartID=STR,
        FileName=STR,
        ContentType=STR,
        ContentID=STR,
        Size=INT,
        Checksums=obj(MD5=STR, SHA1=STR, SHA256=STR),
    ),
    "Part": obj(
        PartID=STR,
        ContentType=STR,
        FileName=STR,
        ContentID=STR,
        Disposition=STR,
        Size=INT,
        Parts=arr(ref("Part")),
    ),
    "Message": {
        "allOf": [
            obj(
                ID=STR,
                MessageID=STR,
                From={"oneOf": [ref("Address"), {"type": "null"}]},
                To=arr(ref("Address")),
                Cc=arr(ref("Address")),
                Bcc=arr(ref("Address")),
                ReplyTo=arr(ref("Address")),
                ReturnPath=STR,
                Subject=STR,
                Date=TIME,
                Created=TIME,
                Tags=arr(STR),
                Text=STR,
                HTML=STR,
                Size=INT,
                Inline=arr(ref("Attachment")),
                Attachments=arr(ref("Attachment")),
                ListUnsubscribe=obj(Header=STR, Links=arr(STR), Errors=STR, HeaderPost=STR),
                Username=STR,
                Read=BOOL,
            ),
            obj(
                required=False,
                Envelope={**ref("Envelope"), "description": "extra: the SMTP envelope (Bcc shows here)"},
                Mailboxes=arr(STR),
                Structure={"description": "extra: the MIME tree", "oneOf": [ref("Part"), {"type": "null"}]},
            ),
        ]
    },
    "IDs": obj(required=False, IDs={**arr(STR), "description": "message IDs; empty or absent: all"}),
    "ReadState": obj(
        required=False,
        IDs={**arr(STR), "description": "message IDs; neither IDs nor Search: all"},
        Search={**STR, "description": "a search: only its matches change (not with IDs)"},
        Read={**BOOL, "description": "absent: false (unread), as in Mailpit"},
    ),
    "Mailbox": obj(Mailbox=STR, Total=INT, Unread=INT),
    "PreviewInfo": obj(ID=STR, HTML=BOOL, RemoteBlocked=INT, RemoteHosts=arr(STR)),
    # RFC 8601 result words: pass, fail, softfail, neutral, none, temperror, permerror
    "AuthResults": obj(
        SPF=obj(Result=STR, Domain=STR, ClientIP=STR, Reason=STR),
        DKIM=arr(obj(Result=STR, Domain=STR, Selector=STR, Reason=STR)),
        DMARC=obj(Result=STR, Policy=STR, Domain=STR, Reason=STR),
        ARC=obj(Result=STR, Reason=STR),
        AuthenticationResults=STR,
    ),
    "Error": obj(Error=STR),
    "DnsRecord": obj(required=False, Name=STR, Type=STR, Value=STR, TTL=INT),
    "Attempt": obj(
        Recipient=STR,
        Hop=INT,
        Host=STR,
        Preference={"type": ["integer", "null"]},
        Code=INT,
        Reply=STR,
        Status={"enum": ["accepted", "deferred", "rejected", "no-connection", "dropped"]},
        Time=TIME,
        Timestamp={"type": "number"},
        Dialogue=arr(STR),
    ),
    "Event": {
        "description": "One frame of the /api/events WebSocket.",
        "oneOf": [
            obj(Type={"const": "new"}, Data=ref("MessageSummary")),
            obj(Type={"const": "delete"}, Data=obj(ID=STR)),  # one frame per message
            obj(Type={"const": "update"}, Data=obj(ID=STR, Read=BOOL)),  # one frame per message changed
            obj(Type={"const": "update"}, Data=obj(ID=STR, Tags=arr(STR))),  # its tags were set
            obj(Type={"enum": ["truncate", "prune"]}, Data={"type": "null"}),
            obj(Type={"const": "stats"}, Data=obj(Total=INT, Unread=INT, Version=STR)),
            obj(
                Type={"const": "delivery"},
                Data=obj(ID=STR, Recipient=STR, Host=STR, Code=INT, Status=STR),
            ),
        ],
    },
    # The message checks, Mailpit's shapes (HTMLCheckResponse, LinkCheckResponse, SpamAssassinResponse).
    "HTMLCheckResult": obj(
        Name=STR, Platform=STR, Family=STR, Version=STR, Support={"enum": ["yes", "no", "partial"]}, NoteNumber=STR
    ),
    "HTMLCheckScore": obj(Found=INT, Supported=NUM, Partial=NUM, Unsupported=NUM),
    "HTMLCheckWarning": obj(
        Slug=STR,
        Title=STR,
        Description=STR,
        URL=STR,
        Category=STR,
        Tags=arr(STR),
        Keywords=STR,
        Results=arr(ref("HTMLCheckResult")),
        NotesByNumber={"type": "object", "additionalProperties": STR},
        Score=ref("HTMLCheckScore"),
    ),
    "HTMLCheckTotal": obj(Tests=INT, Nodes=INT, Supported=NUM, Partial=NUM, Unsupported=NUM),
    "HTMLCheckResponse": obj(
        Warnings=arr(ref("HTMLCheckWarning")),
        Platforms={"type": "object", "additionalProperties": arr(STR)},
        Total=ref("HTMLCheckTotal"),
    ),
    "LinkCheckLink": obj(URL=STR, StatusCode=INT, Status=STR),
    "LinkCheckResponse": obj(Errors=INT, Links=arr(ref("LinkCheckLink"))),
    "SpamAssassinRule": obj(Score=NUM, Name=STR, Description=STR),
    "SpamAssassinResponse": obj(
        IsSpam=BOOL, Error=STR, Score=NUM, Rules={"oneOf": [arr(ref("SpamAssassinRule")), {"type": "null"}]}
    ),
}

# Shapes of answers built outside this module's functions (the composition root's info, the relay's
# objects): named here so that every route's answer has a name in the document.
SHAPES.update(
    Info=obj(
        Version=STR, LatestVersion=STR, Database=STR, DatabaseSize=INT, Messages=INT, Unread=INT,
        Tags={"type": "object", "additionalProperties": INT},
        RuntimeStats=obj(
            Uptime=INT, Memory=INT, MessagesDeleted=INT, SMTPAccepted=INT, SMTPAcceptedSize=INT, SMTPRejected=INT,
            SMTPIgnored=INT,
        ),
        Listeners={"type": "object", "additionalProperties": STR},
    ),
    Headers={"type": "object", "additionalProperties": arr(STR)},
    TagList={**arr(STR), "description": "every tag in use, sorted case-insensitively"},
    ChaosTrigger=obj(ErrorCode=INT, Probability=INT),
    ChaosTriggers=obj(
        required=False, Sender=ref("ChaosTrigger"), Recipient=ref("ChaosTrigger"), Authentication=ref("ChaosTrigger")
    ),
    Chaos=obj(
        required=False,
        Enabled=BOOL,
        Triggers=ref("ChaosTriggers"),
        Rules=arr({"oneOf": [STR, obj(required=False, Stage=STR, ErrorCode=INT, Text=STR, Every=INT, Sender=STR,
                                      Recipient=STR, Probability=INT, Delay=NUM)]}),
        RateLimit=obj(required=False, Messages=INT, Connections=INT),
        Stages=arr(STR),
    ),
    # /api/sandbox/message/{ID}/html-check: Mailpit's answer, each warning with where the feature is used
    HTMLCheckPlaces=obj(
        Families={"type": "object", "additionalProperties": STR},
        **{**SHAPES["HTMLCheckResponse"]["properties"], "Warnings": arr(ref("HTMLCheckPlacesWarning"))},
    ),
    HTMLCheckPlacesWarning=obj(
        **SHAPES["HTMLCheckWarning"]["properties"], Places=arr(obj(Line=INT, Text=STR))
    ),
    SendConfirmation=obj(ID=STR),
    OpenAPI=obj(openapi=STR, info={"type": "object"}, paths={"type": "object"}, components={"type": "object"}),
    QueueItem=obj(
        ID=STR, Recipient=STR, From={"type": ["string", "null"]}, Subject={"type": ["string", "null"]},
        Attempts=INT, FirstAttempt={"type": ["string", "null"]}, NextAttempt={"type": ["string", "null"]},
        NextAttemptTimestamp={"type": ["number", "null"]}, LastError={"type": ["string", "null"]}, Warned=BOOL,
    ),
    Retried=obj(Tried=INT, Queued=arr(ref("QueueItem"))),
    Dropped=obj(Dropped=INT),
    RemovedRecords=obj(Removed=INT),
    RemovedHost=obj(Removed=STR),
    Clock={
        **obj(Now=NUM, Time=STR, Offset=NUM),
        "description": "with the relay on, also its queue: NextRetry, NextRetryTime, Queued, RetryInterval,"
        " WarnAfter, GiveUpAfter",
        "properties": {
            "Now": NUM, "Time": STR, "Offset": NUM, "NextRetry": {"type": ["number", "null"]},
            "NextRetryTime": {"type": ["string", "null"]}, "Queued": INT, "RetryInterval": NUM, "WarnAfter": NUM,
            "GiveUpAfter": NUM,
        },
    },
    Host={"type": "object", "description": "a simulated host's behaviour (relay/faults.py)"},
    Hosts={"type": "object", "additionalProperties": ref("Host")},
)  # fmt: skip




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


def iso_or_none(when: float | None) -> str | None:
    if when is None:
        return None
    return datetime.datetime.fromtimestamp(when, datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def attempt(attempt: Attempt) -> dict[str, Any]:
    code = attempt.code
    status = "accepted" if 200 <= code < 300 else "deferred" if code < 500 else "rejected"
    if code == 0:
        status = "no-connection" if "dropped" not in attempt.reply else "dropped"
    return {
        "Recipient": attempt.recipient,
        "Hop": attempt.hop,
        "Host": attempt.host,
        "Preference": attempt.preference,
        "Code": code,
        "Reply": attempt.reply,
        "Status": status,
        "Time": iso_or_none(attempt.at),
        "Timestamp": attempt.at,
        "Dialogue": list(attempt.dialogue),
    }


def queue_item(item: QueueItem, message: StoredMessage | None) -> dict[str, Any]:
    return {
        "ID": item.message_id,
        "Recipient": item.recipient,
        "From": message.envelope.mail_from if message else None,
        "Subject": message.summary.subject if message else None,
        "Attempts": item.attempts,
        "FirstAttempt": iso_or_none(item.first_attempt),
        "NextAttempt": iso_or_none(item.next_attempt),
        "NextAttemptTimestamp": item.next_attempt,
        "LastError": item.last_error,
        "Warned": item.warned,
    }
