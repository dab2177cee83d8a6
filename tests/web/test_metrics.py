"""/metrics (--enable-prometheus): scraped with httpx after real SMTP sends and read with the Prometheus
client's own text parser; behind the same Host and authentication rules as the API."""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mailsandbox.app import Sandbox, SandboxThread
from mailsandbox.config import Config, Listen, SettingError
from mailsandbox.startup import StartupError
from tests.conftest import free_config


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Sandbox]]:
    threads: list[SandboxThread] = []

    def run(**overrides: object) -> Sandbox:
        thread = SandboxThread(free_config(tmp_path, auth_checks=False, **overrides))
        threads.append(thread)
        return thread.start()

    yield run
    for thread in threads:
        thread.stop()


def url(sandbox: Sandbox, listener: str = "http") -> str:
    address = sandbox.address(listener)
    return f"http://{address.host}:{address.port}/metrics"


def scrape(address: str, **kwargs: object) -> dict[str, float]:
    """Every sample as 'name{label="value",...}' -> value."""
    response = httpx.get(address, timeout=10, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def send(sandbox: Sandbox, count: int, to: str = "b@example.test") -> int:
    smtp = sandbox.address("smtp")
    size = 0
    with smtplib.SMTP(smtp.host, smtp.port) as client:
        for i in range(count):
            message = EmailMessage()
            message["From"], message["To"], message["Subject"] = "a@example.test", to, f"m{i}"
            message.set_content("hello " * 50)
            client.send_message(message)
            size += len(message.as_bytes())
    return size


def test_metrics_count_what_smtp_accepted(start: Callable[..., Sandbox]) -> None:
    sandbox = start(enable_prometheus=True)
    before = scrape(url(sandbox))
    assert before["mailpit_messages"] == 0
    assert before["mailsandbox_store_write_seconds_count"] == 0
    size = send(sandbox, 3)
    httpx.put(url(sandbox).replace("/metrics", "/api/v1/messages"), json={"IDs": [], "Read": True}, timeout=10)
    sample = scrape(url(sandbox))
    assert sample["mailpit_messages"] == 3
    assert sample["mailpit_messages_unread"] == 0  # all marked read above
    assert sample["mailpit_smtp_accepted_total"] == 3
    assert sample["mailpit_smtp_accepted_size_bytes_total"] >= size  # plus our Received: lines
    assert sample["mailpit_smtp_rejected_total"] == sample["mailpit_smtp_ignored_total"] == 0
    assert sample["mailpit_database_size_bytes"] > 0
    # One SMTP connection since start (it has closed) and the scrapes' own HTTP connections.
    assert sample['mailsandbox_connections_opened_total{listener="smtp"}'] == 1
    assert sample['mailsandbox_connections{listener="http"}'] >= 1
    # The store write latency: one observation per message, in cumulative buckets.
    assert sample["mailsandbox_store_write_seconds_count"] == 3
    assert sample['mailsandbox_store_write_seconds_bucket{le="+Inf"}'] == 3
    assert 0 < sample["mailsandbox_store_write_seconds_sum"] < 30
    assert sample["mailsandbox_relay_queue_recipients"] >= 0
    assert 'mailsandbox_relay_deliveries_total{status="delivered"}' in sample
    assert "process_cpu_seconds_total" in sample  # the client library's standard collectors


def test_relay_outcomes_and_webhook_results_are_counted(start: Callable[..., Sandbox]) -> None:
    # A domain with no MX and no address in the fake DNS: the relay bounces it.
    sandbox = start(enable_prometheus=True, dns_strict=True, webhook_url="http://127.0.0.1:9/", webhook_limit=0)
    send(sandbox, 1, to="nobody@nowhere.invalid")
    address = url(sandbox)
    deadline = 100
    sample = scrape(address)
    while sample['mailsandbox_relay_deliveries_total{status="bounced"}'] < 1 and deadline:
        sample, deadline = scrape(address), deadline - 1
    assert sample['mailsandbox_relay_deliveries_total{status="bounced"}'] >= 1
    while sample.get('mailsandbox_webhook_attempts_total{status="error"}', 0) < 1 and deadline:
        sample, deadline = scrape(address), deadline - 1
    assert sample["mailsandbox_webhook_failures_total"] >= 1
    assert sample["mailsandbox_webhook_deliveries_total"] == 0


def test_metrics_are_off_by_default_and_follow_the_access_rules(start: Callable[..., Sandbox]) -> None:
    off = start()
    assert httpx.get(url(off), timeout=10).status_code == 404
    locked = start(enable_prometheus=True, api_token="s3cret")
    assert httpx.get(url(locked), timeout=10).status_code == 401
    assert scrape(url(locked), headers={"Authorization": "Bearer s3cret"})["mailpit_messages"] == 0
    rebinding = httpx.get(url(locked), headers={"Host": "attacker.example:8025", "Authorization": "Bearer s3cret"})
    assert rebinding.status_code == 403


def test_metrics_on_a_listener_of_their_own(start: Callable[..., Sandbox]) -> None:
    sandbox = start(enable_prometheus="127.0.0.1:0", api_token="s3cret")
    send(sandbox, 1)
    own = url(sandbox, "metrics")
    assert own != url(sandbox)
    assert httpx.get(own, timeout=10).status_code == 401
    sample = scrape(own, headers={"Authorization": "Bearer s3cret"})
    assert sample["mailpit_smtp_accepted_total"] == 1
    assert 'mailsandbox_connections_opened_total{listener="metrics"}' in sample
    assert httpx.get(url(sandbox), headers={"Authorization": "Bearer s3cret"}).status_code == 404
    # OpenMetrics for a scraper that asks for it
    asked = httpx.get(own, headers={"Authorization": "Bearer s3cret", "Accept": "application/openmetrics-text"})
    assert asked.headers["content-type"].startswith("application/openmetrics-text")
    assert asked.text.endswith("# EOF\n")


def test_enable_prometheus_takes_mailpits_values(tmp_path: Path) -> None:
    assert Config().enable_prometheus is False
    assert Config().replace(enable_prometheus="true").enable_prometheus is True
    assert Config().replace(enable_prometheus="false").enable_prometheus is False
    assert Config().replace(enable_prometheus="0.0.0.0:9090").enable_prometheus == Listen("0.0.0.0", 9090)
    with pytest.raises(SettingError, match="enable-prometheus: 'maybe' is not true, false or HOST:PORT"):
        Config.load(environ={}, overrides={"enable_prometheus": "maybe"})
    with pytest.raises(SettingError, match="--webhook-url: 'ftp://x' is not an http"):
        Config.load(environ={}, overrides={"webhook_url": "ftp://x"})


def test_a_metrics_port_in_use_is_one_line(start: Callable[..., Sandbox]) -> None:
    first = start(enable_prometheus="127.0.0.1:0")
    taken = first.address("metrics")
    with pytest.raises(StartupError, match=f"--enable-prometheus {taken}: the address is already in use"):
        start(enable_prometheus=str(taken))
