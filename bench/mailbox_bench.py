"""Mailbox benchmark: our POP3/IMAP servers against Dovecot over the same 10,000 messages.

Usage: .venv/bin/python bench/mailbox_bench.py [--messages 10000] [--runs 7] [--no-dovecot]
See bench/README-mailbox.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import grp
import imaplib
import importlib
import importlib.util
import inspect
import json
import os
import poplib
import pwd
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

USER = "bench@example.test"
SEARCH_WORD = "quarterly"  # in every 100th subject
FETCH_ITEMS = "(FLAGS BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)])"
TARGET_RATIO = 3.0
WORDS = (
    "account alpha budget carbon delta invoice meeting notice order project report review sales "
    "schedule server status summary ticket update weekly urgent reminder draft final proposal "
    "release build deploy customer support team plan agenda minutes contract renewal payment"
).split()


def imap_available() -> bool:
    return importlib.util.find_spec("mailsandbox.servers.imap") is not None


# -- the mailbox --------------------------------------------------------------------------------


def make_messages(count: int, seed: int = 4) -> list[bytes]:
    """Deterministic, varied messages with CRLF line ends (as SMTP delivers them)."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        subject = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 7)))
        if i % 100 == 7:
            subject += f" {SEARCH_WORD}"
        body = "\r\n".join(
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 12))) for _ in range(rng.randint(5, 40))
        )
        sender = f"{rng.choice(WORDS)}.{rng.choice(WORDS)}@sender{rng.randint(1, 50)}.test"
        out.append(
            (
                f"Return-Path: <{sender}>\r\nFrom: {sender.split('@')[0].title()} <{sender}>\r\n"
                f"To: {USER}\r\nSubject: {subject}\r\n"
                f"Date: {formatdate(1_700_000_000 + i * 60)}\r\nMessage-ID: <{i}.{seed}@bench.test>\r\n"
                f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{body}\r\n"
            ).encode()
        )
    return out


def load_store(db: Path, messages: list[bytes]) -> None:
    from mailsandbox.models import Envelope
    from mailsandbox.store.sqlite import SqliteStore

    async def load() -> None:
        store = SqliteStore(str(db), durable=False)
        try:
            envelope = Envelope("sender@bench.test", (USER,))
            for start in range(0, len(messages), 500):  # group commit takes concurrent writers together
                batch = messages[start : start + 500]
                await asyncio.gather(*(store.add_message(raw, envelope) for raw in batch))
        finally:
            store.close()

    asyncio.run(load())


def write_maildir(root: Path, messages: list[bytes]) -> None:
    """The same messages as Maildir files (LF line ends, the Maildir custom) for Dovecot."""
    box = root / USER
    for sub in ("cur", "new", "tmp"):
        (box / sub).mkdir(parents=True, exist_ok=True)
    for i, raw in enumerate(messages):
        data = raw.replace(b"\r\n", b"\n")
        (box / "cur" / f"{1_700_000_000 + i}.M{i}P1.bench,S={len(data)}:2,").write_bytes(data)


# -- the servers ------------------------------------------------------------------------------


def serve(db: str) -> None:
    """Child process: serve the loaded store until stdin closes; print the ports first."""
    from mailsandbox.servers.pop3 import start_pop3
    from mailsandbox.store.sqlite import SqliteStore

    async def main() -> None:
        store = SqliteStore(db, durable=False)
        ports: dict[str, int] = {}
        pop3 = await start_pop3("127.0.0.1", 0, store)
        ports["pop3"] = pop3.sockets[0].getsockname()[1]
        if imap_available():
            imap = importlib.import_module("mailsandbox.servers.imap")  # arrives with the IMAP work
            start_imap: Callable[..., Any] = imap.start_imap
            kwargs = {"bus": store.bus} if "bus" in inspect.signature(start_imap).parameters else {}
            server = await start_imap("127.0.0.1", 0, store, **kwargs)
            ports["imap"] = server.sockets[0].getsockname()[1]
        print(json.dumps(ports), flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)  # the parent closes our stdin to stop us
        store.close()

    asyncio.run(main())


@contextlib.contextmanager
def ours(db: Path) -> Iterator[dict[str, int]]:
    argv = [sys.executable, __file__, "--serve", str(db)]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield json.loads(proc.stdout.readline())
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def free_port() -> int:
    # Dovecot takes ports only from its config: bind 0, read the number, release it.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"dovecot did not listen on {port}")
        time.sleep(0.05)


DOVECOT_CONF = """\
base_dir = {tmp}/run
state_dir = {tmp}/state
log_path = {tmp}/dovecot.log
protocols = imap pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
mail_location = maildir:{tmp}/mail/%u
default_internal_user = {internal}
default_internal_group = {internal_group}
default_login_user = {login}
first_valid_uid = 0
first_valid_gid = 0
passdb {{
  driver = static
  args = nopassword=y
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={tmp}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  chroot =
  inet_listener pop3 {{
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
"""


@contextlib.contextmanager
def dovecot(tmp: Path, messages: list[bytes]) -> Iterator[dict[str, int]]:
    binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
    if not Path(binary).exists():
        raise SystemExit("dovecot is not installed: apt-get install dovecot-imapd dovecot-pop3d")
    write_maildir(tmp / "mail", messages)
    (tmp / "home").mkdir()
    uid, gid = os.getuid(), os.getgid()
    me = pwd.getpwuid(uid).pw_name
    internal, login = me, me
    if uid == 0:
        # Dovecot refuses root for login processes and mail access: use its own accounts, as Debian sets up.
        internal, login = "dovecot", "dovenull"
        uid, gid = pwd.getpwnam("dovecot").pw_uid, pwd.getpwnam("dovecot").pw_gid
        for parent in (tmp.parent, tmp):  # mkdtemp makes 0700 directories
            parent.chmod(0o755)
        for path in (tmp / "mail", tmp / "home"):
            for dirpath, _dirs, files in os.walk(path):
                os.chown(dirpath, uid, gid)
                for name in files:
                    os.chown(os.path.join(dirpath, name), uid, gid)
    ports = {"pop3": free_port(), "imap": free_port()}
    conf = tmp / "dovecot.conf"
    group = grp.getgrgid(pwd.getpwnam(internal).pw_gid).gr_name
    settings = {"internal": internal, "internal_group": group, "login": login, "uid": uid, "gid": gid}
    conf.write_text(DOVECOT_CONF.format(tmp=tmp, **settings, **ports))
    proc = subprocess.Popen([binary, "-F", "-c", str(conf)])  # fixed argv
    try:
        wait_port(ports["pop3"], proc)
        wait_port(ports["imap"], proc)
        yield ports
    except BaseException:
        log = tmp / "dovecot.log"
        if log.exists():
            print("dovecot.log:\n" + "\n".join(log.read_text().splitlines()[-15:]), file=sys.stderr)
        raise
    finally:
        proc.send_signal(signal.SIGTERM)  # the master stops its children
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- the measurements ----------------------------------------------------------------------------


@dataclass
class Figures:
    times: dict[str, list[float]]
    checks: dict[str, Any]


def pop3_list_uidl(port: int) -> tuple[float, Any]:
    start = time.perf_counter()
    pop = poplib.POP3("127.0.0.1", port, timeout=120)
    pop.user(USER)
    pop.pass_("any")
    listing = pop.list()[1]
    uidls = pop.uidl()[1]
    elapsed = time.perf_counter() - start
    pop.quit()
    return elapsed, (len(listing), len(uidls))


def imap_session(port: int) -> imaplib.IMAP4:
    imap = imaplib.IMAP4("127.0.0.1", port, timeout=120)
    imap.login(USER, "any")
    status, _ = imap.select("INBOX", readonly=True)
    assert status == "OK"
    return imap


def imap_fetch(imap: imaplib.IMAP4) -> tuple[float, Any]:
    start = time.perf_counter()
    status, data = imap.uid("FETCH", "1:*", FETCH_ITEMS)
    elapsed = time.perf_counter() - start
    assert status == "OK", data
    return elapsed, sum(1 for item in data if isinstance(item, tuple))


def imap_search(imap: imaplib.IMAP4) -> tuple[float, Any]:
    start = time.perf_counter()
    status, data = imap.search(None, "SUBJECT", SEARCH_WORD)
    elapsed = time.perf_counter() - start
    assert status == "OK", data
    return elapsed, len(data[0].split())


class Measure:
    """Collects one server's samples; `round` runs every operation once."""

    def __init__(self, ports: dict[str, int]) -> None:
        self.ports = ports
        self.figures = Figures({}, {})

    def _record(self, name: str, result: tuple[float, Any], warm: bool) -> None:
        self.figures.checks[name] = result[1]
        if not warm:
            self.figures.times.setdefault(name, []).append(result[0])

    def round(self, warm: bool) -> None:
        self._record("POP3 login+LIST+UIDL", pop3_list_uidl(self.ports["pop3"]), warm)
        if "imap" in self.ports:
            imap = imap_session(self.ports["imap"])
            self._record("IMAP UID FETCH 1:* headers", imap_fetch(imap), warm)
            self._record(f"IMAP SEARCH SUBJECT {SEARCH_WORD}", imap_search(imap), warm)
            imap.logout()


def measure(servers: list[Measure], runs: int) -> None:
    # Rounds alternate between the servers, so a busy moment on a shared machine hits both alike;
    # round 0 warms caches and indexes (Dovecot builds them on first access) and is not counted.
    for run in range(runs + 1):
        for server in servers:
            server.round(warm=run == 0)


def report(our: Figures, theirs: Figures | None) -> None:
    print(f"\n{'operation':40} {'ours ms':>10} {'dovecot ms':>11} {'ratio':>7}  results (ours/dovecot)")
    for name, samples in our.times.items():
        mine = statistics.median(samples) * 1000
        line = f"{name:40} {mine:10.1f}"
        if theirs is not None and name in theirs.times:
            other = statistics.median(theirs.times[name]) * 1000
            ratio = mine / other
            verdict = "ok" if ratio <= TARGET_RATIO else f"over {TARGET_RATIO:g}x"
            line += f" {other:11.1f} {ratio:6.2f}x  {our.checks[name]} / {theirs.checks[name]}  {verdict}"
        else:
            line += f" {'-':>11} {'-':>7}  {our.checks[name]}"
        print(line)
    if not imap_available():
        print("(IMAP rows appear once sandbox/servers/imap.py exists)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7, help="timed runs per figure (median reported)")
    parser.add_argument("--no-dovecot", action="store_true", help="time our servers only")
    parser.add_argument("--serve", metavar="DB", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="mailbox-bench-"))
    try:
        t0 = time.perf_counter()
        messages = make_messages(args.messages)
        load_store(tmp / "sandbox.db", messages)
        print(f"{len(messages)} messages, {sum(map(len, messages)) / 1e6:.1f} MB; "
              f"store loaded in {time.perf_counter() - t0:.1f}s; {args.runs} runs, medians")  # fmt: skip
        with contextlib.ExitStack() as stack:
            our = Measure(stack.enter_context(ours(tmp / "sandbox.db")))
            servers = [our]
            theirs = None
            if not args.no_dovecot:
                (tmp / "dovecot").mkdir()
                ports = stack.enter_context(dovecot(tmp / "dovecot", messages))
                if "imap" not in our.ports:
                    ports.pop("imap")
                theirs = Measure(ports)
                servers.append(theirs)
            measure(servers, args.runs)
        report(our.figures, theirs.figures if theirs else None)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
