"""Command line: argparse -> Config -> Sandbox. No logic of its own beyond parsing and printing."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from typing import Any

from sandbox import dump, ingest, sendmail
from sandbox.config import Config

# Every listener is one row: flag, Config field, help. Adding a protocol is one more row.
LISTENERS = [
    ("--smtp", "smtp", "SMTP capture HOST:PORT (default 127.0.0.1:1025; 'off' disables)"),
    ("--smtp-tls-port", "smtp_tls_port", "implicit-TLS SMTP HOST:PORT, the 465 style (default off)"),
    ("--http", "http", "web UI and API HOST:PORT (default 127.0.0.1:8025)"),
    ("--pop3", "pop3", "POP3 HOST:PORT (default 127.0.0.1:1110; 'off' disables)"),
    ("--pop3-tls-port", "pop3_tls_port", "implicit-TLS POP3 HOST:PORT, the 995 style (default off)"),
    ("--imap", "imap", "IMAP HOST:PORT (default 127.0.0.1:1143; 'off' disables)"),
    ("--imap-tls-port", "imap_tls_port", "implicit-TLS IMAP HOST:PORT, the 993 style (default off)"),
    ("--dns", "dns", "fake DNS server HOST:PORT, UDP and TCP (default 127.0.0.1:5353; 'off' disables)"),
]


def _serve_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the sandbox until Ctrl-C")
    p.add_argument("--config", help="TOML config file (also MAILSANDBOX_CONFIG)")
    for flag, dest, text in LISTENERS:
        p.add_argument(flag, dest=dest, metavar="HOST:PORT", help=text)
    p.add_argument("--data-dir", dest="data_dir", help="where the database and TLS certificate live")
    p.add_argument("--db", help="SQLite database path, or :memory: for a throw-away store")
    p.add_argument("--max-message-size", dest="max_message_size", type=int, metavar="BYTES")
    p.add_argument("--max-messages", dest="max_messages", type=int, metavar="N",
                   help="keep at most N messages, pruning the oldest")  # fmt: skip
    p.add_argument("--max-age", dest="max_age", metavar="AGE",
                   help="delete messages older than AGE: 7d, 12h, 30m, by the sandbox clock (default off)")  # fmt: skip
    p.add_argument("--ignore-duplicate-ids", dest="ignore_duplicate_ids", action="store_const", const=True,
                   help="drop a message whose Message-ID is already stored (the client still gets 250)")  # fmt: skip
    p.add_argument("--max-connections", dest="max_connections", type=int, metavar="N",
                   help="connections each listener accepts at once (default 1000; 0: no limit)")  # fmt: skip
    p.add_argument("--max-connections-per-client", dest="max_connections_per_client", type=int, metavar="N",
                   help="connections one client address may hold per listener (default 200; 0: none)")  # fmt: skip
    p.add_argument("--fsync", action="store_const", const=True,
                   help="fsync every commit, so even a power cut loses no accepted message (slower)")  # fmt: skip
    p.add_argument("--hostname", help="the name the sandbox gives itself in greetings and Received: lines")
    p.add_argument("--tls-cert", dest="tls_cert", help="PEM certificate (default: self-signed, generated)")
    p.add_argument("--tls-key", dest="tls_key", help="PEM private key")
    p.add_argument("--require-tls", dest="require_tls", action="store_const", const=True,
                   help="refuse MAIL before STARTTLS")  # fmt: skip
    p.add_argument("--smtp-auth", dest="smtp_auth", metavar="USER:PASS,...|@FILE",
                   help="demand these credentials (default: accept any and record them)")  # fmt: skip
    p.add_argument("--smtp-auth-allow-insecure", dest="smtp_auth_allow_insecure", action="store_const",
                   const=True, help="offer AUTH without TLS")  # fmt: skip
    p.add_argument("--zone", dest="zones", action="append", metavar="FILE", help="zone file (repeatable)")
    p.add_argument("--dns-strict", dest="dns_strict", action="store_const", const=True,
                   help="unknown domains are NXDOMAIN (mail to them bounces)")  # fmt: skip
    p.add_argument("--relay", choices=["on", "off"],
                   help="simulate delivery through the fake DNS's MX hosts (default on)")  # fmt: skip
    p.add_argument("-v", "--verbose", action="store_true")


def _send_parser(sub: Any) -> None:
    p = sub.add_parser("send", help="send one message (stdin or composed from flags), sendmail style")
    p.add_argument("recipients", nargs="*", help="envelope recipients (default: the To/Cc/Bcc headers)")
    p.add_argument("--server", default="127.0.0.1:1025", help="SMTP HOST:PORT (default 127.0.0.1:1025)")
    p.add_argument("-f", "--from", dest="sender", help="envelope sender and From: header")
    p.add_argument("-s", "--subject")
    p.add_argument("-t", "--to", action="append", default=[], help="To: address (repeatable)")
    p.add_argument("--body", help="text body (default: stdin when no --subject)")
    p.add_argument("--html", help="HTML body (sends multipart/alternative)")
    p.add_argument("--attach", action="append", default=[], metavar="FILE")
    p.add_argument("--starttls", action="store_true")
    p.add_argument("--tls", action="store_true", help="implicit TLS")
    p.add_argument("--user")
    p.add_argument("--password")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailsandbox", description="An email world on one machine.")
    sub = parser.add_subparsers(dest="command")
    _serve_parser(sub)
    _send_parser(sub)
    for tool in (sendmail, dump, ingest):  # each module defines its own arguments
        tool.register(sub)
    return parser


def serve(args: argparse.Namespace) -> int:
    from sandbox.app import Sandbox

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    overrides = {k: v for k, v in vars(args).items() if k not in ("command", "config", "verbose")}
    try:
        config = Config.load(config_file=args.config, overrides=overrides)
    except (ValueError, OSError) as exc:
        print(f"mailsandbox: {exc}", file=sys.stderr)
        return 2

    def ready(sandbox: Sandbox) -> None:
        print(f"mailsandbox {sandbox.info()['Version']}: database {config.db_path}", flush=True)
        for name, addr in sandbox.addresses.items():
            scheme = "http://" if name == "http" else ""
            print(f"  {name:<14} {scheme}{addr}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)

    from sandbox.zone import ZoneError

    try:
        asyncio.run(Sandbox(config).run_forever(ready))
    except (OSError, ZoneError) as exc:  # a port in use, a directory we cannot write, a bad zone file
        print(f"mailsandbox: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    print("mailsandbox: stopped", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    if (sendmail_args := sendmail.wanted(argv)) is not None:  # sendmail's own syntax, not argparse's
        return sendmail.main(sendmail_args)
    args = build_parser().parse_args(argv)
    if hasattr(args, "run"):  # a subcommand whose module parses and runs it (dump, ingest)
        return int(args.run(args))
    if args.command == "serve":
        return serve(args)
    if args.command == "send":
        from sandbox.send import send

        return send(args)
    build_parser().print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
