"""Authentication settings in the TOML file, the environment and the CLI."""

from __future__ import annotations

from pathlib import Path

from mailsandbox.cli import build_parser
from mailsandbox.config import Config
from mailsandbox.relay.faults import HostBehaviour

TOML = '''
auth-checks = false

[hosts."lists.example.test"]
relay_to = "mx.example.test"
rewrite_body = """--
You are subscribed to team@example.test"""
arc_seal = { domain = "example.test", selector = "arc1" }
dkim_sign = { domain = "example.test", selector = "s1" }
'''


def test_toml_turns_checks_off_and_configures_a_signing_hop(tmp_path: Path) -> None:
    path = tmp_path / "mailsandbox.toml"
    path.write_text(TOML)
    config = Config.load(environ={}, config_file=path)
    assert config.auth_checks is False
    hop = HostBehaviour.from_json(config.hosts["lists.example.test"])
    assert hop.arc_seal is not None and (hop.arc_seal.domain, hop.arc_seal.selector) == ("example.test", "arc1")
    assert hop.dkim_sign is not None and hop.dkim_sign.key == ""  # made (and published) when the relay starts
    assert hop.rewrite_body == "--\nYou are subscribed to team@example.test"
    assert HostBehaviour.from_json(hop.to_json()) == hop


def test_environment_and_flag() -> None:
    assert Config.load(environ={"MAILSANDBOX_AUTH_CHECKS": "off"}).auth_checks is False
    assert Config().auth_checks is True
    args = build_parser().parse_args(["serve", "--auth-checks", "off"])
    assert Config.load(environ={}, overrides={"auth_checks": args.auth_checks}).auth_checks is False
