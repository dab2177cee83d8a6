"""Config: defaults < TOML file < MAILSANDBOX_* environment < CLI flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailsandbox.config import Config, ConfigError, Listen, SettingError, parse_listen


def test_defaults_are_loopback_and_mailpit_ports() -> None:
    c = Config.load(environ={})
    assert c.smtp == Listen("127.0.0.1", 1025) and c.http == Listen("127.0.0.1", 8025)
    assert c.pop3 == Listen("127.0.0.1", 1110) and c.imap == Listen("127.0.0.1", 1143)
    assert c.dns == Listen("127.0.0.1", 5353)
    assert c.smtp_auth is None and not c.require_tls and c.relay


def test_precedence_toml_env_flags(tmp_path: Path) -> None:
    toml = tmp_path / "sandbox.toml"
    toml.write_text(
        'smtp = "127.0.0.1:2525"\nhttp = "127.0.0.1:9000"\nmax-messages = 10\npop3 = "off"\n'
        'zones = ["a.zone"]\n[hosts."mx1.example.test"]\nbehaviour = "down"\n'
    )
    c = Config.load(
        environ={"MAILSANDBOX_HTTP": "127.0.0.1:9001", "MAILSANDBOX_MAX_MESSAGES": "20", "OTHER": "x"},
        config_file=toml,
        overrides={"max_messages": 30, "imap": None},
    )
    assert c.smtp == Listen("127.0.0.1", 2525)  # from the file
    assert c.http == Listen("127.0.0.1", 9001)  # the environment beats the file
    assert c.max_messages == 30  # a flag beats both
    assert c.pop3 is None and c.imap == Listen("127.0.0.1", 1143)  # an unset flag changes nothing
    assert c.zones == (tmp_path / "a.zone",)  # relative to the file
    assert c.hosts == {"mx1.example.test": {"behaviour": "down"}}


def test_config_file_from_environment(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("require_tls = true\n")
    assert Config.load(environ={"MAILSANDBOX_CONFIG": str(toml)}).require_tls


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:25", Listen("127.0.0.1", 25)), (":2525", Listen("127.0.0.1", 2525)),
     ("2525", Listen("127.0.0.1", 2525)), ("[::1]:25", Listen("::1", 25)),
     ("0.0.0.0:1025", Listen("0.0.0.0", 1025)), ("off", None), ("OFF", None)],
)  # fmt: skip
def test_parse_listen(text: str, expected: Listen | None) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("bad", ["host:port", "1.2.3.4:99999", "a:b:c"])
def test_bad_listen_is_an_error(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_listen(bad)


def test_credentials_inline_and_from_file(tmp_path: Path) -> None:
    assert Config.load(environ={"MAILSANDBOX_SMTP_AUTH": "a:1,b:two:colons"}).smtp_auth == {"a": "1", "b": "two:colons"}
    creds = tmp_path / "users"
    creds.write_text("# users\nann:secret\n\nbob:pw\n")
    assert Config.load(environ={}, overrides={"smtp_auth": f"@{creds}"}).smtp_auth == {"ann": "secret", "bob": "pw"}
    with pytest.raises(ValueError):
        Config.load(environ={"MAILSANDBOX_SMTP_AUTH": "nopassword"})


def test_unknown_setting_is_an_error(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("smpt = '127.0.0.1:25'\n")
    with pytest.raises(ConfigError, match=r"c\.toml: unknown setting 'smpt'"):
        Config.load(environ={}, config_file=toml)
    with pytest.raises(SettingError, match="smpt: unknown setting"):
        Config().replace(smpt="127.0.0.1:25")


def test_memory_db_and_db_path(tmp_path: Path) -> None:
    assert Config(db=":memory:").db_path == ":memory:"
    assert Config(data_dir=tmp_path).db_path == str(tmp_path / "mailsandbox.db")


def test_access_settings_from_toml_env_and_flags(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text(
        'allowed-hosts = ["mail.test", "*.ci.internal"]\nui_auth_file = "/run/secrets/ui"\napi_cors = "*"\n'
        'smtp_auth = "alice:pw"\nauth_failure_limit = 5\n[mailbox_access]\nalice = ["*@team.example", "x@y.test"]\n'
    )
    c = Config.load(environ={}, config_file=toml)
    assert c.allowed_hosts == ("mail.test", "*.ci.internal") and c.api_cors == ("*",)
    assert c.ui_auth_file == Path("/run/secrets/ui") and c.auth_failure_limit == 5
    assert c.mailbox_access == {"alice": ("*@team.example", "x@y.test")}
    env = {"MAILSANDBOX_API_TOKEN": " tok ", "MAILSANDBOX_ALLOWED_HOSTS": "a.test,b.test",
           "MAILSANDBOX_SMTP_AUTH_ACCEPT_ANY": "true", "MAILSANDBOX_AUTH_FAILURE_DELAY": "0.5",
           "MAILSANDBOX_MAILBOX_ACCESS": "alice=*@a.test|b@c.test;ops=ops@*"}  # fmt: skip
    c = Config.load(environ=env, config_file=toml, overrides={"api_cors": "https://dash.example"})
    assert c.api_token == "tok" and c.allowed_hosts == ("a.test", "b.test") and c.smtp_auth_accept_any
    assert c.auth_failure_delay == 0.5 and c.api_cors == ("https://dash.example",)
    assert c.mailbox_access == {"alice": ("*@a.test", "b@c.test"), "ops": ("ops@*",)}
    defaults = Config.load(environ={})
    assert defaults.allowed_hosts == () and defaults.ui_auth_file is None and defaults.api_token is None
    assert defaults.api_cors == () and not defaults.smtp_auth_accept_any and defaults.mailbox_access == {}
    with pytest.raises(ValueError):
        Config.load(environ={"MAILSANDBOX_MAILBOX_ACCESS": "alice"})


@pytest.mark.parametrize(
    ("changes", "setting"),
    [({"max_messages": -5}, "max_messages"), ({"max_message_size": 0}, "max_message_size"),
     ({"max_connections": -1}, "max_connections"), ({"retry_interval": 0}, "retry_interval"),
     ({"give_up_after": "inf"}, "give_up_after"), ({"tls_cert": "c.pem"}, "tls_cert"),
     ({"tls_key": "k.pem"}, "tls_key"), ({"fsync": "maybe"}, "fsync"), ({"max_messages": "1.5"}, "max_messages"),
     ({"max_messages": True}, "max_messages"), ({"hostname": " "}, "hostname")],
)  # fmt: skip
def test_values_that_would_misbehave_are_refused(changes: dict[str, object], setting: str) -> None:
    with pytest.raises(SettingError) as caught:
        Config().replace(**changes)
    assert caught.value.setting == setting


def test_a_bad_value_names_where_it_came_from(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("max-messages = -1\n")
    with pytest.raises(SettingError, match=r"^config file .*c\.toml: max-messages: -1 is below 0"):
        Config.load(environ={}, config_file=toml)
    with pytest.raises(SettingError, match=r"^MAILSANDBOX_MAX_MESSAGES: 'x' is not a whole number"):
        Config.load(environ={"MAILSANDBOX_MAX_MESSAGES": "x"})
    with pytest.raises(SettingError, match=r"^--zone: "):
        Config.load(environ={}, overrides={"zones": 5}, override_names={"zones": "--zone"})
    with pytest.raises(SettingError, match=r"^--max-messages: -2"):
        Config.load(environ={}, overrides={"max_messages": "-2"})


def test_switches_and_zero_limits_are_accepted() -> None:
    c = Config.load(
        environ={"MAILSANDBOX_FSYNC": "yes", "MAILSANDBOX_RELAY": "off"}, overrides={"max_connections": "0"}
    )
    assert c.fsync and not c.relay and c.max_connections == 0
    assert Config(tls_cert=Path("c.pem"), tls_key=Path("k.pem")).tls_key == Path("k.pem")
