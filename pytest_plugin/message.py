"""CapturedMessage: one captured mail as test code sees it, parsed from its raw bytes."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from functools import cached_property
from html.parser import HTMLParser
from typing import Any

from mailsandbox import mime
from mailsandbox.pytest_plugin.auth import AuthResults
from mailsandbox.pytest_plugin.checks import HtmlCheck, LinkCheck, SpamCheck

# A URL in plain text ends at whitespace or at a character that cannot sit unescaped in a URL
# (RFC 3986 §2; RFC 3986 Appendix C: "<" and ">" or quotes delimit URLs in running text).
_TEXT_URL = re.compile(r"""\b(?:https?|ftp|mailto):[^\s<>"'`\]\[{}|\\^]+""", re.IGNORECASE)
# Sentence punctuation that ends up glued to a URL in prose is not part of it.
_TRAILING = ".,;:!?)'\""


@dataclass(frozen=True)
class Attachment:
    """One attached (or inline) part: `bytes(att)` is its decoded content; an attached message's
    content is the message itself (.eml bytes)."""

    filename: str
    content_type: str
    content: bytes
    inline: bool = False
    part_id: str = ""  # the IMAP section number, as GET /api/v1/message/{id}/part/{part_id} takes it
    content_id: str = ""

    @property
    def size(self) -> int:
        return len(self.content)

    def __bytes__(self) -> bytes:
        return self.content

    def __repr__(self) -> str:
        return f"Attachment({self.filename!r}, {self.content_type!r}, {self.size} bytes)"


@dataclass(frozen=True)
class Hop:
    """One delivery attempt at one hop of the relay, as GET /api/sandbox/message/{id}/trace lists it."""

    hop: int
    host: str
    recipient: str
    code: int
    reply: str
    at: float  # epoch seconds on the sandbox's clock
    status: str = ""  # "accepted", "deferred", "rejected", "no-connection", "dropped"
    preference: int | None = None
    dialogue: tuple[str, ...] = field(default=(), repr=False)  # the simulated SMTP conversation
    data: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Hop:
        """One Attempt of GET /api/sandbox/message/{ID}/trace (its shape is web/schema.py's Attempt)."""
        preference = data["Preference"]
        return cls(
            hop=int(data["Hop"]),
            host=str(data["Host"]),
            recipient=str(data["Recipient"]),
            code=int(data["Code"]),
            reply=str(data["Reply"]),
            at=float(data["Timestamp"]),
            status=str(data["Status"]),
            preference=int(preference) if preference is not None else None,
            dialogue=tuple(str(line) for line in data["Dialogue"]),
            data=dict(data),
        )


class Headers(Mapping[str, str]):
    """Case-insensitive, read-only headers: `headers["subject"]` is the first value, `get_all` every one."""

    def __init__(self, items: Sequence[tuple[str, str]]) -> None:
        self._items = list(items)
        self._first: dict[str, str] = {}
        for name, value in self._items:
            self._first.setdefault(name.lower(), value)

    def __getitem__(self, name: str) -> str:
        return self._first[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for name, _ in self._items:
            if name.lower() not in seen:
                seen.add(name.lower())
                yield name

    def __len__(self) -> int:
        return len(self._first)

    def get_all(self, name: str) -> list[str]:
        return [value for key, value in self._items if key.lower() == name.lower()]

    def items_all(self) -> list[tuple[str, str]]:
        """Every header in message order, repeats included (Received: lines, for instance)."""
        return list(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class _LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("a", "area"):
            for name, value in attrs:
                if name == "href" and value and not value.startswith("#"):
                    self.links.append(value.strip())


def _text_links(text: str) -> list[str]:
    return [match.group(0).rstrip(_TRAILING) for match in _TEXT_URL.finditer(text)]


def _html_links(html: str) -> list[str]:
    parser = _LinkParser()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # noqa: S110 - a broken document still yields the links found before the break
        pass
    return parser.links


def _addresses(header: mime.Header, name: str) -> list[str]:
    values = [mime.header_text(v) for v in header.values(name)]
    return [a.address for a in mime.addresses(values) if a.address]


def _attachment(info: mime.PartInfo, inline: bool) -> Attachment:
    return Attachment(info.filename, info.content_type, info.content(), inline, info.part_id, info.content_id)


class CapturedMessage:
    """A captured message: headers, envelope, bodies, links, attachments and the relay trace.

    `to`, `cc` are the addresses named in those headers; `bcc` are the envelope recipients
    named in neither (plus any Bcc: header that was left in). `attachments` and `inline` are the
    parts the API lists under those names (sandbox.mime's one rule). `email` is the stdlib
    `EmailMessage` for anything else. `tags` are the tags it had when fetched (those it got on arrival:
    X-Tags, plus-addresses, tagging rules).
    """

    def __init__(
        self,
        raw: bytes,
        *,
        id: str = "",
        envelope_from: str | None = None,
        envelope_to: Sequence[str] | None = None,
        created: float | None = None,
        mailboxes: Sequence[str] = (),
        details: Mapping[str, Any] | None = None,
        trace_loader: Callable[[], list[Hop]] | None = None,
        auth_loader: Callable[[str | None], AuthResults] | None = None,
        check_loader: Callable[[str, Mapping[str, str]], Mapping[str, Any]] | None = None,
    ) -> None:
        self.raw = raw
        self.id = id
        self.created = created
        self.mailboxes = tuple(mailboxes)
        self.details: Mapping[str, Any] = details or {}
        self.tags: list[str] = [str(t) for t in self.details.get("Tags") or ()]
        self._trace_loader = trace_loader
        self._check_loader = check_loader
        self._auth_loader = auth_loader
        self._auth: AuthResults | None = None
        parsed = mime.parse(raw)
        header = parsed.message.header
        self.headers = Headers([(name, mime.decode_words(value)) for name, value in header.items()])
        self.subject: str = header.decoded("Subject")
        self.message_id: str = header.unicode("Message-ID").strip()
        senders = _addresses(header, "From")
        self.to: list[str] = _addresses(header, "To")
        self.cc: list[str] = _addresses(header, "Cc")
        header_bcc = _addresses(header, "Bcc")
        if envelope_to is None:
            envelope_to = [*self.to, *self.cc, *header_bcc]
        self.envelope_to: list[str] = list(envelope_to)
        if envelope_from is None:
            return_path = _addresses(header, "Return-Path")
            envelope_from = return_path[0] if return_path else (senders[0] if senders else "")
        self.envelope_from: str = envelope_from
        self.sender: str = senders[0] if senders else envelope_from

        named = {a.lower() for a in (*self.to, *self.cc)}
        bcc = [a for a in header_bcc if a.lower() not in named]
        for addr in self.envelope_to:
            if addr.lower() not in named and addr.lower() not in {b.lower() for b in bcc}:
                bcc.append(addr)
        self.bcc: list[str] = bcc

        self.text: str = parsed.text
        self.html: str = parsed.html
        # The same parts, numbered alike, as GET /api/v1/message/{id} lists under Attachments and Inline.
        self.attachments: list[Attachment] = [_attachment(a, False) for a in parsed.attachments]
        self.inline: list[Attachment] = [_attachment(a, True) for a in parsed.inline]

    @cached_property
    def email(self) -> EmailMessage:
        """The stdlib's reading of the raw bytes, for anything the attributes above do not give."""
        parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def links(self) -> list[str]:
        """Every link in the text part, then those only in the HTML part, in order, without repeats."""
        seen: set[str] = set()
        out: list[str] = []
        for link in (*_text_links(self.text), *_html_links(self.html)):
            if link not in seen:
                seen.add(link)
                out.append(link)
        return out

    @property
    def trace(self) -> list[Hop]:
        """The relay's delivery attempts for this message, fetched fresh from the sandbox on each read."""
        return self._trace_loader() if self._trace_loader is not None else []

    def _check(self, name: str, params: Mapping[str, str] | None = None) -> Mapping[str, Any]:
        if self._check_loader is None:
            raise RuntimeError("this message was not read from a sandbox: it has no checks")
        return self._check_loader(name, params or {})

    def html_check(self) -> HtmlCheck:
        """The HTML compatibility check (caniemail.com data): `msg.html_check().supported > 90`,
        `"css-display-flex" not in msg.html_check()`, `msg.html_check().unsupported_in("outlook")`."""
        return HtmlCheck.from_json(self._check("html-check"))

    def link_check(self, follow: bool = False) -> LinkCheck:
        """The status of every link and image URL (`msg.link_check().broken == []`); internal addresses are
        refused unless the sandbox runs with `allow_internal_http_requests`."""
        return LinkCheck.from_json(self._check("link-check", {"follow": "true"} if follow else {}))

    def spam_check(self) -> SpamCheck:
        """SpamAssassin's score and rules (`msg.spam_check().score < 5`); needs the sandbox's `spamassassin`."""
        return SpamCheck.from_json(self._check("sa-check"))

    @property
    def auth(self) -> AuthResults:
        """SPF, DKIM, DMARC and ARC as the sandbox checked them on arrival (fetched once):
        `assert msg.auth.dkim == "pass", msg.auth.dkim.reason`."""
        if self._auth is None:
            if self._auth_loader is None:
                raise LookupError("this message did not come from a sandbox: it has no authentication results")
            self._auth = self._auth_loader(None)
        return self._auth

    def auth_in(self, mailbox: str) -> AuthResults:
        """The results for the copy `mailbox` received, after the relay's hops (which may sign, seal or
        rewrite it): `msg.auth_in("bob@list.test").arc == "pass"`."""
        if self._auth_loader is None:
            raise LookupError("this message did not come from a sandbox: it has no authentication results")
        return self._auth_loader(mailbox)

    @property
    def recipients(self) -> list[str]:
        """Everyone the message went to: envelope recipients, then header addresses not among them."""
        out = list(self.envelope_to)
        lowered = {a.lower() for a in out}
        for addr in (*self.to, *self.cc):
            if addr.lower() not in lowered:
                lowered.add(addr.lower())
                out.append(addr)
        return out

    def find(self, pattern: str | re.Pattern[str], flags: int = 0) -> str | None:
        """First match of `pattern` in the text part, else in the HTML part: group 1 if the
        pattern has a group (`msg.find(r"code: (\\d{6})")`), the whole match otherwise; None if absent."""
        regex = re.compile(pattern, flags) if isinstance(pattern, str) else pattern
        for body in (self.text, self.html):
            match = regex.search(body)
            if match:
                return match.group(1) if regex.groups else match.group(0)
        return None

    def summary(self) -> str:
        """One line for failure output: subject, sender and recipients."""
        return f"{self.subject!r} from {self.sender or '<>'} to {', '.join(self.recipients) or '(nobody)'}"

    def __repr__(self) -> str:
        return f"<CapturedMessage {self.id or '-'} {self.summary()}>"
