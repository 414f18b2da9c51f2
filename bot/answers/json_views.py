"""JSON views of the snapshots with the original guide's field names; money stays in minor units."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from bot.affiliation import TEAM_READ_MISSING
from bot.answers import health_levels as level
from bot.answers.errors_snapshot import ErrorsSnapshot
from bot.answers.hourly import Hourly
from bot.answers.mrr_json import subscriptions_json
from bot.answers.snapshots import HealthSnapshot, SalesSnapshot
from bot.currency import StoreTotals, average
from queries.alerts import AlertRow
from queries.sales import CurrencyTotal, TrendPoint

# The guide's own alert thresholds ("errorCount > 5 || paymentFailureCount > 3").
GUIDE_ERROR_THRESHOLD = 5
GUIDE_PAYMENT_FAILURE_THRESHOLD = 3


def _iso(t: dt.datetime | None) -> str | None:
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if t else None


def primary_currency(*groups: Sequence[CurrencyTotal] | None, account: str | None = None) -> str:
    """The currency `revenue` fields are in without a store currency: the Stripe account's when it was ever read
    (`account`), else the first group's currency with the most orders, else USD (nothing sold in any). Amounts in
    different currencies cannot be ranked without a rate (₩50,000 is about $36), so revenue, in minor units, only
    breaks ties between currencies with as many orders."""
    if account is not None:
        return account
    for group in groups:
        if group:
            return max(group, key=lambda t: (t.orders, t.revenue, t.currency)).currency
    return "USD"


def _money(totals: Sequence[CurrencyTotal] | None, currency: str) -> dict[str, Any]:
    """Orders and revenue of a group of totals; null, not 0, when they were not looked up in time."""
    if totals is None:
        return {"order_count": None, "revenue": None, "currency": currency, "revenue_by_currency": None}
    by_currency = {t.currency: t.revenue for t in totals}
    return {"order_count": sum(t.orders for t in totals), "revenue": by_currency.get(currency, 0),
            "currency": currency, "revenue_by_currency": by_currency}


def _store_money(st: StoreTotals | None, note: str | None = None) -> dict[str, Any]:
    """With a store currency, `revenue` is in it (gross: settled amounts, or face value in that currency) and
    `currency` names it; the net, fees and refunds beside it; orders not converted yet stay in their own."""
    if st is None:
        return {"store_currency": None, "store_currency_note": note}
    return {"revenue": st.gross, "currency": st.currency, "store_currency": st.currency,
            "revenue_net": st.net if st.with_fees else None, "fees": st.fees if st.with_fees else None,
            "refunds_settled": st.refunds if st.with_fees else None,
            "fees_pending_orders": st.unsettled + sum(t.orders for t in st.pending) if st.with_fees else None,
            # orders in the store currency Stripe settled in another: in `revenue` at face value, fees never known
            "fees_unknown_orders": st.fees_unknown if st.with_fees else None,
            "not_converted": {t.currency: t.revenue for t in st.pending},
            # orders Stripe settled in another currency than the store's: given up on, in no figure above
            "settled_elsewhere": {t.currency: t.revenue for t in st.aside}}


def _hourly_sales(hourly: Hourly | None, currency: str, note: str | None) -> list[dict[str, Any]] | None:
    """The last 24 h by hour, newest first; in the store currency too when `hourly.store` has it. None when they
    were not looked up in time: an empty list would say nothing sold in 24 hours."""
    if hourly is None:
        return None
    hours: dict[dt.datetime, list[TrendPoint]] = {hour: [] for hour in hourly.store or {}}
    for point in hourly.points:  # and an hour whose orders were all refunded still has their fees in the store's
        hours.setdefault(point.bucket, []).append(point)
    out = []
    for hour in sorted(hours, reverse=True):
        points = hours[hour]
        totals = [CurrencyTotal(p.currency, p.orders, p.revenue) for p in points]
        in_primary = [p for p in points if p.currency == currency]
        avg = average(in_primary[0].revenue, in_primary[0].orders) if in_primary and in_primary[0].orders else 0
        extra: dict[str, Any] = {}
        if hourly.store is not None:
            st = hourly.store.get(hour)
            extra = _store_money(st, note)
            if st is not None:  # the average of the orders in the store currency by now
                avg = average(st.gross, st.converted) if st.converted > 0 else 0
        out.append({"hour": _iso(hour), **_money(totals, currency), **extra, "avg_order_value": avg})
    return out


def sales_json(today: SalesSnapshot, hourly: Hourly | None) -> dict[str, Any]:
    """GET /api/monitoring/sales: lastHour, today, hourlySales (last 24 h, newest first), pendingCheckouts.

    With a store currency every `revenue` (last hour, today, each hour) is in it, as `currency` says."""
    # A quiet morning: last week's. The account's currency comes with the hours' lookup (null when it was late).
    currency = primary_currency(today.totals, today.last_hour, today.previous,
                                account=hourly.account if hourly is not None else None)
    conv = today.conversion
    last_hour = _store_money(today.store_last_hour, today.store_note) if today.store is not None else {}
    return {
        "lastHour": {**_money(today.last_hour, currency), **last_hour, "last_order_at": _iso(today.last_order_at)},
        "today": {**_money(today.totals, currency),
                  **_store_money(today.store, today.store_note),
                  "unique_customers": today.customers,
                  # None when exact; else the relative error bound of the sketch's estimate (0.03)
                  "unique_customers_error": today.customers_error,
                  # completed orders with no email: unique_customers (distinct emails) cannot count their customers
                  "orders_without_email": None if today.customers is None else today.customers_without_email},
        "hourlySales": _hourly_sales(hourly, currency, today.store_note),
        "pendingCheckouts": today.pending_checkouts,
        "conversion": None if conv is None else {"started": conv.started, "completed": conv.completed,
                                                  "rate": conv.rate},
        "subscriptions": subscriptions_json(today.subscriptions,
                                            store=today.store.currency if today.store is not None else None),
        "timestamp": _iso(today.now),
        "missing": list(today.missing),
    }


def _errors_by_type(s: ErrorsSnapshot) -> list[dict[str, Any]] | None:
    """Webhook errors per event type, then the store app's reported errors; None unless both were looked up."""
    if s.webhook_errors is None or s.app_counts is None:
        return None
    by_type = [{"event_type": g.event_type, "count": g.count, "last_error": g.last_error,
                "last_error_at": _iso(g.last_at)} for g in s.webhook_errors]
    if s.app_counts.get("error"):
        by_type.append({"event_type": "app.error", "count": s.app_counts["error"], "last_error":
                        s.app_errors[0].message if s.app_errors else None,
                        "last_error_at": _iso(s.app_errors[0].occurred_at) if s.app_errors else None})
    return by_type


def _alerts_triggered(s: ErrorsSnapshot) -> bool | None:
    """Firing alerts when the alert engine's state is known; else the guide's own thresholds, true as soon as a
    figure that was read exceeds its own, false only when every figure was read: an unread one may exceed it."""
    if s.alerts is not None:
        return bool(s.alerts)
    total, failures = s.webhook_error_count, s.payment_failures
    if (total or 0) > GUIDE_ERROR_THRESHOLD or (failures or 0) > GUIDE_PAYMENT_FAILURE_THRESHOLD:
        return True
    return None if total is None or failures is None else False


def errors_json(s: ErrorsSnapshot) -> dict[str, Any]:
    """GET /api/monitoring/errors: errors{total,byType}, paymentFailures, ghlFailures, alertsTriggered; a figure
    not looked up in time is null (and named in `missing`), never a 0 that would read as "no errors"."""
    return {
        "errors": {"total": s.webhook_error_count, "byType": _errors_by_type(s)},
        "paymentFailures": s.payment_failures,
        "paymentFailureRate": s.payment_failure_rate,
        "ghlFailures": s.app_counts.get("sync_failure", 0) if s.app_counts is not None else None,
        "alertsTriggered": _alerts_triggered(s),
        "alerts": [_alert_json(a) for a in s.alerts or []],
        "timestamp": _iso(s.now),
        "missing": list(s.missing),
    }


def _alert_json(a: AlertRow) -> dict[str, Any]:
    return {"id": a.id, "rule": a.rule, "severity": a.severity, "title": a.title, "summary": a.summary,
            "started_at": _iso(a.started_at), "acknowledged_by": a.acknowledged_by,
            "silenced_until": _iso(a.silenced_until)}


def _age(now: dt.datetime, t: dt.datetime | None) -> float | None:
    return round((now - t).total_seconds(), 1) if t else None


def _stripe_sync_json(s: HealthSnapshot) -> dict[str, Any] | None:
    """The Events API's poll state; None when it has never been polled (no STRIPE_API_KEY)."""
    sync = s.stripe_sync
    if sync is None:
        return None
    return {"last_poll_at": _iso(sync.last_poll_at), "last_ok_at": _iso(sync.last_ok_at),
            "age_seconds": _age(s.now, sync.last_poll_at), "failing": sync.failing,
            "last_error": sync.last_error, "last_error_at": _iso(sync.last_error_at),
            "last_reconcile_at": _iso(sync.last_reconcile_at), "recovered_events_24h": sync.recovered_24h}


def _inbox_json(s: HealthSnapshot) -> dict[str, Any] | None:
    """Webhooks answered 202 while the intake was busy and not applied yet (as a rule, for a moment)."""
    if s.inbox is None:
        return None
    return {"count": s.inbox.waiting, "oldest_at": _iso(s.inbox.oldest),
            "oldest_age_seconds": _age(s.now, s.inbox.oldest)}


def _delivery_json(s: HealthSnapshot) -> dict[str, Any] | None:
    """The outbox: what waits for Slack, whether delivery is stuck, and Slack's errors of the last 24 h."""
    backlog, errs = s.backlog, s.delivery_errors
    if backlog is None:
        return None
    return {"pending": backlog.pending, "oldest_at": _iso(backlog.oldest),
            "oldest_age_seconds": _age(s.now, backlog.oldest),
            "oldest_due_at": _iso(backlog.oldest_due), "stuck": s.delivery_stuck,
            "errors_24h": errs.count if errs else None,
            "permanent_errors_24h": errs.permanent if errs else None,
            "last_error": errs.last_error if errs else None}


def _refusals_json(s: HealthSnapshot) -> list[dict[str, Any]]:
    """This replica's Stripe jobs refused by the key, in /health's words (`advice`) and light (`level`)."""
    return [{"job": r.job, "status": r.status, "permission": r.permission, "since": _iso(r.since),
             "advice": r.advice, "level": level.stripe_refusal(r)} for r in s.stripe_refusals]


def _slack_app_json(s: HealthSnapshot) -> dict[str, Any]:
    """team.info refused for want of team:read (Enterprise Grid): /health's "Slack app" line, else nulls."""
    return {"team_read_missing": s.team_read_missing, "problem": TEAM_READ_MISSING if s.team_read_missing else None,
            "level": level.team_read(s)}


def health_json(s: HealthSnapshot) -> dict[str, Any]:
    """GET /api/monitoring/health: each component's state and age."""
    return {
        "status": "degraded" if s.degraded else "ok",
        "components": {
            "database": {"ok": s.database_ok, "rtt_ms": round(s.database_rtt_ms, 2)
                         if s.database_rtt_ms is not None else None},
            "webhooks": {"last_at": _iso(s.last_webhook_at), "age_seconds": _age(s.now, s.last_webhook_at),
                         "stored_unapplied": _inbox_json(s)},
            "orders": {"last_at": _iso(s.last_order_at), "age_seconds": _age(s.now, s.last_order_at),
                       "silence_suspicious": s.order_silence_suspicious},
            "delivery": _delivery_json(s),
            "site": {"configured": s.site_url is not None,
                     "last_check": None if s.probe is None else {
                         "at": _iso(s.probe.checked_at), "ok": s.probe.ok, "status": s.probe.status,
                         "elapsed_ms": s.probe.elapsed_ms, "error": s.probe.error}},
            "alerts": [_alert_json(a) for a in s.alerts or []],
            "scheduler": {"jobs": [{"name": n, "next_run_at": _iso(t)} for n, t in s.next_jobs]},
            "stripe_events_api": _stripe_sync_json(s),
            # None without an app token; `since`: when it connected, or since when it is not connected.
            "socket_mode": None if s.socket is None else {
                "connected": s.socket.connected, "since": _iso(s.socket.since), "down": s.socket_down,
                "last_error": None if s.socket.connected else s.socket.last_error},
            # Changed from Slack's Settings view (they win over the environment), and the latest changes.
            "settings": {"from_slack": {o.key: o.value for o in s.settings_overrides},
                         "recent_changes": [{"at": _iso(c.at), "user": c.user_id, "key": c.key, "before": c.before,
                                             "after": c.after} for c in s.settings_changes or []]},
            # Orders whose balance transactions the fees job has still to read, and those it gave up on.
            "stripe_fees": None if s.stripe_fees is None else {"waiting": s.stripe_fees.waiting,
                                                               "given_up": s.stripe_fees.given_up},
            "stripe_refusals": _refusals_json(s),
            "slack_app": _slack_app_json(s),
        },
        "version": s.version,
        "mode": s.mode,
        "uptime_seconds": _age(s.now, s.started_at),
        "timestamp": _iso(s.now),
        "missing": list(s.missing),
    }
