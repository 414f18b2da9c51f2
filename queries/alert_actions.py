"""The audit trail of alert buttons: every click, allowed or refused, with who, what, when and where."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from queries.executor import Executor

RECORD: Final = """
INSERT INTO alert_actions (alert_id, user_id, action, outcome, silenced_until, surface, at)
VALUES                    ($1,       $2,      $3,     $4,      $5,             $6,      $7)
"""

FOR_ALERT: Final = """
SELECT alert_id, user_id, action, outcome, silenced_until, surface, at
  FROM alert_actions WHERE alert_id = $1 ORDER BY at, id
"""

# The newest earlier alert of the fingerprint lends the new one its silence while it runs ($3: now), and its ack when
# it resolved by itself after $4; the new alert's own row is untouched when there is nothing to carry.
CARRY_OVER: Final = """
UPDATE alerts AS a
   SET silenced_until  = CASE WHEN p.silenced_until > $3 THEN p.silenced_until END,
       silenced_by     = CASE WHEN p.silenced_until > $3 THEN p.silenced_by END,
       acknowledged_by = CASE WHEN p.resolved_by IS NULL AND p.resolved_at > $4 THEN p.acknowledged_by END,
       acknowledged_at = CASE WHEN p.resolved_by IS NULL AND p.resolved_at > $4 THEN p.acknowledged_at END,
       updated_at = now()
  FROM (SELECT silenced_until, silenced_by, acknowledged_by, acknowledged_at, resolved_at, resolved_by
          FROM alerts WHERE fingerprint = $2 AND id <> $1 AND resolved_at IS NOT NULL
         ORDER BY resolved_at DESC, id DESC LIMIT 1) AS p
 WHERE a.id = $1
   AND (p.silenced_until > $3 OR (p.acknowledged_by IS NOT NULL AND p.resolved_by IS NULL AND p.resolved_at > $4))
"""

# The open alert of the same fingerprint as resolved alert $1 (the incident fired again), and where its message is.
FIRING_AGAIN: Final = """
SELECT a.id, o.slack_channel, o.slack_ts
  FROM alerts AS r
  JOIN alerts AS a ON a.fingerprint = r.fingerprint AND a.id <> r.id AND a.resolved_at IS NULL
  LEFT JOIN outbox AS o ON o.id = a.message_outbox_id
 WHERE r.id = $1 AND r.resolved_at IS NOT NULL
 ORDER BY a.id DESC
 LIMIT 1
"""


@dataclass(frozen=True, slots=True)
class FiringAgain:
    """An open alert of a resolved one's fingerprint, and its message's Slack channel and ts once delivered."""

    id: int
    slack_channel: str | None
    slack_ts: str | None


@dataclass(frozen=True, slots=True)
class AlertAction:
    """One click on an alert's button."""

    alert_id: int
    user_id: str
    action: str  # ack | silence | resolve
    outcome: str  # applied | refused | stale (changed nothing: the alert was already resolved, or already so)
    silenced_until: dt.datetime | None
    surface: str  # slack | home | feed
    at: dt.datetime


async def record(db: Executor, a: AlertAction) -> None:
    """Keep one click."""
    await db.execute(RECORD, a.alert_id, a.user_id[:64], a.action, a.outcome, a.silenced_until, a.surface, a.at)


async def for_alert(db: Executor, alert_id: int) -> list[AlertAction]:
    """Every click on one alert, oldest first."""
    return [AlertAction(**dict(r)) for r in await db.fetch(FOR_ALERT, alert_id)]


async def carry_over(db: Executor, *, alert_id: int, fingerprint: str, now: dt.datetime,
                     ack_since: dt.datetime) -> None:
    """Give a new alert the silence still running on the last alert of its fingerprint, and that alert's ack if it
    resolved by itself after `ack_since`: a silence is set on what is alerted about, not on one alert's row."""
    await db.execute(CARRY_OVER, alert_id, fingerprint, now, ack_since)


async def firing_again(db: Executor, alert_id: int) -> FiringAgain | None:
    """The open alert of resolved alert `alert_id`'s fingerprint, if the incident fired again."""
    row = await db.fetchrow(FIRING_AGAIN, alert_id)
    return FiringAgain(**dict(row)) if row else None
