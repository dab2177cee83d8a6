"""Sans-IO IMAP4rev1 server (RFC 3501): parser, state machine and response encoding; no sockets here."""

from mailsandbox.protocols.imap.backend import Backend, MessageCache, RecentTracker
from mailsandbox.protocols.imap.connection import MAX_LINE, MAX_LITERAL, MAX_LITERAL_PREAUTH, ImapConnection
from mailsandbox.protocols.imap.parser import BadCommand, parse_command
from mailsandbox.protocols.imap.session import State, accept_any

__all__ = [
    "MAX_LINE",
    "MAX_LITERAL",
    "MAX_LITERAL_PREAUTH",
    "Backend",
    "BadCommand",
    "ImapConnection",
    "MessageCache",
    "RecentTracker",
    "State",
    "accept_any",
    "parse_command",
]
