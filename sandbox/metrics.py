"""Prometheus metrics: a collector that reads the sandbox's own counts at scrape time.

Nothing is counted for Prometheus on the capture path: the collector reads what the sandbox already
keeps (the SMTP handler's integers, the connection limiters, the store's counts, the webhook's stats,
the store-latency buckets) when /metrics is scraped, on a web worker thread. Mailpit's metrics keep
Mailpit's names (`mailpit_*`, so its dashboards work); what Mailpit lacks is `mailsandbox_*`.
"""

from __future__ import annotations

import contextlib
import resource
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR, CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from mailsandbox.events import DeliveryAttempted, Event, EventBus


class RelayOutcomes:
    """Relay delivery attempts by status, counted from the bus (on the loop; a dict increment)."""

    def __init__(self) -> None:
        self.by_status: dict[str, int] = {}
        self._unsubscribe: Callable[[], None] | None = None

    def start(self, bus: EventBus) -> None:
        self._unsubscribe = bus.subscribe(self._on_event)

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, DeliveryAttempted):
            self.by_status[event.status] = self.by_status.get(event.status, 0) + 1


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


class SandboxCollector(Collector):
    """Reads a running `Sandbox` (duck-typed: this module sits below the composition root)."""

    def __init__(self, sandbox: Any, relay: RelayOutcomes) -> None:
        self._sandbox = sandbox
        self._relay = relay

    def collect(self) -> Iterator[Metric]:
        yield from self._mailpit()
        yield from self._connections()
        yield from self._relay_metrics()
        yield from self._store_latency()
        webhook = self._sandbox.webhook
        if webhook is not None:
            yield from _webhook(webhook)

    def _mailpit(self) -> Iterator[Metric]:
        sandbox = self._sandbox
        total, unread = sandbox.store.count()
        stats = sandbox.handler.stats if sandbox.handler is not None else None
        retention = sandbox.retention
        size = 0
        with contextlib.suppress(OSError, AttributeError):
            size = sandbox.database_size()
        yield _gauge("mailpit_messages", "Total number of messages in the database", total)
        yield _gauge("mailpit_messages_unread", "Number of unread messages in the database", unread)
        yield _gauge("mailpit_database_size_bytes", "Size of the database in bytes", size)
        yield _counter("mailpit_messages_deleted_total", "Total number of messages deleted",
                       retention.deleted if retention is not None else 0)  # fmt: skip
        yield _counter("mailpit_smtp_accepted_total", "Total number of SMTP messages accepted",
                       stats.accepted if stats else 0)  # fmt: skip
        yield _counter("mailpit_smtp_accepted_size_bytes_total", "Total size of accepted SMTP messages in bytes",
                       stats.accepted_size if stats else 0)  # fmt: skip
        yield _counter("mailpit_smtp_rejected_total", "Total number of SMTP messages rejected",
                       stats.rejected if stats else 0)  # fmt: skip
        yield _counter("mailpit_smtp_ignored_total", "Total number of SMTP messages ignored (duplicates)",
                       stats.ignored if stats else 0)  # fmt: skip
        yield _counter("mailsandbox_smtp_errors_total", "Messages not stored because the store failed (451)",
                       stats.errors if stats else 0)  # fmt: skip
        yield _gauge("mailpit_uptime_seconds", "Uptime in seconds", int(time.time() - sandbox.started_at))
        yield _gauge("mailpit_memory_usage_bytes", "Peak resident memory in bytes",
                     resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)  # fmt: skip

    def _connections(self) -> Iterator[Metric]:
        active = GaugeMetricFamily("mailsandbox_connections", "Open connections per listener", labels=["listener"])
        opened = CounterMetricFamily(
            "mailsandbox_connections_opened_total", "Connections accepted per listener", labels=["listener"]
        )
        refused = CounterMetricFamily(
            "mailsandbox_connections_refused_total", "Connections refused over a limit, per listener",
            labels=["listener"],
        )  # fmt: skip
        for name, limiter in sorted(self._sandbox.limiters.items()):
            active.add_metric([name], limiter.active)
            opened.add_metric([name], limiter.opened)
            refused.add_metric([name], limiter.refused)
        yield from (active, opened, refused)

    def _relay_metrics(self) -> Iterator[Metric]:
        sandbox = self._sandbox
        if sandbox.relay is not None:
            yield _gauge("mailsandbox_relay_queue_recipients", "Recipients waiting in the relay queue",
                         sandbox.store.queue_count())  # fmt: skip
        attempts = CounterMetricFamily(
            "mailsandbox_relay_deliveries_total", "Simulated delivery attempts by outcome", labels=["status"]
        )
        for status in ("delivered", "deferred", "bounced", "dropped"):  # every one, so rate() starts at 0
            attempts.add_metric([status], self._relay.by_status.get(status, 0))
        yield attempts

    def _store_latency(self) -> Iterator[Metric]:
        handler = self._sandbox.handler
        if handler is None:
            return
        latency = handler.stats.store_latency
        buckets = latency.cumulative()
        yield HistogramMetricFamily(
            "mailsandbox_store_write_seconds", "Time from handing a message to the store to its commit",
            buckets=buckets, sum_value=latency.sum,
        )  # fmt: skip


def _webhook(webhook: Any) -> Iterator[Metric]:
    stats = webhook.stats
    yield _counter("mailsandbox_webhook_deliveries_total", "Messages the webhook receiver accepted (2xx)",
                   stats.delivered)  # fmt: skip
    yield _counter("mailsandbox_webhook_failures_total", "Webhook POSTs that failed (error or non-2xx)",
                   stats.failed_attempts)  # fmt: skip
    yield _counter("mailsandbox_webhook_retries_total", "Webhook POSTs that were retries", stats.retries)
    yield _counter("mailsandbox_webhook_given_up_total", "Messages given up after the last retry", stats.given_up)
    yield _counter("mailsandbox_webhook_dropped_total", "Messages dropped from a full webhook queue", stats.dropped)
    yield _gauge("mailsandbox_webhook_queue", "Messages waiting to be sent to the webhook", webhook.queued)
    by_status = CounterMetricFamily(
        "mailsandbox_webhook_attempts_total", "Webhook POSTs by HTTP status ('error': no answer)", labels=["status"]
    )
    for status, count in sorted(stats.by_status.items()):
        by_status.add_metric([status], count)
    yield by_status


class Metrics:
    """The registry /metrics renders: the sandbox's collector and the client library's process metrics."""

    def __init__(self, sandbox: Any) -> None:
        self.relay = RelayOutcomes()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(SandboxCollector(sandbox, self.relay))
        for standard in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(standard)

    def start(self, bus: EventBus) -> None:
        self.relay.start(bus)

    async def stop(self) -> None:
        self.relay.stop()

    def render(self, accept: str) -> tuple[bytes, str]:
        """The exposition the scraper asked for (`Accept`: OpenMetrics or the text format); blocking:
        it reads the store, so it runs on a worker thread."""
        encode, content_type = choose_encoder(accept)
        return encode(self.registry), content_type
