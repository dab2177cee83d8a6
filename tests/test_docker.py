"""The Dockerfile, built and run: mail sent into the container is read back through the API, and kept
across a restart. CI has no registry, so .ci/run builds a Debian base with debootstrap and a folder of
wheels (MAILSANDBOX_DOCKER_BASE, MAILSANDBOX_DOCKER_WHEELS), and builds the image before the suite so
that the build's load does not fall on the suite's timing tests (MAILSANDBOX_DOCKER_IMAGE)."""

from __future__ import annotations

import os
import re
import smtplib
import subprocess
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


def docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    # The classic builder: it needs no buildx plugin and reports the size of the build context.
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout + proc.stderr


def need(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what}; .ci/run must provide it")
    pytest.skip(what)


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    require_binary("docker")
    if subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode != 0:
        need("the docker daemon is not running")
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
    output = docker(*args, str(ROOT), timeout=900)
    context = re.search(r"Sending build context to Docker daemon\s+([\d.]+)([kMG]?B)", output)
    if context:  # .dockerignore keeps .venv, .git and the tests out
        size = float(context.group(1)) * {"B": 1e-6, "kB": 1e-3, "MB": 1, "GB": 1e3}[context.group(2)]
        assert size < 30, f"the build context is {size:.1f} MB"
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
    docker("run", "-d", "--name", name, "-p", "127.0.0.1::1025", "-p", "127.0.0.1::8025",
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
