"""@pytest.mark.mailsandbox: DNS records and host behaviours for one test, put back after it."""

from __future__ import annotations

import pytest
from _plugin_sources import INNER_OPTIONS, SEND

OPTIONS = INNER_OPTIONS

MARKED = (
    SEND
    + '''
import time

import pytest

ZONE = """
$ORIGIN marker.test.
@    300 IN MX 10 mx
mx   300 IN A  127.0.0.2
"""


def records(mail_sandbox):
    return {(r["name"], r["type"], r["value"].rstrip(".")) for r in mail_sandbox.dns.records()}


@pytest.fixture(scope="session")
def mail_sandbox_config(mail_sandbox_config):
    # A behaviour from the configuration: resets keep it, and the marker must put it back.
    return mail_sandbox_config.replace(hosts={"mx.kept.test": "permfail"})


@pytest.mark.mailsandbox(
    zone=ZONE,
    records=[("extra.test", "TXT", "v=spf1 -all"), {"name": "extra.test", "type": "A", "value": "127.0.0.9"}],
    hosts={"mx.marker.test": "down", "mx.kept.test": {"behaviour": "tempfail", "reply": "451 4.7.1 later"}},
)
def test_marker_applies(mail_sandbox):
    got = records(mail_sandbox)
    assert ("marker.test", "MX", "10 mx.marker.test") in got
    assert ("mx.marker.test", "A", "127.0.0.2") in got
    assert ("extra.test", "TXT", '"v=spf1 -all"') in got
    assert ("extra.test", "A", "127.0.0.9") in got
    assert mail_sandbox.hosts["mx.marker.test"]["behaviour"] == "down"
    assert mail_sandbox.hosts["mx.kept.test"]["reply"] == "451 4.7.1 later"


def test_marker_undone(mail_sandbox):
    # No outbox here, so nothing was reset: only the marker's undo can have cleaned up.
    names = {name for name, _, _ in records(mail_sandbox)}
    assert "marker.test" not in names and "mx.marker.test" not in names and "extra.test" not in names
    hosts = mail_sandbox.hosts.all()
    assert "mx.marker.test" not in hosts
    assert hosts["mx.kept.test"]["behaviour"] == "permfail"  # what was there before, restored


@pytest.mark.mailsandbox(hosts={"mx.class.test": "greylist"})
class TestOnAClass:
    def test_applies_to_each_method(self, mail_sandbox):
        assert mail_sandbox.hosts["mx.class.test"]["behaviour"] == "greylist"

    @pytest.mark.mailsandbox(hosts={"mx.class.test": "slow"})
    def test_the_closest_marker_wins(self, mail_sandbox):
        assert mail_sandbox.hosts["mx.class.test"]["delay"] == 30


@pytest.mark.mailsandbox(
    records=[("remote.test", "MX", "10 mx.remote.test"), ("mx.remote.test", "A", "192.0.2.10")],
    hosts={"mx.remote.test": "tempfail"},
)
def test_relay_trace_clock_and_bounce(mail_sandbox, outbox):
    send(mail_sandbox, subject="hi", to=("ann@remote.test",))
    msg = outbox.wait_for(to="ann@remote.test")
    deadline = time.monotonic() + 5  # the relay's first attempt follows the 250: wait for it to be recorded
    while not msg.trace and time.monotonic() < deadline:
        time.sleep(0.01)
    (hop,) = msg.trace
    assert (hop.host, hop.code, hop.status, hop.preference) == ("mx.remote.test", 451, "deferred", 10)
    mail_sandbox.clock.advance(5 * 24 * 3600 + 1)  # past give-up: the relay bounces it
    bounce = outbox.mailbox("noreply@app.example").wait_for(subject="Mail delivery failed")
    assert bounce.to == ["noreply@app.example"]
    assert len(msg.trace) >= 2 and msg.trace[-1].at > hop.at


@pytest.mark.mailsandbox(host={"mx.typo.test": "down"})
def test_misspelt_option(mail_sandbox):
    pass
'''
)


def test_marker_sets_and_undoes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_marked=MARKED)
    result = pytester.runpytest_inprocess(*OPTIONS)
    result.assert_outcomes(passed=5, errors=1)
    # The trailing * because Python 3.13 adds "Did you mean 'hosts'?"
    result.stdout.fnmatch_lines(["@pytest.mark.mailsandbox(*, zone=None, *): *unexpected keyword argument 'host'*"])
    assert "During handling" not in result.stdout.str()


def test_marker_is_registered_with_its_signature(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_inprocess("--markers", *OPTIONS)
    result.stdout.fnmatch_lines(["@pytest.mark.mailsandbox(*, zone=None, hosts=None, records=None): *"])
