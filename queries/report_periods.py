"""SQL that keeps the messages about one report period (a kind of report on one local day) in order: one writer of
the period at a time, and what still waits in the outbox about it set aside when a newer word on it is queued, so
stale figures never reach Slack after it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from queries.executor import Executor

# Transaction-level, keyed by the period's name (through hashtextextended(), in the key space queries/locks.py
# describes): the report being recorded and an early report being queued for the same period take turns, so one of
# them always sees the other committed. Without it each could miss the other and the early one go out after.
LOCK_PERIOD: Final = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"

# The pending messages whose dedupe key starts with one of $1, except message $2 (the newer word itself), are set
# aside as 'superseded': the worker only takes pending ones, and records an attempt only for a message still pending.
# One a worker is posting right now holds the channel's pace lock, so it lands before anything queued after it; an
# earlier attempt's record goes too (whatever of it reached Slack did so before the newer word was queued).
SUPERSEDE: Final = """
WITH stale AS (
    UPDATE outbox AS o
       SET status = 'superseded', delivered_at = now()
     WHERE o.status = 'pending' AND o.id IS DISTINCT FROM $2::bigint
       AND EXISTS (SELECT FROM unnest($1::text[]) AS p WHERE starts_with(o.dedupe_key, p))
    RETURNING o.id
), forgotten AS (
    DELETE FROM delivery_attempts WHERE outbox_id IN (SELECT id FROM stale)
)
SELECT count(*) FROM stale
"""


async def lock_period(db: Executor, *, period: str) -> None:
    """Hold the period's lock until the transaction ends."""
    await db.execute(LOCK_PERIOD, period)


async def supersede(db: Executor, *, prefixes: Sequence[str], keep: int | None = None) -> int:
    """Set aside the messages still waiting whose dedupe key starts with one of `prefixes` (but `keep`); how many."""
    count: int = await db.fetchval(SUPERSEDE, list(prefixes), keep)
    return count
