"""The checks' settings: Mailpit's flag names on the command line, the environment and the TOML file."""

from __future__ import annotations

from pathlib import Path

from mailsandbox.cli import build_parser
from mailsandbox.config import Config, Listen


def _flags(*argv: str) -> Config:
    args = build_parser().parse_args(["serve", *argv])
    overrides = {k: v for k, v in vars(args).items() if k not in ("command", "config", "verbose")}
    return Config.load(environ={}, overrides=overrides)


def test_defaults_refuse_internal_requests_and_have_no_spamd() -> None:
    config = _flags()
    assert config.allow_internal_http_requests is False and config.spamassassin is None


def test_flags() -> None:
    config = _flags("--allow-internal-http-requests", "--spamassassin", "127.0.0.1:783")
    assert config.allow_internal_http_requests is True
    assert config.spamassassin == Listen("127.0.0.1", 783)
    assert _flags("--enable-spamassassin", "[::1]:7830").spamassassin == Listen("::1", 7830)  # Mailpit's spelling


def test_environment_and_file(tmp_path: Path) -> None:
    env = {"MAILSANDBOX_ALLOW_INTERNAL_HTTP_REQUESTS": "true", "MAILSANDBOX_SPAMASSASSIN": "spamd.local:783"}
    config = Config.load(environ=env)
    assert config.allow_internal_http_requests and config.spamassassin == Listen("spamd.local", 783)
    toml = tmp_path / "sandbox.toml"
    toml.write_text('spamassassin = "127.0.0.1:1783"\nallow-internal-http-requests = true\n')
    config = Config.load(environ={}, config_file=toml)
    assert config.spamassassin == Listen("127.0.0.1", 1783) and config.allow_internal_http_requests
