"""The deployment example under examples/postgresql/: compose.yaml and kubernetes.yaml run `mailsandbox serve`
with flags and MAILSANDBOX_* variables the real command line and Config accept (an unknown variable would be
ignored without a word), the ports line up between compose, haproxy.cfg and the Service, and HAProxy itself
accepts haproxy.cfg without resolving the frontends' names."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mailsandbox.cli import FLAG_NAMES, build_parser
from mailsandbox.config import ENV_PREFIX, NAMES, Config, is_postgres
from tests.conftest import require_binary

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "postgresql"
# What each frontend serves, and the port it listens on in every file of the example.
PORTS = {"smtp": 1025, "http": 8025, "pop3": 1110, "imap": 1143}
DNS_PORT = 5353
FRONTENDS = ("mailsandbox-1", "mailsandbox-2", "mailsandbox-3")


def load_yaml(name: str) -> list[Any]:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed here: the YAML files are not parsed")
    return [doc for doc in yaml.safe_load_all((EXAMPLE / name).read_text()) if doc is not None]


def interpolate(value: str) -> str:
    """Compose's ${NAME:-default}, with the default (the example gives one wherever it interpolates)."""
    assert not re.search(r"\$\{[^}:]*\}", value), f"{value!r}: a variable without a default"
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}", r"\1", value).replace("$$", "$")


def serve_config(argv: list[str], environ: dict[str, str]) -> Config:
    """The Config that `argv` (mailsandbox serve ...) and `environ` give, through the real parser: an
    unknown flag or a bad value fails here as it would at start."""
    assert argv[:2] == ["mailsandbox", "serve"], argv
    unknown = sorted(k for k in environ if k.startswith(ENV_PREFIX) and k[len(ENV_PREFIX) :].lower() not in NAMES)
    assert not unknown, f"MAILSANDBOX_* variables that are no setting: {unknown}"
    try:
        args = build_parser().parse_args(argv[1:])
    except SystemExit:
        pytest.fail(f"mailsandbox serve refuses {argv[2:]}")
    overrides = {k: v for k, v in vars(args).items() if k in NAMES}
    return Config.load(environ=environ, overrides=overrides, override_names=FLAG_NAMES)


def assert_listens_everywhere(config: Config) -> None:
    listeners = {"smtp": config.smtp, "http": config.http, "pop3": config.pop3, "imap": config.imap}
    for name, listen in listeners.items():
        assert listen is not None and (listen.host, listen.port) == ("0.0.0.0", PORTS[name]), (name, listen)
    assert config.dns is not None and (config.dns.host, config.dns.port) == ("0.0.0.0", DNS_PORT)
    assert is_postgres(config.db_path), config.db_path


def test_every_setting_named_in_the_example_exists() -> None:
    # The commented-out lock-down variables and those the READMEs mention too.
    for path in sorted(EXAMPLE.iterdir()):
        for name in re.findall(r"\bMAILSANDBOX_([A-Z0-9_]+)", path.read_text()):
            assert name.lower() in NAMES, f"{path.name}: MAILSANDBOX_{name} is no setting"


def haproxy_sections() -> dict[str, list[list[str]]]:
    """haproxy.cfg's sections ("listen smtp", "defaults", ...) and their lines, split into words."""
    sections: dict[str, list[list[str]]] = {}
    current: list[list[str]] = []
    for raw in (EXAMPLE / "haproxy.cfg").read_text().splitlines():
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        if not raw[0].isspace():
            current = sections.setdefault(" ".join(words), [])
        else:
            current.append(words)
    return sections


def test_haproxy_balances_every_port_over_the_three_frontends() -> None:
    sections = haproxy_sections()
    for name, port in PORTS.items():
        lines = sections[f"listen {name}"]
        assert ["bind", f":{port}"] in lines, name
        servers = [words[1:3] for words in lines if words[0] == "server"]
        assert servers == [[frontend, f"{frontend}:{port}"] for frontend in FRONTENDS], name
    defaults = sections["defaults"]
    assert ["mode", "tcp"] in defaults  # the WebSocket at /api/events passes through
    # every frontend is checked on its /readyz, and a name that does not resolve yet does not stop HAProxy
    assert any(w[:2] == ["http-check", "send"] and "/readyz" in w for w in defaults)
    server_options = next(w for w in defaults if w[0] == "default-server")
    assert "check" in server_options and server_options[server_options.index("port") + 1] == str(PORTS["http"])
    assert "none" in server_options[server_options.index("init-addr") + 1].split(",")
    # POP3/IMAP and WebSocket clients keep their connections: no timeout under IMAP IDLE's 29 minutes
    for words in defaults:
        if words[0] == "timeout" and words[1] in ("client", "server", "tunnel"):
            assert words[2] in ("1h", "2h", "1d"), words


def test_haproxy_accepts_the_config() -> None:
    haproxy = require_binary("haproxy")
    proc = subprocess.run([haproxy, "-c", "-f", str(EXAMPLE / "haproxy.cfg")], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Configuration file is valid" in output, output
    # The only warnings allowed: the compose services' names, which do not resolve outside compose.
    warnings = [line for line in output.splitlines() if "[WARNING]" in line]
    assert all("could not resolve address" in line for line in warnings), output


def test_compose_runs_three_frontends_on_postgres_behind_haproxy() -> None:
    [compose] = load_yaml("compose.yaml")
    services = compose["services"]
    assert set(services) == {"postgres", "haproxy", *FRONTENDS}
    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:") and "healthcheck" in postgres
    [volume] = postgres["volumes"]
    assert volume.split(":")[0] in compose["volumes"]  # a named volume
    for name in FRONTENDS:
        frontend = services[name]
        assert frontend["build"]["context"] == "../.."  # the repository's Dockerfile
        assert frontend["depends_on"]["postgres"]["condition"] == "service_healthy"
        environ = {k: interpolate(str(v)) for k, v in frontend["environment"].items()}
        config = serve_config(frontend["command"], environ)
        assert_listens_everywhere(config)
        assert "@postgres:5432/" in config.db_path
        # the database password is the one the postgres service is given
        password = interpolate(postgres["environment"]["POSTGRES_PASSWORD"])
        assert config.db_path.startswith(f"postgresql://{postgres['environment']['POSTGRES_USER']}:{password}@")
    haproxy = services["haproxy"]
    assert haproxy["image"].startswith("haproxy:")
    assert any(v.startswith("./haproxy.cfg:") for v in haproxy["volumes"])
    published = {}
    for mapping in haproxy["ports"]:
        *_, host, inside = mapping.split(":")
        published[int(inside)] = int(host)
    assert {port: published[port] for port in PORTS.values()} == {port: port for port in PORTS.values()}
    binds = {int(w[1].rsplit(":", 1)[1]) for lines in haproxy_sections().values() for w in lines if w[0] == "bind"}
    assert set(published) == binds  # nothing published that HAProxy does not serve, and the reverse


def test_kubernetes_deployment_and_service() -> None:
    docs = {doc["kind"]: doc for doc in load_yaml("kubernetes.yaml")}
    assert set(docs) == {"Secret", "Deployment", "Service"}
    secret, deployment, service = docs["Secret"], docs["Deployment"], docs["Service"]
    assert deployment["spec"]["replicas"] == 3
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    environ = {}
    for var in container["env"]:
        if "value" in var:
            environ[var["name"]] = var["value"]
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secret["metadata"]["name"], var
            environ[var["name"]] = secret["stringData"][ref["key"]]
    assert "MAILSANDBOX_DB" in environ
    config = serve_config([*container["command"], *container["args"]], environ)
    assert_listens_everywhere(config)
    assert service["metadata"]["name"] in config.allowed_hosts  # the UI answers clients using the Service's name
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    named = {p["name"]: (p["containerPort"], p.get("protocol", "TCP")) for p in container["ports"]}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert named[container[probe]["httpGet"]["port"]] == (PORTS["http"], "TCP"), probe
    # the Service's ports go to the container's, the same numbers as in compose and haproxy.cfg
    selector = service["spec"]["selector"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    exposed = {}
    for port in service["spec"]["ports"]:
        number, protocol = named[port["targetPort"]]
        assert (port["port"], port.get("protocol", "TCP")) == (number, protocol), port
        exposed[port["name"]] = (number, protocol)
    assert {name: exposed[name] for name in PORTS} == {name: (port, "TCP") for name, port in PORTS.items()}
    assert exposed["dns"] == (DNS_PORT, "UDP")
