"""SQL for alerts: the measurements rules look at, and the alerts' own state (their notification log:
queries/alert_log.py)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

from queries.executor import Executor

COUNT_PAYMENT_FAILURES: Final = """
SELECT count(*) FROM payment_failures WHERE created_at >= $1 AND created_at < $2
"""

COUNT_PAYMENTS_SUCCEEDED: Final = """
SELECT count(*) FROM orders
 WHERE payment_status IN ('completed', 'refunded') AND created_at >= $1 AND created_at < $2
"""

# App events count when received (by the bot's clock), not when the sender says they occurred: a failure
# reported now is news now, whatever its time stamp (README: "reported in the last hour").
COUNT_SYNC_FAILURES: Final = """
SELECT count(*) FROM app_events WHERE kind = 'sync_failure' AND received_at >= $1 AND received_at < $2
"""

WEBHOOK_COUNTS: Final = """
SELECT count(*)                                  AS received,
       count(*) FILTER (WHERE status = 'error')  AS errors
  FROM webhook_logs
 WHERE created_at >= $1 AND created_at < $2
"""

# What the webhook-errors alert counts as errors (WEBHOOK_COUNTS and APP_ERRORS, same windows), by kind: each webhook
# event type, and the store's app errors by the component that reported them; commonest first, with the newest.
ERROR_KINDS: Final = """
SELECT kind, count(*) AS count, (array_agg(error ORDER BY at DESC))[1] AS last_error
  FROM (SELECT event_type AS kind, last_error AS error, updated_at AS at
          FROM webhook_logs WHERE status = 'error' AND created_at >= $1 AND created_at < $2
        UNION ALL
        SELECT 'app: ' || source, message, received_at
          FROM app_events WHERE kind = 'error' AND received_at >= $1 AND received_at < $2) AS e
 GROUP BY kind
 ORDER BY count DESC, kind
 LIMIT $3
"""

APP_ERRORS: Final = """
SELECT count(*) FROM app_events WHERE kind = 'error' AND received_at >= $1 AND received_at < $2
"""

RECENT_DISPUTES: Final = """
SELECT id, amount, currency, reason FROM disputes WHERE created_at >= $1 AND created_at < $2 ORDER BY id
"""

LAST_PROBES: Final = """
SELECT checked_at, ok, status, elapsed_ms, error FROM site_probes ORDER BY checked_at DESC LIMIT $1
"""

INSERT_PROBE: Final = """
INSERT INTO site_probes (url, checked_at, ok, status, elapsed_ms, error) VALUES ($1, $2, $3, $4, $5, $6)
"""

_ALERT_COLUMNS: Final = """id, fingerprint, rule, family, severity, labels, title, summary, value, started_at,
       last_seen_at, resolved_at, resolved_by, rearm_required, acknowledged_by, acknowledged_at, silenced_until,
       silenced_by, notified_at, last_reminder_at, message_outbox_id, resolved_reason"""

# Locked for the evaluator's transaction: buttons clicked meanwhile wait for it, and vice versa.
OPEN_ALERTS: Final = f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE resolved_at IS NULL ORDER BY id FOR UPDATE"

ALERT_BY_ID: Final = f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE id = $1 FOR UPDATE"

FIRING: Final = f"""
SELECT {_ALERT_COLUMNS} FROM alerts
 WHERE resolved_at IS NULL AND severity <> 'info'
 ORDER BY CASE severity WHEN 'critical' THEN 0 ELSE 1 END, started_at
"""

AWAITING_REARM: Final = """
SELECT DISTINCT fingerprint FROM alerts
 WHERE rearm_required AND fingerprint = ANY($1::text[]) AND resolved_at > $2
"""

CLEAR_REARM: Final = """
UPDATE alerts SET rearm_required = false WHERE rearm_required AND NOT (fingerprint = ANY($1::text[]))
   AND rule = ANY($2::text[])
"""

INSERT_ALERT: Final = f"""
INSERT INTO alerts (fingerprint, rule, family, severity, labels, title, summary, value, started_at, last_seen_at)
VALUES             ($1,          $2,   $3,     $4,       $5,     $6,    $7,      $8,    $9,         $9)
RETURNING {_ALERT_COLUMNS}
"""

SEEN_AGAIN: Final = """
UPDATE alerts SET last_seen_at = $2, summary = $3, value = $4, severity = $5, updated_at = now() WHERE id = $1
"""

RESOLVE: Final = """
UPDATE alerts SET resolved_at = $2, resolved_by = $3, rearm_required = $4, resolved_reason = $5, updated_at = now()
 WHERE id = $1"""

SET_NOTIFIED: Final = """
UPDATE alerts SET notified_at = $2, message_outbox_id = $3, updated_at = now() WHERE id = $1
"""

SET_REMINDED: Final = "UPDATE alerts SET last_reminder_at = $2, updated_at = now() WHERE id = $1"

ACKNOWLEDGE: Final = """
UPDATE alerts SET acknowledged_by = $2, acknowledged_at = $3, updated_at = now() WHERE id = $1
"""

SILENCE: Final = """
UPDATE alerts SET silenced_until = $2, silenced_by = $3, updated_at = now() WHERE id = $1
"""


@dataclass(frozen=True, slots=True)
class Probe:
    """One check of the store's site."""

    checked_at: dt.datetime
    ok: bool
    status: int | None
    elapsed_ms: float | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Dispute:
    """A dispute opened recently."""

    id: str
    amount: int | None
    currency: str | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class AlertRow:
    """An alert as stored."""

    id: int
    fingerprint: str
    rule: str
    family: str
    severity: str
    labels: dict[str, Any]
    title: str
    summary: str
    value: float | None
    started_at: dt.datetime
    last_seen_at: dt.datetime
    resolved_at: dt.datetime | None
    resolved_by: str | None
    rearm_required: bool
    acknowledged_by: str | None
    acknowledged_at: dt.datetime | None
    silenced_until: dt.datetime | None
    silenced_by: str | None
    notified_at: dt.datetime | None
    last_reminder_at: dt.datetime | None
    message_outbox_id: int | None
    resolved_reason: str | None = None  # 'rule off': closed because its rule is off now (migration 0044)


def _alert(row: Any) -> AlertRow:
    return AlertRow(**dict(row))


async def count_payment_failures(db: Executor, *, start: dt.datetime, end: dt.datetime) -> int:
    """Failed payment attempts in [start, end)."""
    value: int = await db.fetchval(COUNT_PAYMENT_FAILURES, start, end)
    return value


async def count_payments_succeeded(db: Executor, *, start: dt.datetime, end: dt.datetime) -> int:
    """Successful payments in [start, end)."""
    value: int = await db.fetchval(COUNT_PAYMENTS_SUCCEEDED, start, end)
    return value


async def count_sync_failures(db: Executor, *, start: dt.datetime, end: dt.datetime) -> int:
    """Sync failures the store's app reported (received) in [start, end)."""
    value: int = await db.fetchval(COUNT_SYNC_FAILURES, start, end)
    return value


@dataclass(frozen=True, slots=True)
class ErrorCounts:
    """Webhooks received and how many failed processing, and errors the store's app reported, in one window."""

    webhooks: int
    webhook_errors: int
    app_errors: int  # every app report counted here is an error


async def webhook_counts(db: Executor, *, start: dt.datetime, end: dt.datetime) -> ErrorCounts:
    """Webhooks received in [start, end), of which failed processing, and app errors received then."""
    row = await db.fetchrow(WEBHOOK_COUNTS, start, end)
    app_errors: int = await db.fetchval(APP_ERRORS, start, end)
    return ErrorCounts(webhooks=row["received"], webhook_errors=row["errors"], app_errors=app_errors)


async def error_kinds(db: Executor, *, start: dt.datetime, end: dt.datetime,
                      limit: int) -> list[tuple[str, int, str | None]]:
    """The commonest kinds of what webhook_counts() counts as errors in [start, end): (kind, count, newest error)."""
    return [(r["kind"], r["count"], r["last_error"]) for r in await db.fetch(ERROR_KINDS, start, end, limit)]


async def recent_disputes(db: Executor, *, start: dt.datetime, end: dt.datetime) -> list[Dispute]:
    """Disputes opened in [start, end)."""
    return [Dispute(**dict(r)) for r in await db.fetch(RECENT_DISPUTES, start, end)]


async def last_probes(db: Executor, *, limit: int) -> list[Probe]:
    """The newest site checks, newest first."""
    return [Probe(**dict(r)) for r in await db.fetch(LAST_PROBES, limit)]


async def insert_probe(db: Executor, *, url: str, probe: Probe) -> None:
    """Record one site check."""
    await db.execute(INSERT_PROBE, url, probe.checked_at, probe.ok, probe.status, probe.elapsed_ms, probe.error)


async def open_alerts(db: Executor) -> list[AlertRow]:
    """Unresolved alerts, locked until the transaction ends."""
    return [_alert(r) for r in await db.fetch(OPEN_ALERTS)]


async def alert_by_id(db: Executor, alert_id: int) -> AlertRow | None:
    """One alert, locked until the transaction ends."""
    row = await db.fetchrow(ALERT_BY_ID, alert_id)
    return _alert(row) if row else None


async def firing(db: Executor) -> list[AlertRow]:
    """Unresolved critical and warning alerts, critical first."""
    return [_alert(r) for r in await db.fetch(FIRING)]


async def awaiting_rearm(db: Executor, fingerprints: list[str], *, since: dt.datetime) -> set[str]:
    """Fingerprints resolved by hand after `since` whose condition has not cleared since."""
    return {r["fingerprint"] for r in await db.fetch(AWAITING_REARM, fingerprints, since)}


async def clear_rearm(db: Executor, *, active: list[str], rules: list[str]) -> None:
    """Conditions of these rules not seen now have cleared: their hand-resolved alerts may fire again."""
    await db.execute(CLEAR_REARM, active, rules)


async def insert_alert(db: Executor, *, fingerprint: str, rule: str, family: str, severity: str,
                       labels: dict[str, str], title: str, summary: str, value: float | None,
                       at: dt.datetime) -> AlertRow:
    """Open a new alert."""
    return _alert(await db.fetchrow(INSERT_ALERT, fingerprint, rule, family, severity, labels, title, summary,
                                    value, at))


async def seen_again(db: Executor, *, alert_id: int, at: dt.datetime, summary: str, value: float | None,
                     severity: str) -> None:
    """The condition still holds; `severity` is its rule's now (Settings may have changed it)."""
    await db.execute(SEEN_AGAIN, alert_id, at, summary, value, severity)


async def resolve(db: Executor, *, alert_id: int, at: dt.datetime, by: str | None = None,
                  reason: str | None = None) -> None:
    """Close an alert; by hand (`by` a user) it stays closed until its condition clears; `reason`: 'rule off'."""
    await db.execute(RESOLVE, alert_id, at, by, by is not None, reason)


async def set_notified(db: Executor, *, alert_id: int, at: dt.datetime, outbox_id: int | None) -> None:
    """The firing message is queued."""
    await db.execute(SET_NOTIFIED, alert_id, at, outbox_id)


async def set_reminded(db: Executor, *, alert_id: int, at: dt.datetime) -> None:
    """A reminder is queued."""
    await db.execute(SET_REMINDED, alert_id, at)


async def acknowledge(db: Executor, *, alert_id: int, by: str, at: dt.datetime) -> None:
    """Someone is on it."""
    await db.execute(ACKNOWLEDGE, alert_id, by, at)


async def silence(db: Executor, *, alert_id: int, until: dt.datetime | None, by: str | None) -> None:
    """Mute reminders until `until` (None lifts the silence)."""
    await db.execute(SILENCE, alert_id, until, by)
