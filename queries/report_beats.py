"""The report job's heartbeat: when it ran (to the minute), so a report is called missed only after downtime."""

from __future__ import annotations

import datetime as dt
from typing import Final

from queries.executor import Executor

# Every replica's run of the same minute is one row: the table stays under 3 days x 1440 rows.
BEAT: Final = """
INSERT INTO report_heartbeats (beat_at) VALUES ($1)
ON CONFLICT (beat_at) DO NOTHING
"""

PRUNE: Final = """
DELETE FROM report_heartbeats WHERE beat_at < $1
"""

RAN_BETWEEN: Final = """
SELECT EXISTS (SELECT 1 FROM report_heartbeats WHERE beat_at >= $1 AND beat_at < $2)
"""

# Whether salespulse ran before $1: a heartbeat then, or a report due then (recorded before heartbeats existed, or
# their beats pruned since); neither: it was first started after $1.
RAN_BEFORE: Final = """
SELECT EXISTS (SELECT 1 FROM report_heartbeats WHERE beat_at < $1)
    OR EXISTS (SELECT 1 FROM reports WHERE scheduled_at < $1)
"""


async def beat(db: Executor, *, at: dt.datetime, keep: dt.timedelta) -> None:
    """Record that the report job runs at `at` (its minute); forget beats older than `keep`."""
    await db.execute(BEAT, at.replace(second=0, microsecond=0))
    await db.execute(PRUNE, at - keep)


async def ran_between(db: Executor, *, start: dt.datetime, end: dt.datetime) -> bool:
    """Whether the report job ran (any replica) in [start, end)."""
    value: bool = await db.fetchval(RAN_BETWEEN, start, end)
    return value


async def ran_before(db: Executor, *, at: dt.datetime) -> bool:
    """Whether salespulse ran (the report job, any replica, or a report recorded) before `at`."""
    value: bool = await db.fetchval(RAN_BEFORE, at)
    return value
