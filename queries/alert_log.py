"""SQL for the alerts' notification log: every notification decision, and what it says about pages owed."""

from __future__ import annotations

from typing import Final

from queries.executor import Executor

LOG_NOTIFICATION: Final = """
INSERT INTO alert_notifications (alert_id, kind, outbox_id) VALUES ($1, $2, $3)
"""

COUNT_NOTIFICATIONS: Final = "SELECT count(*) FROM alert_notifications WHERE alert_id = $1"

# Kinds that say whether a critical owes its page: posted inside quiet hours without the mention, or made a
# critical there (its rule's severity changed in Settings, the message re-rendered without it), or made a critical
# outside them (an edit pages nobody: the page is owed at once); and a reminder that paged (the mention, sent to
# the channel too), which pays it.
FIRED_QUIETLY: Final = "fire-quiet"
PROMOTED_QUIETLY: Final = "severity-quiet"
PROMOTED: Final = "severity-page"
PAGED: Final = "page"
OWING: Final = (FIRED_QUIETLY, PROMOTED_QUIETLY, PROMOTED)

# Owed when the last owing entry is newer than the last page: paged as a critical, demoted, then made a critical
# again, it owes a page anew. With the kind of that last owing entry, which says why the page comes late.
PAGES_OWED: Final = """
SELECT alert_id, (array_agg(kind ORDER BY id DESC) FILTER (WHERE kind = ANY($2::text[])))[1] AS kind
  FROM alert_notifications WHERE alert_id = ANY($1::bigint[])
 GROUP BY alert_id
HAVING max(id) FILTER (WHERE kind = ANY($2::text[])) > coalesce(max(id) FILTER (WHERE kind = $3), 0)
"""


async def log_notification(db: Executor, *, alert_id: int, kind: str, outbox_id: int | None) -> int:
    """Record a notification decision; returns how many this alert now has (for dedupe keys)."""
    await db.execute(LOG_NOTIFICATION, alert_id, kind, outbox_id)
    return int(await db.fetchval(COUNT_NOTIFICATIONS, alert_id))


async def pages_owed(db: Executor, alert_ids: list[int]) -> dict[int, str]:
    """Those of these alerts posted quietly, or made critical (OWING), and not paged since: the kind of the entry
    that owes the page, by alert."""
    return {r["alert_id"]: r["kind"] for r in await db.fetch(PAGES_OWED, alert_ids, list(OWING), PAGED)}
