"""The Dockerfile, built and run: mail sent into the container is read back through the API, and kept
across a restart. CI has no registry, so .ci/run builds a Debian base with debootstrap and a folder of
wheels (MAILSANDBOX_DOCKER_BASE, MAILSANDBOX_DOCKER_WHEELS), and builds the image before the suite so
that the build's load does not fall on the suite's timing tests (MAILSANDBOX_DOCKER_IMAGE). Also: the
credentials warning at start unless UI auth is set, and a build context that .dockerignore keeps small."""

from __future__ import annotations

import io
import json
import os
import re
import smtplib
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from tests.conftest import IN_CI, require_binary

ROOT = Path(__file__).resolve().parent.parent
# Building the image takes a minute or two: more than the suite's 120 s per test.
pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.timeout(900)]


def docker(*args: str, timeout: float = 120, check: bool = True, stdin: str | None = None) -> str:
    # The classic builder: it needs no buildx plugin and reports the size of the build context.
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, env=env, input=stdin)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout + proc.stderr


def need(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what}; .ci/run must provide it")
    pytest.skip(what)


@pytest.fixture(scope="module")
def daemon() -> None:
    require_binary("docker")
    if subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode != 0:
        need("the docker daemon is not running")


@pytest.fixture(scope="module")
def image(daemon: None) -> Iterator[str]:
    if built := os.environ.get("MAILSANDBOX_DOCKER_IMAGE"):
        yield built
        return
    base = os.environ.get("MAILSANDBOX_DOCKER_BASE")
    if not base:
        need("MAILSANDBOX_DOCKER_BASE names no base image (no registry to pull python:3.12-slim from)")
    tag = f"mailsandbox-test:{uuid.uuid4().hex[:8]}"
    args = ["build", "--build-arg", f"BASE={base}", "-t", tag]
    if wheels := os.environ.get("MAILSANDBOX_DOCKER_WHEELS"):
        args += ["--build-arg", f"WHEELS={wheels}"]
    docker(*args, str(ROOT), timeout=900)
    yield tag
    docker("rmi", "-f", tag, check=False)


def wait_healthy(name: str, timeout: float = 120) -> None:
    """The image's HEALTHCHECK (GET /readyz) passing is the sign the sandbox serves."""
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        status = docker("inspect", "-f", "{{.State.Health.Status}}", name).strip()
        if status == "healthy":
            return
        time.sleep(0.5)
    raise AssertionError(f"{name} is {status!r} after {timeout}s:\n{docker('logs', name, check=False)}")


def port(name: str, inside: str) -> int:
    return int(docker("port", name, inside).split()[0].rsplit(":", 1)[1])


def test_mail_survives_a_container_restart(image: str) -> None:
    name, volume = f"mailsandbox-test-{uuid.uuid4().hex[:8]}", f"mailsandbox-test-{uuid.uuid4().hex[:8]}"
    size = int(docker("image", "inspect", "-f", "{{.Size}}", image).strip())
    print(f"image {image}: {size / 1e6:.0f} MB")
    assert size < 300e6
    # The image's own health command, run every second rather than every 10 s: the first check otherwise
    # comes 10 s after each start.
    docker("run", "-d", "--name", name, "-p", "127.0.0.1::1025", "-p", "127.0.0.1::8025", "--health-interval", "1s",
           "-v", f"{volume}:/data", image)  # fmt: skip
    try:
        wait_healthy(name)
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "ann@example.test", "bob@example.test", "into the container"
        msg.set_content("kept across a restart")
        with smtplib.SMTP("127.0.0.1", port(name, "1025/tcp"), timeout=30) as smtp:
            smtp.send_message(msg)
        api = f"http://127.0.0.1:{port(name, '8025/tcp')}/api/v1"
        listing = httpx.get(f"{api}/messages", timeout=30).json()
        assert [m["Subject"] for m in listing["messages"]] == ["into the container"]
        message_id = listing["messages"][0]["ID"]

        # the volume holds the sandbox's files only, and the server does not run as root
        assert sorted(docker("exec", name, "ls", "-A", "/data").split()) == [
            "mailsandbox.db", "mailsandbox.db-shm", "mailsandbox.db-wal", "tls",
        ]  # fmt: skip
        assert docker("exec", name, "id", "-u").strip() == "1000"

        docker("restart", name, timeout=120)
        wait_healthy(name)
        api = f"http://127.0.0.1:{port(name, '8025/tcp')}/api/v1"
        kept = httpx.get(f"{api}/message/{message_id}", timeout=30).json()
        assert kept["Subject"] == "into the container" and kept["Text"] == "kept across a restart\n"
        assert "Traceback" not in docker("logs", name)
    finally:
        docker("rm", "-f", name, check=False)
        docker("volume", "rm", "-f", volume, check=False)


def test_build_context_is_small(daemon: None) -> None:
    """What .dockerignore admits, as the daemon receives it: the build context is copied whole into an image
    FROM scratch (no base, no registry), and its files are listed from an exported container."""
    tag, name = f"mailsandbox-context:{uuid.uuid4().hex[:8]}", f"mailsandbox-context-{uuid.uuid4().hex[:8]}"
    output = docker("build", "-f", "-", "-t", tag, str(ROOT), stdin='FROM scratch\nCOPY . /context/\nCMD ["x"]\n')
    try:
        docker("create", "--name", name, tag)
        proc = subprocess.run(["docker", "export", name], capture_output=True, timeout=120, check=True)
        with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
            files = {m.name.removeprefix("context/"): m.size for m in tar.getmembers()
                     if m.isfile() and m.name.startswith("context/")}  # fmt: skip
    finally:
        docker("rm", "-f", name, check=False)
        docker("rmi", "-f", tag, check=False)
    sent = re.search(r"Sending build context to Docker daemon\s+([\d.]+)([kMG]?B)", output)
    assert sent, output
    sent_mb = float(sent.group(1)) * {"B": 1e-6, "kB": 1e-3, "MB": 1, "GB": 1e3}[sent.group(2)]
    total_mb = sum(files.values()) / 1e6
    # CI's offline wheelhouse (the dependencies' wheels, uvloop's alone about 4 MB) is sent as well; the
    # project's own files are what a leak of .venv, .git or a test store would swell.
    wheels_mb = sum(size for path, size in files.items() if path.startswith("build/wheelhouse/")) / 1e6
    print(f"build context: {sent_mb:.1f} MB sent, {len(files)} files, {total_mb:.1f} MB ({wheels_mb:.1f} MB wheels)")
    assert total_mb - wheels_mb < 5 and wheels_mb < 60 and sent_mb < total_mb * 1.1 + 1
    assert "pyproject.toml" in files and "sandbox/app.py" in files and "web/app.py" in files
    # .dockerignore admits the wheel's sources and the wheel folder only: no .venv, .git, tests or caches
    tops = {path.split("/", 1)[0] for path in files}
    assert tops <= {"pyproject.toml", "README.md", "sandbox", "web", "pytest_plugin", "build"}, tops
    assert not [path for path in files if "__pycache__" in path or path.endswith(".pyc")]
    assert not [path for path in files if path.startswith("build/") and not path.startswith("build/wheelhouse/")]


def started_logs(name: str, timeout: float = 120) -> str:
    """The container's output once the sandbox has started: the banner comes after any start-up warning."""
    deadline = time.monotonic() + timeout
    logs = ""
    while time.monotonic() < deadline:
        logs = docker("logs", name, check=False)
        if "Press Ctrl-C to stop." in logs or "Traceback" in logs:
            return logs
        time.sleep(0.5)
    raise AssertionError(f"{name} did not start in {timeout}s:\n{logs}")


CREDENTIALS_WARNING = "without UI authentication"


def test_credentials_warning_unless_ui_auth_is_set(image: str, tmp_path: Path) -> None:
    """The image listens on every interface, so without UI auth it warns at start; with an auth file, given
    by the environment variable the Dockerfile documents or by the flag, it does not, and the API asks for
    the password."""
    users = tmp_path / "ui-users"
    users.write_text("ann:s3cret\n")
    users.chmod(0o644)  # the container's user (uid 1000) reads it through the bind mount
    mount = ["-v", f"{users}:/run/secrets/ui-users:ro"]
    cmd = json.loads(docker("image", "inspect", "-f", "{{json .Config.Cmd}}", image))
    runs = {
        "none": [image],
        "env": [*mount, "-e", "MAILSANDBOX_UI_AUTH_FILE=/run/secrets/ui-users", image],
        "flag": [*mount, image, *cmd, "--ui-auth-file", "/run/secrets/ui-users"],
    }
    names = {how: f"mailsandbox-test-{how}-{uuid.uuid4().hex[:8]}" for how in runs}
    try:
        for how, args in runs.items():  # all three start together
            docker("run", "-d", "--name", names[how], "-p", "127.0.0.1::8025", *args)
        logs = {how: started_logs(name) for how, name in names.items()}
        assert "Traceback" not in "".join(logs.values()), logs
        warning = [line for line in logs["none"].splitlines() if CREDENTIALS_WARNING in line]
        assert len(warning) == 1 and "--ui-auth-file" in warning[0], logs["none"]
        for how in ("env", "flag"):
            assert CREDENTIALS_WARNING not in logs[how], logs[how]
            api = f"http://127.0.0.1:{port(names[how], '8025/tcp')}/api/v1/messages"
            assert httpx.get(api, timeout=30).status_code == 401
            assert httpx.get(api, auth=("ann", "s3cret"), timeout=30).status_code == 200
        api = f"http://127.0.0.1:{port(names['none'], '8025/tcp')}/api/v1/messages"
        assert httpx.get(api, timeout=30).status_code == 200
    finally:
        for name in names.values():
            docker("rm", "-f", name, check=False)
