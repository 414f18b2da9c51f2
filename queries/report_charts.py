"""SQL of a report chart's upload: the claim that holds it while Slack is called, and the Slack file id recorded
before the file is shared, so that a share whose answer was lost is looked up in Slack, never made again with a
second copy of the chart."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from queries.executor import Executor

# Held for the call's duration: another replica skips the row instead of uploading or sharing the chart too.
CLAIM: Final = """
SELECT chart_png, chart_attempts, chart_file_id
  FROM reports
 WHERE kind = $1 AND local_date = $2 AND chart_status = 'pending'
   FOR UPDATE SKIP LOCKED
"""

# The file is in Slack, not shared yet: committed before the share is asked for.
SET_FILE: Final = """
UPDATE reports SET chart_file_id = $3 WHERE kind = $1 AND local_date = $2 AND chart_status = 'pending'
"""


@dataclass(frozen=True, slots=True)
class ClaimedChart:
    """A pending chart locked for upload; `file_id` once its bytes are in Slack (it may have been shared since)."""

    chart_png: bytes | None
    chart_attempts: int
    file_id: str | None


async def claim(db: Executor, *, kind: str, local_date: dt.date) -> ClaimedChart | None:
    """Lock a pending chart (inside a transaction); None when another worker holds it or it is done."""
    row = await db.fetchrow(CLAIM, kind, local_date)
    return None if row is None else ClaimedChart(row["chart_png"], row["chart_attempts"], row["chart_file_id"])


async def set_file(db: Executor, *, kind: str, local_date: dt.date, file_id: str) -> None:
    """Record the Slack file the chart's bytes were uploaded to, before it is shared."""
    await db.execute(SET_FILE, kind, local_date, file_id)
