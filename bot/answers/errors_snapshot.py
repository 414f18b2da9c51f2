"""What /errors and its JSON show for a period: webhook and app errors, payment failures and their reasons, gathered
under one time budget like every answer (bot/answers/snapshots.py)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg

from bot.answers.snapshots import COMMAND_BUDGET, Lookup, gather_within
from bot.periods import Period
from queries import alerts, app_events, errors
from queries.alerts import AlertRow


@dataclass(frozen=True, slots=True)
class ErrorsSnapshot:
    """Everything /errors shows for one period."""

    period: Period
    now: dt.datetime
    webhook_errors: list[errors.ErrorGroup] | None
    webhooks_received: int | None
    payment_failures: int | None
    payments_succeeded: int | None
    failure_reasons: list[errors.ReasonCount] | None
    app_counts: dict[str, int] | None
    sync_failures: list[app_events.AppEvent] | None
    app_errors: list[app_events.AppEvent] | None
    alerts: list[AlertRow] | None = None
    missing: tuple[str, ...] = ()

    @property
    def payment_failure_rate(self) -> float | None:
        """Failed ÷ attempted payments, or None when unknown or nothing was attempted."""
        if self.payment_failures is None or self.payments_succeeded is None:
            return None
        attempts = self.payment_failures + self.payments_succeeded
        return self.payment_failures / attempts if attempts else None

    @property
    def webhook_error_count(self) -> int | None:
        """Webhook processing errors plus errors the store's app reported; None unless both were looked up."""
        return None if self.webhook_errors is None or self.app_counts is None else \
            self.webhook_only_errors + self.app_counts.get("error", 0)

    @property
    def webhook_only_errors(self) -> int:
        """Webhook processing errors alone: what is a share of the webhooks received (the app reports only errors,
        so its reports have no total to be a share of)."""
        return sum(g.count for g in self.webhook_errors or [])


async def errors_snapshot(pool: asyncpg.Pool, *, period: Period, now: dt.datetime,
                          budget: float = COMMAND_BUDGET) -> ErrorsSnapshot:
    """The figures of /errors for `period`."""
    start, end = period.start, period.end
    lookups: dict[str, Lookup] = {
        "webhook errors": lambda db: errors.webhook_errors(db, start=start, end=end),
        "webhooks received": lambda db: errors.webhooks_received(db, start=start, end=end),
        "payment failures": lambda db: errors.payment_failures(db, start=start, end=end),
        "payments": lambda db: errors.payments_succeeded(db, start=start, end=end),
        "failure reasons": lambda db: errors.failure_reasons(db, start=start, end=end),
        "reported events": lambda db: app_events.count_by_kind(db, start=start, end=end),
        "sync failures": lambda db: app_events.recent(db, kind="sync_failure", start=start, end=end, limit=5),
        "app errors": lambda db: app_events.recent(db, kind="error", start=start, end=end, limit=5),
        "alerts": alerts.firing,
    }
    got, missing = await gather_within(pool, lookups, budget=budget)
    return ErrorsSnapshot(
        period=period, now=now, webhook_errors=got.get("webhook errors"),
        webhooks_received=got.get("webhooks received"), payment_failures=got.get("payment failures"),
        payments_succeeded=got.get("payments"), failure_reasons=got.get("failure reasons"),
        app_counts=got.get("reported events"), sync_failures=got.get("sync failures"),
        app_errors=got.get("app errors"), alerts=got.get("alerts"), missing=missing)
