"""SQL ordering one second's events of a subscription (bot/subscriptions/order.py, migration 0053): the snapshots
that share a second, with what their logged events say, and the places found for them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from queries.executor import Executor

# The snapshots sharing their subscription's second with one of the events $1 and another snapshot, with what their
# logged events say (the object, previous_attributes): bot/subscriptions/order.py orders them.
SAME_SECOND: Final = """
SELECT e.subscription_id, e.at, e.event_id, e.rank, e.seq,
       (w.payload #> '{data,object}')::text AS object,
       (w.payload #> '{data,previous_attributes}')::text AS previous
  FROM (SELECT DISTINCT subscription_id, at FROM subscription_events WHERE event_id = ANY($1::text[])) AS b
  JOIN subscription_events AS e USING (subscription_id, at)
  LEFT JOIN webhook_logs AS w ON w.source = 'stripe' AND w.event_id = e.event_id
 WHERE EXISTS (SELECT FROM subscription_events AS o
                WHERE o.subscription_id = e.subscription_id AND o.at = e.at AND o.event_id <> e.event_id)
 ORDER BY e.subscription_id, e.at, e.rank, e.event_id
"""
# Each snapshot's place in its second; then each state row takes its event's (the row comparison reads it).
SET_SEQ: Final = """
UPDATE subscription_events AS e SET seq = v.seq
  FROM unnest($1::text[], $2::smallint[]) AS v (event_id, seq)
 WHERE e.event_id = v.event_id AND e.seq <> v.seq
"""
SYNC_STATE_SEQ: Final = """
UPDATE subscriptions AS s SET last_event_seq = e.seq
  FROM subscription_events AS e
 WHERE e.event_id = s.last_event_id AND s.id = ANY($1::text[]) AND s.last_event_seq <> e.seq
"""
# The state row's MRR as its snapshot has it (the discounts job may have recomputed it since its event).
SYNC_STATE_MRR: Final = """
UPDATE subscriptions AS s SET mrr_units = e.mrr_units, updated_at = now()
  FROM subscription_events AS e
 WHERE s.id = $1 AND e.event_id = s.last_event_id AND s.mrr_units <> e.mrr_units
"""

# Seconds whose events did not settle their order, for bot/stripe/second_order.py; a claim takes them off.
QUEUE_CHECKS: Final = """
INSERT INTO subscription_second_checks (subscription_id, at)
SELECT * FROM unnest($1::text[], $2::timestamptz[])
ON CONFLICT DO NOTHING
"""
CLAIM_CHECKS: Final = """
DELETE FROM subscription_second_checks
 WHERE (subscription_id, at) IN (SELECT subscription_id, at FROM subscription_second_checks
                                  ORDER BY queued_at LIMIT $1 FOR UPDATE SKIP LOCKED)
RETURNING subscription_id, at
"""
# One second's snapshots, as SAME_SECOND, none if a later snapshot of the subscription exists (the subscription
# read now says nothing of that second then).
SECOND: Final = """
SELECT e.subscription_id, e.at, e.event_id, e.rank, e.seq,
       (w.payload #> '{data,object}')::text AS object,
       (w.payload #> '{data,previous_attributes}')::text AS previous
  FROM subscription_events AS e
  LEFT JOIN webhook_logs AS w ON w.source = 'stripe' AND w.event_id = e.event_id
 WHERE e.subscription_id = $1 AND e.at = $2
   AND NOT EXISTS (SELECT FROM subscription_events AS l WHERE l.subscription_id = $1 AND l.at > $2)
 ORDER BY e.rank, e.event_id
"""
BODY: Final = "SELECT payload::text FROM webhook_logs WHERE source = 'stripe' AND event_id = $1"


@dataclass(frozen=True, slots=True)
class SecondRow:
    """A snapshot sharing its subscription's second with another, and its logged event's object and
    previous_attributes (JSON text; None when not logged or emptied)."""

    subscription_id: str
    at: dt.datetime
    event_id: str
    rank: int
    seq: int
    obj: str | None
    previous: str | None


def _rows(rows: Sequence[Any]) -> list[SecondRow]:
    return [SecondRow(r["subscription_id"], r["at"], r["event_id"], r["rank"], r["seq"], r["object"], r["previous"])
            for r in rows]


async def same_second(db: Executor, event_ids: Sequence[str]) -> list[SecondRow]:
    """The snapshots sharing a second of their subscription with one of these events' and another snapshot."""
    return _rows(await db.fetch(SAME_SECOND, list(event_ids))) if event_ids else []


async def second(db: Executor, subscription_id: str, at: dt.datetime) -> list[SecondRow]:
    """The subscription's snapshots of second `at`, none when it has a later one."""
    return _rows(await db.fetch(SECOND, subscription_id, at))


async def body(db: Executor, event_id: str) -> str | None:
    """The logged body of a Stripe event (JSON text), None when not logged."""
    found = await db.fetchval(BODY, event_id)
    return str(found) if found is not None else None


async def queue_checks(db: Executor, seconds: Sequence[tuple[str, dt.datetime]]) -> None:
    """Queue these (subscription, second) pairs for a read of their subscription."""
    if seconds:
        await db.execute(QUEUE_CHECKS, [s for s, _ in seconds], [at for _, at in seconds])


async def claim_checks(db: Executor, *, limit: int) -> list[tuple[str, dt.datetime]]:
    """Take up to `limit` queued seconds, oldest first."""
    return [(r["subscription_id"], r["at"]) for r in await db.fetch(CLAIM_CHECKS, limit)]


async def sync_state_mrr(db: Executor, subscription_id: str) -> None:
    """The subscription's state row's MRR as its snapshot has it."""
    await db.execute(SYNC_STATE_MRR, subscription_id)


async def set_seq(db: Executor, seqs: dict[str, int], *, subscription_ids: Sequence[str]) -> None:
    """Put these snapshots at these places in their seconds, and the subscriptions' state rows' with them."""
    if seqs:
        await db.execute(SET_SEQ, list(seqs), list(seqs.values()))
        await db.execute(SYNC_STATE_SEQ, list(subscription_ids))
