"""A throw-away PostgreSQL cluster on loopback for tests: initdb into a temp dir, pg_ctl start on a free port.

Debian's `postgresql` package puts its binaries in /usr/lib/postgresql/N/bin (not on PATH); the newest
there is used, else any on PATH. PostgreSQL refuses to run as root, so as root the cluster belongs to the
`postgres` user (Debian's package makes it) or `nobody`. The `postgresql` fixture skips when no binaries
are found; CI installs them (.ci/run).
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

USER = "sandbox"  # the cluster's superuser; trust authentication, loopback only


def pg_bin() -> Path | None:
    """The folder holding initdb and pg_ctl, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _owner() -> pwd.struct_passwd | None:
    """Who runs the cluster: None for this process's own user, unless that is root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and there is no postgres or nobody user to run PostgreSQL as")


@dataclass
class Cluster:
    bin: Path
    data: Path
    port: int
    owner: pwd.struct_passwd | None

    @property
    def dsn(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"

    def run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run one of the cluster's binaries as its owner."""
        command = [str(self.bin / tool), *args]
        if self.owner is not None:
            command = ["runuser", "-u", self.owner.pw_name, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
        return done

    def psql(self, sql: str, database: str = "postgres") -> str:
        return self.run("psql", "-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER,
                        "-d", database, "-c", sql).stdout.strip()  # fmt: skip

    def create_database(self, name: str) -> str:
        """A fresh database in the cluster; returns its DSN."""
        self.psql(f'CREATE DATABASE "{name}"')
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{name}"

    options: str = ""  # pg_ctl -o: what the server was started with

    def start_server(self) -> None:
        """Start the server (again), on the same port and data."""
        self.run("pg_ctl", "-D", str(self.data), "-o", self.options, "-l", str(self.data.parent / "log"), "-w", "start")

    def stop_server(self) -> None:
        """Stop the server at once, as a crash or a restart would (its data stays)."""
        self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        self.stop_server()
        shutil.rmtree(self.data.parent, ignore_errors=True)


def start_cluster(base: Path, fsync: bool = False) -> Cluster:
    """initdb into `base`/data and start it on a free loopback port (without fsync, unless asked: the data
    is thrown away; a benchmark asks)."""
    bin_dir = pg_bin()
    if bin_dir is None:
        raise FileNotFoundError("no PostgreSQL binaries (initdb, pg_ctl)")
    owner = _owner()
    base.mkdir(parents=True, exist_ok=True)
    if owner is not None:
        os.chown(base, owner.pw_uid, owner.pw_gid)
        base.chmod(0o700)
        for parent in base.parents:  # the owner must be able to reach its directory
            if parent.stat().st_mode & 0o001 == 0:
                parent.chmod(parent.stat().st_mode | 0o001)
    cluster = Cluster(bin_dir, base / "data", _free_port(), owner)
    cluster.run("initdb", "-D", str(cluster.data), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync",
                "--locale=C")  # fmt: skip
    cluster.options = f"-c listen_addresses=127.0.0.1 -p {cluster.port} -k {base}"
    if not fsync:
        cluster.options += " -c fsync=off -c full_page_writes=off"
    cluster.start_server()
    return cluster


_shared: Cluster | None = None
_databases = itertools.count()


def shared_cluster() -> Cluster:
    """One cluster for this process, started on first use and stopped at exit (for code that is not a
    fixture: tests/conftest.py's free_config under MAILSANDBOX_TEST_DB=postgresql)."""
    global _shared
    if _shared is None:
        _shared = start_cluster(Path(tempfile.mkdtemp(prefix="mailsandbox-pg-")))
        atexit.register(_shared.stop)
    return _shared


def fresh_database() -> str:
    """A new empty database in the shared cluster; its DSN."""
    return shared_cluster().create_database(f"t{os.getpid()}_{next(_databases)}")


@pytest.fixture(scope="session")
def postgresql() -> Iterator[Cluster]:
    """A PostgreSQL cluster for the session, on loopback; skipped without PostgreSQL's binaries.
    Example: `dsn = postgresql.create_database("t1")`."""
    if pg_bin() is None:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    # Not under pytest's basetemp: another pytest run of the same user prunes old basetemps, live
    # cluster and all. stop() removes this directory.
    cluster = start_cluster(Path(tempfile.mkdtemp(prefix="mailsandbox-pg-")))
    try:
        yield cluster
    finally:
        cluster.stop()
