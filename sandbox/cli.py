"""Command line: argparse -> Config -> Sandbox. No logic of its own beyond parsing and printing."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mailsandbox import dump, event_loop, heap, ingest, sendmail
from mailsandbox.config import Config, ConfigError, Listen
from mailsandbox.startup import redact_dsn


@dataclass(frozen=True)
class Flag:
    """One `serve` flag that sets a Config field. Adding a setting to the command line is one more row."""

    name: str  # "--max-messages"
    help: str
    metavar: str | None = None  # None: an on/off switch
    dest: str = ""  # the Config field; default: the name without "--", dashes as underscores
    repeat: bool = False
    choices: tuple[str, ...] = ()
    default: str | None = ""  # the default shown in --help; "": read from Config(), None: shown by the help itself
    aliases: tuple[str, ...] = ()  # other spellings (another tool's name for the flag)

    @property
    def field(self) -> str:
        return self.dest or self.name.removeprefix("--").replace("-", "_")


_ADDR = "HOST:PORT"
SERVE_FLAGS = [
    Flag("--smtp", "SMTP capture ('off' disables; a bare PORT listens on loopback)", _ADDR),
    Flag("--smtp-tls-port", "implicit-TLS SMTP, the 465 style", _ADDR),
    Flag("--http", "web UI and API", _ADDR),
    Flag("--pop3", "POP3, with STLS", _ADDR),
    Flag("--pop3-tls-port", "implicit-TLS POP3, the 995 style", _ADDR),
    Flag("--imap", "IMAP, with STARTTLS", _ADDR),
    Flag("--imap-tls-port", "implicit-TLS IMAP, the 993 style", _ADDR),
    Flag("--dns", "fake DNS server, UDP and TCP", _ADDR),
    Flag(
        "--data-dir",
        "where the database and the generated TLS certificate live (made if missing)",
        "DIR",
        default="$XDG_DATA_HOME/mailsandbox, else ~/.local/share/mailsandbox",
    ),
    Flag(
        "--db",
        "SQLite database file, in a directory that exists; ':memory:' for a throw-away store; or "
        "postgresql://USER@HOST/DB: a PostgreSQL database that several sandboxes share",
        "FILE|URL",
        default="DATA_DIR/mailsandbox.db",
    ),
    Flag("--max-message-size", "largest message accepted, however it arrives", "BYTES"),
    Flag("--max-messages", "keep at most N messages, pruning the oldest; 0 keeps all", "N"),
    Flag("--max-age", "delete messages older than AGE: 7d, 12h, 30m, by the sandbox clock; 0 keeps all", "AGE"),
    Flag("--ignore-duplicate-ids", "drop a message whose Message-ID is already stored (the client still gets 250)"),
    Flag("--tag", "tag new messages matching a search query: TAG,TAG=QUERY (repeatable; several in one, "
         "space-separated, quoted)", "TAG,...=QUERY", dest="tags", repeat=True, default="none", aliases=("-t",)),
    Flag("--tags-disable", "turn off tags from these sources: x-tags, plus-addresses", "SOURCE,...",
         default="none"),
    Flag("--tags-title-case", "Title Case the tags that X-Tags and plus-addresses give"),
    Flag("--tags-username", "tag each message with the SMTP AUTH username"),
    Flag("--max-connections", "connections each listener accepts at once; 0: no limit", "N"),
    Flag("--max-connections-per-client", "connections one client address may hold per listener; 0: none", "N"),
    Flag("--fsync", "fsync every commit, so even a power cut loses no accepted message (slower)"),
    Flag(
        "--hostname",
        "the sandbox's own name: SMTP greeting, Received: lines, bounces, the name its fake DNS "
        "resolves to itself and the self-signed certificate's subject",
        "NAME",
    ),
    Flag("--event-loop", "the event loop: auto is uvloop where installed, else asyncio's own", "LOOP",
         choices=event_loop.CHOICES),
    Flag(
        "--tls-cert",
        "PEM certificate for STARTTLS and the TLS ports, with --tls-key",
        "FILE",
        default="self-signed, made in DATA_DIR/tls",
    ),
    Flag("--tls-key", "PEM private key of --tls-cert", "FILE", default=None),
    Flag("--require-tls", "refuse MAIL before STARTTLS"),
    Flag(
        "--smtp-auth",
        "demand these credentials on SMTP, POP3 and IMAP",
        "USER:PASS,...|@FILE",
        default="any credentials accepted and recorded",
    ),
    Flag("--smtp-auth-allow-insecure", "offer AUTH without TLS"),
    Flag("--smtp-auth-accept-any", "with --smtp-auth: still accept mail from clients that do not authenticate"),
    Flag("--mailbox-access", "POP3/IMAP: the mailboxes each --smtp-auth user may open", "USER=GLOB|GLOB;...",
         default="its own name"),
    Flag("--auth-failure-limit", "failed logins from one client address before it is disconnected", "N"),
    Flag("--auth-failure-delay", "delay after a second failed login, doubling up to 15 s", "SECONDS"),
    Flag("--allowed-hosts", "Host names the UI answers besides loopback and this machine's own ('*.x' globs)",
         "NAME,...", default="none"),
    Flag("--ui-auth-file", "web UI and API basic auth: user:password or user:bcrypt-hash lines (htpasswd -B)",
         "FILE"),
    Flag("--api-token", "also accept 'Authorization: Bearer TOKEN' (better: MAILSANDBOX_API_TOKEN)", "TOKEN"),
    Flag("--api-cors", "let these origins ('*': any) call the API from their pages", "ORIGIN,...", default="none"),
    Flag("--zone", "zone file for the fake DNS (repeatable)", "FILE", dest="zones", repeat=True, default=None),
    Flag("--dns-strict", "unknown domains are NXDOMAIN (mail to them bounces)"),
    Flag("--relay", "simulate delivery through the fake DNS's MX hosts", choices=("on", "off")),
    Flag("--auth-checks", "check SPF, DKIM, DMARC and ARC of each message on arrival (off: when first asked for)",
         choices=("on", "off")),
    Flag("--enable-chaos", "let the API and UI set SMTP faults on purpose (Mailpit's chaos, and rules)"),
    Flag("--chaos-triggers", "Mailpit's random faults, and enable chaos", "Sender:451:50,Recipient:..."),
    Flag("--chaos-rule", "a deterministic SMTP fault, and enable chaos (repeatable): STAGE[:CODE] every=N "
         "from=GLOB to=GLOB p=PERCENT delay=SECONDS", "RULE", dest="chaos_rules", repeat=True, default="none"),
    Flag("--smtp-max-messages-per-minute", "per client address; more get 451 at MAIL; 0: no limit", "N"),
    Flag("--smtp-max-connections-per-minute", "per client address; more get 421 at connect; 0: no limit", "N"),
    Flag("--allow-internal-http-requests", "let the link check reach loopback and private addresses"),
    Flag("--spamassassin", "SpamAssassin's spamd, for the spam score (sa-check)", _ADDR,
         aliases=("--enable-spamassassin",)),
    Flag("--webhook-url", "POST each new message's summary (JSON, Mailpit's payload) to this URL", "URL"),
    Flag("--webhook-limit", "webhook requests per second, the rest wait in order; 0: no limit", "N"),
    Flag("--webhook-delay", "seconds a message waits before its webhook request", "SECONDS"),
    Flag("--enable-prometheus", "Prometheus /metrics: true (on --http), false, or a listener of its own",
         "true|false|HOST:PORT"),
]
FLAG_NAMES = {flag.field: flag.name for flag in SERVE_FLAGS}
_NOT_SETTINGS = ("command", "config", "verbose")


def _shown(value: Any) -> str:
    if value is None:
        return "off"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _help(flag: Flag, defaults: Config) -> str:
    if flag.metavar is None and not flag.choices:
        return flag.help  # a switch: off unless given
    default = _shown(getattr(defaults, flag.field)) if flag.default == "" else flag.default
    return flag.help if default is None else f"{flag.help} (default: {default})"


def _serve_parser(sub: Any) -> None:
    about = "Run the sandbox until Ctrl-C. Settings: defaults < --config file < MAILSANDBOX_* variables < flags."
    p = sub.add_parser("serve", help="run the sandbox until Ctrl-C", description=about)
    config_help = "TOML file whose keys are these flags without '--' (also MAILSANDBOX_CONFIG)"
    p.add_argument("--config", metavar="FILE", help=config_help)
    defaults = Config()
    for flag in SERVE_FLAGS:
        if flag.metavar is None and not flag.choices:
            p.add_argument(flag.name, *flag.aliases, dest=flag.field, action="store_const", const=True,
                           help=_help(flag, defaults))  # fmt: skip
        else:
            action = "append" if flag.repeat else "store"
            choices = flag.choices or None
            p.add_argument(flag.name, *flag.aliases, dest=flag.field, metavar=flag.metavar, choices=choices,
                           action=action,
                           help=_help(flag, defaults))  # fmt: skip
    p.add_argument("-v", "--verbose", action="store_true", help="log more (INFO level)")


def _send_parser(sub: Any) -> None:
    about = "Send one message: a whole message from stdin, or one made from --subject, --body, --html, --attach."
    p = sub.add_parser(
        "send", help="send one message (stdin or composed from flags), sendmail style", description=about
    )
    recipients = "envelope recipients (default: --to, else the message's To/Cc/Bcc)"
    p.add_argument("recipients", nargs="*", metavar="RECIPIENT", help=recipients)
    server = str(Config().smtp or Listen("127.0.0.1", 1025))
    where = "where to send: the sandbox's SMTP listener (default: %(default)s)"
    p.add_argument("--server", default=server, metavar=_ADDR, help=where)
    sender = "envelope sender and From: (default: the message's From:, else sender@example.test)"
    p.add_argument("-f", "--from", dest="sender", metavar="ADDRESS", help=sender)
    p.add_argument("-s", "--subject", metavar="TEXT", help="Subject: of a composed message")
    to = "To: of a composed message; for a piped one, where it goes (repeatable)"
    p.add_argument("-t", "--to", action="append", default=[], metavar="ADDRESS", help=to)
    p.add_argument("--body", metavar="TEXT", help="text body of a composed message (default: empty)")
    p.add_argument("--html", metavar="HTML", help="HTML body (sends multipart/alternative)")
    p.add_argument("--attach", action="append", default=[], metavar="FILE", help="attach a file (repeatable)")
    p.add_argument("--starttls", action="store_true", help="upgrade to TLS with STARTTLS (certificate not checked)")
    p.add_argument("--tls", action="store_true", help="implicit TLS, for the --smtp-tls-port listener")
    p.add_argument("--user", help="log in with AUTH as USER (default: no AUTH)")
    p.add_argument("--password", help="the password for --user (default: empty)")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mailsandbox")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailsandbox", description="An email world on one machine.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="{serve,send,sendmail,dump,ingest}")
    _serve_parser(sub)
    _send_parser(sub)
    for tool in (sendmail, dump, ingest):  # each module defines its own arguments
        tool.register(sub)
    return parser


def fail(message: object, code: int = 1) -> int:
    """Print one line for the user on stderr; return the exit code."""
    print(f"mailsandbox: {message}", file=sys.stderr)
    return code


def serve(args: argparse.Namespace) -> int:
    from mailsandbox.app import Sandbox
    from mailsandbox.startup import StartupError
    from mailsandbox.zone import ZoneError

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    overrides = {k: v for k, v in vars(args).items() if k not in _NOT_SETTINGS}
    try:
        config = Config.load(config_file=args.config, overrides=overrides, override_names=FLAG_NAMES)
    except ConfigError as exc:
        return fail(exc, 2)

    def ready(sandbox: Sandbox) -> None:
        loop = event_loop.name(asyncio.get_running_loop())
        print(f"mailsandbox {sandbox.info()['Version']}: database {redact_dsn(config.db_path)}, {loop} event loop",
              flush=True)  # fmt: skip
        for name, addr in sandbox.addresses.items():
            scheme = "http://" if name == "http" else ""
            print(f"  {name:<14} {scheme}{addr}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        heap.settle()  # what start-up built is left out of collections; the rest is collected seldom

    heap.map_large_buffers()  # large messages' buffers go back to the system when freed
    try:
        with asyncio.Runner(loop_factory=event_loop.factory(config.event_loop)) as runner:
            runner.run(Sandbox(config).run_forever(ready))
    except (StartupError, ZoneError) as exc:  # each names the file, address or setting
        return fail(exc)
    except (OSError, ValueError) as exc:  # anything not foreseen (an auth file, say) still gets one line
        return fail(exc)
    except KeyboardInterrupt:
        pass
    print("mailsandbox: stopped", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    if (sendmail_args := sendmail.wanted(argv)) is not None:  # sendmail's own syntax, not argparse's
        return sendmail.main(sendmail_args)
    parser = build_parser()
    args = parser.parse_args(argv)
    if hasattr(args, "run"):  # a subcommand whose module parses and runs it (dump, ingest)
        return int(args.run(args))
    if args.command == "serve":
        return serve(args)
    if args.command == "send":
        from mailsandbox.send import send

        return send(args)
    parser.print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
