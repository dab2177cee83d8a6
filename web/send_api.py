"""POST /api/v1/send: Mailpit's JSON message, built with the stdlib email package, handed to the capture path."""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formataddr, formatdate, make_msgid, parseaddr
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from mailsandbox.store import DuplicateMessage
from mailsandbox.web import routes
from mailsandbox.web.inputs import error, json_object
from mailsandbox.web.workers import Workers

# Headers the message's own fields set (Mailpit's list); Headers may not replace them.
_FIELD_NAME = re.compile(r"[!-9;-~]{1,200}", re.ASCII)  # RFC 5322 §3.6.8: printable US-ASCII except ":"
_RESTRICTED = {"to", "from", "cc", "bcc", "reply-to", "date", "subject", "content-type", "mime-version"}


@dataclass(frozen=True)
class Outgoing:
    """A message built from the request: envelope sender, every recipient (Bcc included), its bytes."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes


# (envelope, peer) -> the stored message's ID; raises DuplicateMessage or the store's failure.
Submit = Callable[[Outgoing, str], Awaitable[str]]


class SendError(ValueError):
    """The request's fault: a 400 with Mailpit's {"Error": ...}."""


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SendError(f"{key} must be a string")
    return value


def _address(item: Any, field: str) -> tuple[str, str]:
    """{"Email": ..., "Name": ...} (or a bare address string, as Mailpit's Bcc) -> (name, address)."""
    if isinstance(item, str):
        name, email = "", item
    elif isinstance(item, dict) and isinstance(item.get("Email", ""), str) and isinstance(item.get("Name", ""), str):
        name, email = item.get("Name", ""), item.get("Email", "")
    else:
        raise SendError(f'{field} must be {{"Email": ..., "Name": ...}}')
    parsed = parseaddr(email)[1]
    if not parsed or "@" not in parsed or parsed != email.strip() or any(c in email for c in "\r\n"):
        raise SendError(f"invalid {field} address: {email}")
    return name, parsed


def _addresses(data: dict[str, Any], key: str, field: str) -> list[tuple[str, str]]:
    items = data.get(key) or []
    if not isinstance(items, list):
        raise SendError(f"{key} must be a list")
    return [_address(item, field) for item in items]


def _attachment(item: Any) -> tuple[bytes, str, str, str]:
    if not isinstance(item, dict):
        raise SendError("each attachment must be an object with Content and Filename")
    name, content = _text(item, "Filename"), _text(item, "Content")
    ctype, cid = _text(item, "ContentType"), _text(item, "ContentID")
    try:  # a data: URL from readAsDataURL() carries its base64 after the comma
        data = base64.b64decode(content.rpartition(",")[2], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SendError(f'error decoding base64 attachment "{name}": {exc}') from None
    ctype = ctype or mimetypes.guess_type(name)[0] or "application/octet-stream"
    if ctype.count("/") != 1:
        raise SendError(f'attachment "{name}": ContentType must be type/subtype')
    return data, ctype, name, cid


def build(data: dict[str, Any]) -> Outgoing:
    """The request body -> the message; raises SendError on anything Mailpit would refuse."""
    sender = data.get("From")
    if not isinstance(sender, dict) or not sender.get("Email"):
        raise SendError("From.Email is required")
    from_name, from_addr = _address(sender, "From")
    to, cc = _addresses(data, "To", "To"), _addresses(data, "Cc", "Cc")
    bcc, reply_to = _addresses(data, "Bcc", "Bcc"), _addresses(data, "ReplyTo", "Reply-To")
    text, html, subject = _text(data, "Text"), _text(data, "HTML"), _text(data, "Subject")
    headers = data.get("Headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise SendError("Headers must be an object of strings")
    tags = data.get("Tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise SendError("Tags must be a list of strings")
    attachments = data.get("Attachments") or []
    if not isinstance(attachments, list):
        raise SendError("Attachments must be a list")
    files = [_attachment(item) for item in attachments]
    restricted = _RESTRICTED | ({"x-tags"} if tags else set())
    for key in headers:
        if key.lower() in restricted:
            raise SendError(f'cannot overwrite header: "{key}"')
        if not _FIELD_NAME.fullmatch(key):
            raise SendError(f"not a header name: {key!r}")

    msg = EmailMessage()
    try:
        msg["From"] = formataddr((from_name, from_addr))
        for key, people in (("To", to), ("Cc", cc), ("Reply-To", reply_to)):
            if people:
                msg[key] = ", ".join(formataddr(p) for p in people)
        msg["Subject"] = subject
        msg["Date"] = formatdate(localtime=False)
        if tags:
            msg["X-Tags"] = ", ".join(tags)
        for key, value in headers.items():
            msg[key] = value
        if "message-id" not in {k.lower() for k in headers}:
            msg["Message-ID"] = make_msgid(domain=from_addr.rpartition("@")[2] or None)
        _body(msg, text, html, files)
        raw = msg.as_bytes(policy=SMTP)  # CRLF line ends, as on the wire
    except (ValueError, TypeError) as exc:  # a header with a line break, a bad header name
        raise SendError(f"error building message: {exc}") from None
    recipients = tuple(dict.fromkeys(a for _n, a in (*to, *cc, *bcc)))
    return Outgoing(from_addr, recipients, raw)


def _body(msg: EmailMessage, text: str, html: str, files: list[tuple[bytes, str, str, str]]) -> None:
    """text/plain, with an HTML alternative; inline files (a ContentID) beside the HTML, others attached."""
    if html and not text:
        msg.set_content(html, subtype="html")
        html_part: EmailMessage | None = msg
    else:
        msg.set_content(text)
        html_part = None
        if html:
            msg.add_alternative(html, subtype="html")
            alternative = msg.get_payload()[1]  # type: ignore[index]
            assert isinstance(alternative, EmailMessage)
            html_part = alternative
    for data, ctype, name, cid in files:
        maintype, subtype = ctype.split("/")
        if cid and html_part is not None:
            html_part.add_related(data, maintype, subtype, cid=f"<{cid.strip('<>')}>", filename=name or None,
                                  disposition="inline")  # fmt: skip
        else:
            msg.add_attachment(data, maintype, subtype, filename=name or None)


class SendApi:
    """POST /api/v1/send (web/routes.py): `submit` captures the message as SMTP mail is captured."""

    def __init__(self, submit: Submit, workers: Workers, max_message_size: int) -> None:
        self.submit = submit
        self.workers = workers
        self.max_message_size = max_message_size

    async def send(self, request: Request) -> Response:
        """Build a message from Mailpit's JSON and capture it as if it came by SMTP; answers {"ID": ...}."""
        workers, max_message_size = self.workers, self.max_message_size
        try:
            data = await json_object(request, workers)
            outgoing = await workers.run(build, data)  # base64 and MIME encoding: not on the loop
        except ValueError as exc:
            return error(400, str(exc))
        if max_message_size and len(outgoing.raw) > max_message_size:
            return error(413, f"message size {len(outgoing.raw)} exceeds the limit of {max_message_size} bytes")
        peer = f"{request.client.host}:{request.client.port}" if request.client else ""
        try:
            message_id = await self.submit(outgoing, peer)
        except DuplicateMessage:
            message_id = ""  # ignored as a duplicate (--ignore-duplicate-ids): Mailpit answers an empty ID
        except Exception:
            return error(503, "the message could not be stored; try again")
        return JSONResponse({"ID": message_id})


def send_routes(submit: Submit, workers: Workers, max_message_size: int) -> list[BaseRoute]:
    return routes.build({"send": SendApi(submit, workers, max_message_size)})
