"""SQL for data retention: the day's run claimed once across replicas, then old webhook bodies and message payloads
emptied and old probes and app events deleted, each a chunk per statement (migration 0036)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from queries.executor import Executor

# The first replica to set the day runs; another one's UPDATE waits for that row, then finds the day set and
# returns nothing (as two replicas recording a report: the first writer of the day wins).
CLAIM: Final = """
UPDATE retention_state SET ran_on = $1, started_at = $2, finished_at = NULL
 WHERE id = 'retention' AND (ran_on IS NULL OR ran_on < $1)
RETURNING webhook_logs_upto, outbox_upto
"""

FINISH: Final = "UPDATE retention_state SET finished_at = $1 WHERE id = 'retention'"

# One chunk of a walk by id: of the next $3 rows after $1, those before the first too young ({young}) are pruned where
# {prunable}. The run's mark moves in the same statement (a run that dies loses nothing, the next one starts there):
# to the last row passed, but never past a row {held} for later (a message still pending: once settled, a later run
# prunes it), nor past $4, the first such row of earlier chunks. `reached`: where the walk goes on from; `held`: the
# mark before this chunk's first held row; `done`: a too young row or the table's end was met. The placeholders are
# this module's constants, never input.
_WALK: Final = """
WITH chunk AS (
    SELECT id, {young} AS young, {held} AS held, {prunable} AS prunable FROM {table} WHERE id > $1 ORDER BY id LIMIT $3
), reach AS (
    SELECT coalesce((SELECT min(id) - 1 FROM chunk WHERE young), (SELECT max(id) FROM chunk), $1) AS id
), hold AS (
    SELECT min(id) - 1 AS id FROM chunk WHERE held AND id <= (SELECT id FROM reach)
), pruned AS (
    UPDATE {table} AS t SET payload = '{{}}'::jsonb
      FROM chunk
     WHERE t.id = chunk.id AND chunk.prunable AND chunk.id <= (SELECT id FROM reach)
    RETURNING 1
), marked AS (
    UPDATE retention_state
       SET {mark} = greatest({mark}, least($4::bigint, (SELECT id FROM hold), (SELECT id FROM reach)))
     WHERE id = 'retention'
)
SELECT (SELECT id FROM reach)                                                 AS reached,
       (SELECT id FROM hold)                                                  AS held,
       (SELECT count(*) FROM pruned)                                          AS pruned,
       (SELECT count(*) FROM chunk) < $3 OR EXISTS (SELECT FROM chunk WHERE young) AS done
"""

# A webhook_logs row received before $2 loses its body: nothing reads it back (intake dedupes on (source, event_id),
# /errors and the guide's SQL read the other columns), and it is most of the row's bytes.
EMPTY_WEBHOOK_BODIES: Final = _WALK.format(table="webhook_logs", young="created_at >= $2", held="false",
                                           prunable="true", mark="webhook_logs_upto")

# An outbox message queued before $2 and settled loses its payload, except a sale ping that was posted: a later
# event about its order compares what it showed with what the order now says, to edit it (intake_pings.REFRESH_PINGS).
# Its row stays: its dedupe_key, its Slack address (edits, replies, the report's chart) and the keys pointing at it.
# A failed message is left as it is. A pending one (a channel refused for weeks) is held: each run passes it and the
# rows after it again (those emptied already are not written twice) until it is settled.
EMPTY_MESSAGE_PAYLOADS: Final = _WALK.format(
    table="outbox", young="created_at >= $2", held="status = 'pending'", mark="outbox_upto",
    prunable="status IN ('delivered', 'coalesced') AND NOT (status = 'delivered' AND kind = 'sale' AND op = 'post')"
             " AND payload <> '{}'::jsonb")

DELETE_SITE_PROBES: Final = """
WITH gone AS (
    DELETE FROM site_probes
     WHERE id IN (SELECT id FROM site_probes WHERE checked_at < $1 ORDER BY checked_at LIMIT $2)
    RETURNING 1
)
SELECT count(*) FROM gone
"""

# By arrival, as /errors and the alerts count them (migration 0039), one kind at a time, so its part of
# app_events_kind_received_idx is read from its oldest row: an old event reported today stays, and dedupes a resend.
DELETE_APP_EVENTS: Final = """
WITH gone AS (
    DELETE FROM app_events
     WHERE id IN (SELECT id FROM app_events WHERE kind = $3 AND received_at < $1 ORDER BY received_at LIMIT $2)
    RETURNING 1
)
SELECT count(*) FROM gone
"""


@dataclass(frozen=True, slots=True)
class Marks:
    """How far each walk has come: every row with an id at or below its mark has been dealt with."""

    webhook_logs_upto: int
    outbox_upto: int


@dataclass(frozen=True, slots=True)
class Step:
    """One chunk of a walk: where it goes on from, the mark before its first row held for later (if any), the rows
    pruned, and whether the walk is over for this run."""

    reached: int
    held: int | None
    pruned: int
    done: bool


async def claim(db: Executor, *, day: dt.date, at: dt.datetime) -> Marks | None:
    """Take `day`'s run if no replica has (its marks back), else None."""
    row = await db.fetchrow(CLAIM, day, at)
    return Marks(**dict(row)) if row is not None else None


async def finish(db: Executor, *, at: dt.datetime) -> None:
    """Note that the run is over."""
    await db.execute(FINISH, at)


async def empty_webhook_bodies(db: Executor, *, after: int, before: dt.datetime, limit: int,
                               held: int | None) -> Step:
    """Empty the bodies of the next `limit` webhook_logs rows after id `after` received before `before`."""
    return Step(**dict(await db.fetchrow(EMPTY_WEBHOOK_BODIES, after, before, limit, held)))


async def empty_message_payloads(db: Executor, *, after: int, before: dt.datetime, limit: int,
                                 held: int | None) -> Step:
    """Empty the payloads of the next `limit` settled outbox messages after id `after` queued before `before`; the
    mark stays at `held` (the walk's first held row so far), when given, or before."""
    return Step(**dict(await db.fetchrow(EMPTY_MESSAGE_PAYLOADS, after, before, limit, held)))


async def delete_site_probes(db: Executor, *, before: dt.datetime, limit: int) -> int:
    """Delete up to `limit` of the oldest probes checked before `before`; how many went."""
    gone: int = await db.fetchval(DELETE_SITE_PROBES, before, limit)
    return gone


async def delete_app_events(db: Executor, *, kind: str, before: dt.datetime, limit: int) -> int:
    """Delete up to `limit` of the oldest app events of `kind` received before `before`; how many went."""
    gone: int = await db.fetchval(DELETE_APP_EVENTS, before, limit, kind)
    return gone
