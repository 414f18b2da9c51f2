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


@dataclass(frozen=True, slots=True)
class AlertAction:
    """One click on an alert's button."""

    alert_id: int
    user_id: str
    action: str  # ack | silence | resolve
    outcome: str  # applied | refused | stale (the alert was already resolved)
    silenced_until: dt.datetime | None
    surface: str  # slack | home | feed
    at: dt.datetime


async def record(db: Executor, a: AlertAction) -> None:
    """Keep one click."""
    await db.execute(RECORD, a.alert_id, a.user_id[:64], a.action, a.outcome, a.silenced_until, a.surface, a.at)


async def for_alert(db: Executor, alert_id: int) -> list[AlertAction]:
    """Every click on one alert, oldest first."""
    return [AlertAction(**dict(r)) for r in await db.fetch(FOR_ALERT, alert_id)]
