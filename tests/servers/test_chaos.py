"""Chaos on the capture server, seen by real SMTP clients (smtplib, swaks): Mailpit's triggers, our rules at
every stage, rate limits on the injected clock, and the API that sets them."""

from __future__ import annotations

import smtplib
import ssl
import subprocess
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from mailsandbox.app import Sandbox
from tests.conftest import require_binary

Start = Callable[..., Sandbox]
MESSAGE = b"From: a@x.test\r\nTo: b@y.test\r\nSubject: hi\r\n\r\nbody\r\n"


def _smtp(sb: Sandbox) -> smtplib.SMTP:
    address = sb.address("smtp")
    return smtplib.SMTP(address.host, address.port, timeout=10)


def _api(sb: Sandbox) -> httpx.Client:
    return httpx.Client(base_url=f"http://{sb.address('http')}", timeout=10)


def _chaos(sb: Sandbox, body: Any) -> httpx.Response:
    with _api(sb) as client:
        return client.put("/api/sandbox/chaos", json=body)


def _rules(sb: Sandbox, *rules: Any, **limits: int) -> None:
    response = _chaos(sb, {"Rules": list(rules), "RateLimit": limits or None})
    assert response.status_code == 200, response.text


def _count(sb: Sandbox) -> int:
    return sb.store.count()[0]


# -- Mailpit's triggers and API --------------------------------------------------------------------


def test_mailpit_api_answers_as_mailpit_when_chaos_is_off(running_sandbox: Sandbox) -> None:
    with _api(running_sandbox) as client:
        for response in (client.get("/api/v1/chaos"), client.put("/api/v1/chaos", json={})):
            assert (response.status_code, response.text) == (400, "Chaos is not enabled")
            assert response.headers["content-type"] == "text/plain"
        ours = client.put("/api/sandbox/chaos", json={"Rules": ["rcpt:550"]})
        assert ours.status_code == 400 and "not enabled" in ours.json()["Error"]
    with _smtp(running_sandbox) as smtp:  # and nothing fails
        assert smtp.sendmail("a@x.test", ["b@y.test"], MESSAGE) == {}


def test_chaos_triggers_flag_fails_the_sender(sandbox_factory: Start) -> None:
    sb = sandbox_factory(chaos_triggers="Sender:452:100")
    with _smtp(sb) as smtp:
        smtp.ehlo("me")
        assert smtp.mail("a@x.test") == (452, b"4.0.0 Chaos sender error")
        smtp.rset()
    with _api(sb) as client:
        assert client.get("/api/v1/chaos").json() == {
            "Sender": {"ErrorCode": 452, "Probability": 100},
            "Recipient": {"ErrorCode": 451, "Probability": 0},
            "Authentication": {"ErrorCode": 535, "Probability": 0},
        }


def test_put_chaos_sets_mailpit_triggers_and_resets_those_left_out(sandbox_factory: Start) -> None:
    sb = sandbox_factory(enable_chaos=True)
    with _api(sb) as client:
        response = client.put("/api/v1/chaos", json={"Recipient": {"ErrorCode": 550, "Probability": 100}})
        assert response.status_code == 200
        assert response.json()["Recipient"] == {"ErrorCode": 550, "Probability": 100}
        assert response.json()["Sender"] == {"ErrorCode": 451, "Probability": 0}
    with _smtp(sb) as smtp:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            smtp.sendmail("a@x.test", ["b@y.test"], MESSAGE)
        assert refused.value.recipients["b@y.test"] == (550, b"5.0.0 Chaos recipient error")
    with _api(sb) as client:
        assert client.put("/api/v1/chaos", json={}).json()["Recipient"] == {"ErrorCode": 451, "Probability": 0}
    with _smtp(sb) as smtp:
        assert smtp.sendmail("a@x.test", ["b@y.test"], MESSAGE) == {}


def test_authentication_trigger_refuses_a_good_login(sandbox_factory: Start) -> None:
    sb = sandbox_factory(smtp_auth_allow_insecure=True, chaos_triggers="Authentication:535:100")
    with _smtp(sb) as smtp, pytest.raises(smtplib.SMTPAuthenticationError) as refused:
        smtp.login("ann", "any")
    assert refused.value.smtp_code == 535


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"Sender": {"ErrorCode": 250, "Probability": 5}}, "400 to 599"),
        ({"Sender": {"ErrorCode": 451, "Probability": 101}}, "0 to 100"),
        ({"Recipient": {"ErrorCode": "x", "Probability": 1}}, "whole number"),
        ({"Sender": [1]}, "object"),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_mailpit_triggers_are_a_400(sandbox_factory: Start, body: Any, problem: str) -> None:
    sb = sandbox_factory(enable_chaos=True)
    with _api(sb) as client:
        response = client.put("/api/v1/chaos", json=body)
        assert response.status_code == 400 and problem in response.text
        assert client.put("/api/v1/chaos", content=b"{nope").status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        {"Rules": [{"Stage": "nowhere", "ErrorCode": 451}]},
        {"Rules": [{"Stage": "rcpt"}]},  # neither a code nor a delay
        {"Rules": [{"Stage": "disconnect", "ErrorCode": 451}]},
        {"Rules": [{"Stage": "rcpt", "ErrorCode": 451, "Every": 0}]},
        {"Rules": [{"Stage": "rcpt", "ErrorCode": 451, "Delay": 1e9}]},
        {"Rules": [{"Stage": "rcpt", "ErrorCode": 451, "Delay": "nan"}]},
        {"Rules": [{"Stage": "rcpt", "ErrorCode": 451, "Text": "a\r\nb"}]},
        {"Rules": [{"Stage": "rcpt", "ErrorCode": 451, "Recipient": 5}]},
        {"Rules": [{"Stage": "rcpt", "ErrorCode": 451, "Bogus": 1}]},
        {"Rules": ["rcpt:999"]},
        {"Rules": ["rcpt:451 wat=1"]},
        {"Rules": "rcpt:451"},
        {"Rules": [{"Stage": "mail", "ErrorCode": 451}] * 101},
        {"RateLimit": {"Messages": -1}},
        {"RateLimit": {"Minutes": 1}},
        {"Unknown": 1},
        "rules",
    ],
)
def test_bad_rules_are_a_400_and_change_nothing(sandbox_factory: Start, body: Any) -> None:
    sb = sandbox_factory(enable_chaos=True, chaos_rules=("mail:451 from=keep@x.test",))
    response = _chaos(sb, body)
    assert response.status_code == 400 and response.json()["Error"]
    with _api(sb) as client:
        assert [r["Sender"] for r in client.get("/api/sandbox/chaos").json()["Rules"]] == ["keep@x.test"]


# -- deterministic rules at each stage ----------------------------------------------------------------


def test_recipient_pattern_refuses_only_matching_recipients(sandbox_factory: Start) -> None:
    sb = sandbox_factory(chaos_rules=("rcpt:550 to=*@bounce.test",))
    with _smtp(sb) as smtp:
        refused = smtp.sendmail("a@x.test", ["ok@y.test", "Gone@Bounce.test"], MESSAGE)
    assert refused == {"Gone@Bounce.test": (550, b"5.0.0 Chaos rcpt error")}
    assert _count(sb) == 1


def test_sender_pattern_and_custom_text(sandbox_factory: Start) -> None:
    sb = sandbox_factory(enable_chaos=True)
    _rules(sb, {"Stage": "mail", "ErrorCode": 553, "Sender": "spam*@*", "Text": "Sender blocked by policy"})
    with _smtp(sb) as smtp:
        smtp.ehlo("me")
        assert smtp.mail("spammer@x.test") == (553, b"5.0.0 Sender blocked by policy")
        assert smtp.mail("ann@x.test")[0] == 250


def test_every_third_message_fails_after_data_and_is_not_stored(sandbox_factory: Start) -> None:
    sb = sandbox_factory(chaos_rules=("message:451 every=3",))
    codes = []
    with _smtp(sb) as smtp:
        for _ in range(6):
            try:
                smtp.sendmail("a@x.test", ["b@y.test"], MESSAGE)
                codes.append(250)
            except smtplib.SMTPDataError as exc:
                codes.append(exc.smtp_code)
    assert codes == [250, 250, 451, 250, 250, 451]
    assert _count(sb) == 4


def test_ehlo_and_data_stages(sandbox_factory: Start) -> None:
    sb = sandbox_factory(chaos_rules=("ehlo:554", "data:452"))
    with _smtp(sb) as smtp:
        assert smtp.ehlo("me")[0] == 554
        assert smtp.helo("me")[0] == 554  # HELO is the same stage
    sb2 = sandbox_factory(chaos_rules=("data:452",))
    with _smtp(sb2) as smtp, pytest.raises(smtplib.SMTPDataError) as refused:
        smtp.sendmail("a@x.test", ["b@y.test"], MESSAGE)
    assert refused.value.smtp_code == 452
    assert _count(sb2) == 0


def test_greeting_refusal_and_421_closes(sandbox_factory: Start) -> None:
    sb = sandbox_factory(chaos_rules=("greeting:554 every=2", "rcpt:421"))
    address = sb.address("smtp")
    with _smtp(sb) as smtp:  # the first connection is greeted
        smtp.ehlo("me")
        smtp.mail("a@x.test")
        assert smtp.rcpt("b@y.test")[0] == 421
        with pytest.raises(smtplib.SMTPServerDisconnected):
            smtp.noop()  # 421 means the server closed the channel
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        smtplib.SMTP(address.host, address.port, timeout=10)
    assert refused.value.smtp_code == 554


def test_delays_run_on_timers_and_hold_the_reply(sandbox_factory: Start) -> None:
    sb = sandbox_factory(chaos_rules=("greeting delay=0.3", "rcpt delay=0.3 to=slow@*"))
    began = time.monotonic()
    with _smtp(sb) as smtp:
        greeted = time.monotonic()
        smtp.ehlo("me")
        smtp.mail("a@x.test")
        assert smtp.rcpt("fast@y.test")[0] == 250
        before_slow = time.monotonic()
        assert smtp.rcpt("slow@y.test")[0] == 250
        after_slow = time.monotonic()
    assert greeted - began >= 0.3
    assert after_slow - before_slow >= 0.3
    # While one session waits, another is served at once: the delay is a timer, not a blocked loop.
    with _smtp(sb) as other:
        assert other.noop()[0] == 250


def test_disconnect_mid_data_stores_nothing(sandbox_factory: Start) -> None:
    sb = sandbox_factory(chaos_rules=("disconnect every=2",))
    with _smtp(sb) as smtp:
        assert smtp.sendmail("a@x.test", ["b@y.test"], MESSAGE) == {}
    with _smtp(sb) as smtp, pytest.raises(smtplib.SMTPServerDisconnected):
        smtp.sendmail("a@x.test", ["b@y.test"], MESSAGE)  # the content went out; no reply comes
    assert _count(sb) == 1
    with _smtp(sb) as smtp:  # the server keeps serving
        assert smtp.sendmail("a@x.test", ["b@y.test"], MESSAGE) == {}


def test_tls_handshake_failure(sandbox_factory: Start) -> None:
    sb = sandbox_factory(chaos_rules=("tls",))
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with _smtp(sb) as smtp, pytest.raises((ssl.SSLError, OSError, smtplib.SMTPServerDisconnected)):
        smtp.starttls(context=context)


def test_swaks_sees_the_configured_code(sandbox_factory: Start) -> None:
    swaks = require_binary("swaks")
    sb = sandbox_factory(chaos_rules=("rcpt:550 to=*@bounce.test",))
    address = sb.address("smtp")
    run = subprocess.run(
        [swaks, "--server", f"{address.host}:{address.port}", "--from", "a@x.test", "--to", "x@bounce.test"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert run.returncode != 0
    assert "<** 550 5.0.0 Chaos rcpt error" in run.stdout


# -- rate limits on the injected clock -------------------------------------------------------------


def test_connections_per_minute_then_421_until_the_minute_passes(sandbox_factory: Start) -> None:
    sb = sandbox_factory(smtp_max_connections_per_minute=2)
    address = sb.address("smtp")
    for _ in range(2):
        with _smtp(sb) as smtp:
            assert smtp.noop()[0] == 250
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        smtplib.SMTP(address.host, address.port, timeout=10)
    assert refused.value.smtp_code == 421
    sb.clock.advance(61)
    with _smtp(sb) as smtp:
        assert smtp.noop()[0] == 250


def test_messages_per_minute_then_451_at_mail(sandbox_factory: Start) -> None:
    sb = sandbox_factory(enable_chaos=True)
    _rules(sb, Messages=3)
    with _smtp(sb) as smtp:
        for _ in range(3):
            smtp.sendmail("a@x.test", ["b@y.test"], MESSAGE)
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            smtp.sendmail("a@x.test", ["b@y.test"], MESSAGE)
        assert refused.value.smtp_code == 451
        sb.clock.advance(30)
        with pytest.raises(smtplib.SMTPSenderRefused):
            smtp.sendmail("a@x.test", ["b@y.test"], MESSAGE)  # still the same minute
        sb.clock.advance(31)
        assert smtp.sendmail("a@x.test", ["b@y.test"], MESSAGE) == {}
    assert _count(sb) == 4


def test_delete_turns_everything_off(sandbox_factory: Start) -> None:
    sb = sandbox_factory(chaos_rules=("mail:451",), chaos_triggers="Recipient:451:100")
    with _api(sb) as client:
        state = client.delete("/api/sandbox/chaos").json()
    assert state["Rules"] == [] and state["Triggers"]["Recipient"]["Probability"] == 0 and state["Enabled"]
    with _smtp(sb) as smtp:
        assert smtp.sendmail("a@x.test", ["b@y.test"], MESSAGE) == {}
