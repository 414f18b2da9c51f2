"""Whether the reports' times changed since a report was due: a report not recorded although the report job ran at its
time was put in the past by such a change, or its run was cut off (bot/reports/claims.py schedule_changed_since)."""

from __future__ import annotations

import datetime as dt
from typing import Final

from queries.executor import Executor
from queries.reports import RecordedReport

# Whether any of the settings $2 (environment variable names) was changed from Slack's Settings at or after $1.
CHANGED_FROM_SLACK: Final = """
SELECT EXISTS (SELECT 1 FROM settings_audit WHERE at >= $1 AND key = ANY($2::text[]))
"""

RECORDED_SINCE: Final = """
SELECT kind, local_date, status, scheduled_at, recorded_at, late, source, outbox_id, chart_status,
       chart_file_id, chart_error, day_start
  FROM reports
 WHERE recorded_at >= $1
 ORDER BY recorded_at, kind
"""


async def changed_from_slack(db: Executor, *, since: dt.datetime, keys: tuple[str, ...]) -> bool:
    """Whether any of these settings (environment variable names) was changed from Slack at or after `since`."""
    value: bool = await db.fetchval(CHANGED_FROM_SLACK, since, list(keys))
    return value


async def recorded_since(db: Executor, *, at: dt.datetime) -> list[RecordedReport]:
    """The reports recorded (sent, or noticed as missed) at or after `at`."""
    return [RecordedReport(**dict(r)) for r in await db.fetch(RECORDED_SINCE, at)]
