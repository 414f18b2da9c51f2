"""Prometheus metrics for the bot itself, in an explicit registry carried by Deps (no global state)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Buckets around what matters: Slack's 3 s command limit, and sub-second intake.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)


class Metrics:
    """Every metric the bot exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.webhooks = Counter("salespulse_webhooks_received_total", "Webhooks received, by outcome",
                                ["source", "type", "outcome"], registry=self.registry)
        self.webhooks_applied = Counter(
            "salespulse_webhooks_applied_total",
            "Webhooks answered 202 (stored in the inbox during a burst) and applied after, by outcome",
            ["source", "type", "outcome"], registry=self.registry)
        self.intake_latency = Histogram("salespulse_intake_seconds", "Time to verify, store and queue a webhook",
                                        ["source"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.command_latency = Histogram("salespulse_command_seconds", "Time to build a slash command answer",
                                         ["command"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.deliveries = Counter("salespulse_deliveries_total", "Slack delivery attempts, by outcome",
                                  ["channel", "outcome"], registry=self.registry)
        self.slack_errors = Counter("salespulse_slack_api_errors_total", "Errors answered by Slack",
                                    ["error"], registry=self.registry)
        # labels() costs a few µs (validation, a lock, a lookup) — per webhook, on the intake's hot path.
        self._webhook_counts: dict[tuple[str, str, str], Any] = {}
        self._applied_counts: dict[tuple[str, str, str], Any] = {}
        self._intake_timers: dict[str, Any] = {}

    def webhook_received(self, source: str, event_type: str, outcome: str, seconds: float | None = None) -> None:
        """Count a webhook by source, type and outcome, and time it when `seconds` is given."""
        _by_webhook(self.webhooks, self._webhook_counts, source, event_type, outcome).inc()
        if seconds is not None:
            if (timer := self._intake_timers.get(source)) is None:
                timer = self._intake_timers[source] = self.intake_latency.labels(source=source)
            timer.observe(seconds)

    def webhook_applied(self, source: str, event_type: str, outcome: str) -> None:
        """Count a webhook that was answered 202 "queued" by what applying it did (processed, duplicate, …)."""
        _by_webhook(self.webhooks_applied, self._applied_counts, source, event_type, outcome).inc()

    def render(self, outbox: Outbox | None) -> bytes:
        """The Prometheus text exposition of the registry, with the outbox as read for this scrape.

        Without a reading (PostgreSQL unreachable) the outbox gauges are left out rather than served stale, and
        salespulse_database_up is 0: the in-process counters stay useful, so the scrape itself does not fail
        (https://prometheus.io/docs/instrumenting/writing_exporters/#failed-scrapes)."""
        scrape = CollectorRegistry(auto_describe=True)
        up = Gauge("salespulse_database_up", "1 when this scrape read PostgreSQL in time, else 0", registry=scrape)
        up.set(outbox is not None)
        if outbox is not None:
            Gauge("salespulse_outbox_backlog", "Messages waiting for delivery", registry=scrape).set(outbox.backlog)
            Gauge("salespulse_outbox_oldest_age_seconds", "Age of the oldest undelivered message",
                  registry=scrape).set(outbox.oldest_age)
            # Past the delivery_stuck rule's threshold /health calls delivery stuck (a held one counts from its
            # hold's end).
            Gauge("salespulse_outbox_oldest_due_age_seconds", "How long the oldest message due for Slack has been"
                  " waiting", registry=scrape).set(outbox.oldest_due_age)
        return generate_latest(self.registry) + generate_latest(scrape)


@dataclass(frozen=True, slots=True)
class Outbox:
    """The outbox as one scrape read it from PostgreSQL."""

    backlog: int
    oldest_age: float  # seconds
    oldest_due_age: float  # seconds


def _by_webhook(counter: Counter, children: dict[tuple[str, str, str], Any], source: str, event_type: str,
                outcome: str) -> Any:
    """The counter's child for this source, type (cut to 60 characters) and outcome, made once and kept."""
    key = (source, event_type[:60], outcome)
    if (child := children.get(key)) is None:
        child = children[key] = counter.labels(source=source, type=key[1], outcome=outcome)
    return child
