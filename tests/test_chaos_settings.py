"""Chaos settings from flags, the environment and TOML: read into the sandbox's rules, and a bad one is a
one-line error naming the flag (the real command in a subprocess)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailsandbox.chaos import Rule, from_settings, parse_rule, parse_triggers
from mailsandbox.config import Config, SettingError
from tests.test_cli_errors import QUIET, one_line, run


def test_toml_and_environment_set_chaos(tmp_path: Path) -> None:
    toml = tmp_path / "sandbox.toml"
    toml.write_text('chaos-rules = ["rcpt:550 to=*@bounce.test", "message:451 every=3"]\n'
                    'smtp-max-connections-per-minute = 5\n')  # fmt: skip
    cfg = Config.load(environ={"MAILSANDBOX_CONFIG": str(toml), "MAILSANDBOX_CHAOS_TRIGGERS": "Sender:452:10"})
    chaos = from_settings(cfg.enable_chaos, cfg.chaos_triggers, cfg.chaos_rules, cfg.smtp_max_messages_per_minute,
                          cfg.smtp_max_connections_per_minute, clock=lambda: 0.0)  # fmt: skip
    assert chaos.enabled  # any chaos setting enables it, as Mailpit's --chaos-triggers does
    assert chaos.rules == [Rule("rcpt", 550, recipient="*@bounce.test"), Rule("message", 451, every=3)]
    assert chaos.mailpit_json()["Sender"] == {"ErrorCode": 452, "Probability": 10}
    assert chaos.rate_limit.connections == 5
    assert not from_settings(False, None, (), 0, 0, clock=lambda: 0.0).enabled


def test_rule_syntax() -> None:
    assert parse_rule("greeting delay=2.5") == Rule("greeting", delay=2.5)
    assert parse_rule("MAIL:553 from=*@spam.test p=50") == Rule("mail", 553, sender="*@spam.test", probability=50)
    assert parse_triggers("recipients:450:5,auth:535:100")["Authentication"].probability == 100


@pytest.mark.parametrize(
    ("field", "value"),
    [("chaos_triggers", "Sender:451"), ("chaos_triggers", "Nobody:451:5"), ("chaos_rules", ("rcpt:200",))],
)
def test_bad_values_name_the_setting(field: str, value: object) -> None:
    with pytest.raises(SettingError) as refused:
        Config(**{field: value})  # type: ignore[arg-type]
    assert refused.value.setting == field


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--chaos-triggers", "Sender:451:500"], ("--chaos-triggers", "0 to 100")),
        (["--chaos-rule", "rcpt:550 wat=1"], ("--chaos-rule", "wat=1")),
        (["--smtp-max-messages-per-minute", "-1"], ("--smtp-max-messages-per-minute",)),
    ],
)
def test_bad_flags_are_one_line(tmp_path: Path, args: list[str], expected: tuple[str, ...]) -> None:
    one_line(*run(["serve", *QUIET, *args], tmp_path), *expected)
