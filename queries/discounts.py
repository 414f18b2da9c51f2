"""SQL behind reading the Discounts Stripe sent as ids (migration 0017): the queue of subscriptions to read, the
Discount terms read (cached per id), and the snapshots recomputed with them.

The queue is filled by scanning the pending snapshots (a partial index holds only those) rather than at intake, so
a webhook pays nothing for it and, without STRIPE_API_KEY, nothing is queued.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from queries.executor import Executor

ENQUEUE: Final = """
INSERT INTO discount_fetches (subscription_id, due_at, queued_at)
SELECT DISTINCT subscription_id, $1::timestamptz, $1::timestamptz FROM subscription_events WHERE discounts = 'pending'
ON CONFLICT (subscription_id) DO NOTHING
"""

# A lease, as queries/settlements.py CLAIM: the claimed rows' due_at moves past the batch's deadline.
CLAIM: Final = """
UPDATE discount_fetches AS f
   SET due_at = $2
  FROM (SELECT subscription_id FROM discount_fetches
         WHERE due_at <= $1
         ORDER BY due_at
         LIMIT $3
           FOR UPDATE SKIP LOCKED) AS c
 WHERE f.subscription_id = c.subscription_id
RETURNING f.subscription_id, f.attempts
"""

PENDING: Final = """
SELECT event_id, at, currency, pricing::text AS pricing, before_pricing::text AS before_pricing
  FROM subscription_events
 WHERE subscription_id = $1 AND discounts = 'pending'
 ORDER BY at, rank, event_id
"""

TERMS: Final = """
SELECT id, terms::text AS terms FROM discounts WHERE id = ANY($1::text[])
"""

SAVE_TERMS: Final = """
INSERT INTO discounts (id, terms, read_at)
SELECT i, t::jsonb, $3 FROM unnest($1::text[], $2::text[]) AS v (i, t)
ON CONFLICT (id) DO UPDATE SET terms = EXCLUDED.terms, read_at = EXCLUDED.read_at
"""

RECOMPUTED: Final = """
UPDATE subscription_events AS e
   SET mrr_units = v.mrr, before_mrr_units = coalesce(v.before_mrr, e.before_mrr_units), discounts = v.state
  FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[]) AS v (event_id, mrr, before_mrr, state)
 WHERE e.event_id = v.event_id
"""

# The state row carries the MRR of the snapshot of its newest event (0015): keep them equal.
SYNC_STATE: Final = """
UPDATE subscriptions AS s SET mrr_units = e.mrr_units, updated_at = now()
  FROM subscription_events AS e
 WHERE s.id = $1 AND e.event_id = s.last_event_id AND s.mrr_units <> e.mrr_units
"""

DONE: Final = "DELETE FROM discount_fetches WHERE subscription_id = $1"

RETRY: Final = """
UPDATE discount_fetches SET due_at = $2, attempts = attempts + $3, last_error = $4 WHERE subscription_id = $1
"""

# Subscriptions whose newest snapshot's MRR is before a Discount named by id: not read yet, or gone when read; and,
# in the same pass over the pending snapshots, the paying ones whose MRR leaves out a tiered price whose tiers were
# never read (webhooks carry none: bot/stripe/tiers.py), whatever the discounts job's queue holds — a key set but
# not run yet, refused, or removed after it queued them leaves them out all the same (why: queries.mrr.TiersUnread).
BEFORE_DISCOUNTS: Final = """
SELECT count(*) FILTER (WHERE e.discounts = 'pending' AND s.mrr_units > 0) AS unread,
       count(*) FILTER (WHERE e.discounts = 'missing' AND s.mrr_units > 0) AS gone,
       count(*) FILTER (WHERE e.discounts = 'pending' AND e.pricing ->> 'counted' = 'true'
                          AND EXISTS (SELECT FROM jsonb_array_elements(e.pricing -> 'items') AS i
                                       WHERE i ->> 'tiered' = 'true' AND NOT i ? 'tiers')) AS tiers
  FROM subscription_events AS e
  JOIN subscriptions AS s ON s.id = e.subscription_id AND s.last_event_id = e.event_id
 WHERE e.discounts IN ('pending', 'missing')
"""


@dataclass(frozen=True, slots=True)
class Claim:
    """A subscription leased for reading its Discounts."""

    subscription_id: str
    attempts: int


@dataclass(frozen=True, slots=True)
class PendingSnapshot:
    """A snapshot whose MRR waits for Discounts named by id."""

    event_id: str
    at: dt.datetime
    currency: str
    pricing: Mapping[str, Any]
    before_pricing: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class Recomputed:
    """A snapshot's MRR with the Discounts read (MRR units, as stored: migration 0046); `state` 'applied', or
    'missing' when one could not be read."""

    event_id: str
    mrr: int
    before_mrr: int | None
    state: str


@dataclass(frozen=True, slots=True)
class BeforeDiscounts:
    """Paying subscriptions whose MRR is before Discounts Stripe sent as ids: not read yet, or gone when read."""

    unread: int
    gone: int
    tiers: int = 0  # paying subscriptions on a tiered price left out of MRR, their tiers unread


async def enqueue(db: Executor, *, now: dt.datetime) -> None:
    """Queue every subscription with a pending snapshot (once)."""
    await db.execute(ENQUEUE, now)


async def claim(db: Executor, *, now: dt.datetime, lease_until: dt.datetime, limit: int) -> list[Claim]:
    """Lease up to `limit` due subscriptions until `lease_until`."""
    return [Claim(r["subscription_id"], r["attempts"]) for r in await db.fetch(CLAIM, now, lease_until, limit)]


async def pending(db: Executor, subscription_id: str) -> list[PendingSnapshot]:
    """The subscription's snapshots still waiting for their Discounts, in event time."""
    return [PendingSnapshot(r["event_id"], r["at"], r["currency"], json.loads(r["pricing"]),
                            json.loads(r["before_pricing"]) if r["before_pricing"] else None)
            for r in await db.fetch(PENDING, subscription_id)]


async def terms(db: Executor, ids: Sequence[str]) -> dict[str, Mapping[str, Any] | None]:
    """The Discount terms already read, by id (None: the Discount was gone when read)."""
    rows = await db.fetch(TERMS, list(ids))
    return {r["id"]: json.loads(r["terms"]) if r["terms"] else None for r in rows}


async def save_terms(db: Executor, read: Mapping[str, Mapping[str, Any] | None], *, at: dt.datetime) -> None:
    """Cache Discount terms by id (None: gone)."""
    if read:
        await db.execute(SAVE_TERMS, list(read), [json.dumps(t) if t is not None else None for t in read.values()],
                         at)


async def recomputed(db: Executor, subscription_id: str, rows: Sequence[Recomputed]) -> None:
    """Write the recomputed snapshots and bring the subscription's state row to its newest one."""
    if rows:
        await db.execute(RECOMPUTED, [r.event_id for r in rows], [r.mrr for r in rows],
                         [r.before_mrr for r in rows], [r.state for r in rows])
    await db.execute(SYNC_STATE, subscription_id)


async def done(db: Executor, subscription_id: str) -> None:
    """Take the subscription off the queue."""
    await db.execute(DONE, subscription_id)


async def retry(db: Executor, *, subscription_id: str, due_at: dt.datetime, error: str, attempt: bool = True) -> None:
    """Try again at `due_at` ('infinity' gives up); `attempt` False for a rate limit, which is no fault."""
    await db.execute(RETRY, subscription_id, due_at, int(attempt), error[:500])


async def before_discounts(db: Executor) -> BeforeDiscounts:
    """How many paying subscriptions' MRR is before Discounts Stripe sent as ids."""
    row = await db.fetchrow(BEFORE_DISCOUNTS)
    return BeforeDiscounts(unread=row["unread"], gone=row["gone"], tiers=row["tiers"])
