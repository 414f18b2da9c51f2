"""SQL for the churn of a subscription on a tiered price (bot/subscriptions/late_churn.py): which snapshots lose
MRR the ledger has not read yet, and the dedupe keys its ping may have.

A tiered price comes without its tiers, so the snapshots' MRR leaves it out until the discounts job reads them
(bot/stripe/discount_job.py); what a churn loses is the ledger's start (the snapshot it moves from), as the MRR
figures count it (queries/mrr.py), known once that snapshot is read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from queries.executor import Executor

# The snapshots of these events, and the one right after each (whose start it is), that pay nothing and carry a
# tiered item: with the ledger's start (`start`) and whether it is still to be read (`awaiting`: the snapshot it
# moves from, else its own MRR before, is paying and waits for its tiers or Discounts). Its customer paying on
# another subscription (`others_paying`, 0053) makes it a subscription ended rather than a churn.
TIERED_LOSSES: Final = """
WITH asked AS (
    SELECT c.event_id FROM subscription_events AS c WHERE c.event_id = ANY($1::text[])
    UNION
    SELECT n.event_id
      FROM subscription_events AS c
     CROSS JOIN LATERAL (SELECT n.event_id FROM subscription_events AS n
                          WHERE n.subscription_id = c.subscription_id
                            AND (n.at, n.rank, n.seq, n.event_id) > (c.at, c.rank, c.seq, c.event_id)
                          ORDER BY n.at, n.rank, n.seq, n.event_id
                          LIMIT 1) AS n
     WHERE c.event_id = ANY($1::text[])
)
SELECT l.event_id, l.subscription_id, l.at, l.currency, l.plan, l.start, l.awaiting,
       CASE WHEN l.awaiting THEN customer_paying(l.subscription_id, l.currency, l.at, l.rank, l.seq, l.event_id)
            ELSE l.others_paying END AS others_paying  -- the ledger's, kept only where its start is above 0
  FROM (SELECT s.event_id, s.subscription_id, s.at, s.rank, s.seq, s.currency, s.plan, s.others_paying,
               coalesce(s.prev_mrr_units, s.before_mrr_units, 0) AS start,
               CASE WHEN p.event_id IS NULL
                    THEN s.discounts = 'pending' AND coalesce((s.before_pricing ->> 'counted')::boolean, false)
                    ELSE p.discounts = 'pending' AND coalesce((p.pricing ->> 'counted')::boolean, false)
               END AS awaiting
          FROM asked
          JOIN subscription_events AS s USING (event_id)
          LEFT JOIN LATERAL (SELECT p.event_id, p.discounts, p.pricing FROM subscription_events AS p
                              WHERE p.subscription_id = s.subscription_id
                                AND (p.at, p.rank, p.seq, p.event_id) < (s.at, s.rank, s.seq, s.event_id)
                              ORDER BY p.at DESC, p.rank DESC, p.seq DESC, p.event_id DESC
                              LIMIT 1) AS p ON true
         WHERE s.mrr_units = 0 AND (s.pricing ->> 'counted')::boolean IS NOT TRUE
           AND (jsonb_path_exists(s.pricing, '$.items[*] ? (@.tiered == true)')
                OR jsonb_path_exists(s.before_pricing, '$.items[*] ? (@.tiered == true)'))) AS l
"""

EVENT_IDS: Final = "SELECT event_id FROM subscription_events WHERE subscription_id = $1"


@dataclass(frozen=True, slots=True)
class TieredLoss:
    """A snapshot that pays nothing on a tiered price, and what the ledger says it moves from (MRR units)."""

    event_id: str
    subscription_id: str
    at: dt.datetime
    currency: str
    plan: str | None
    others_paying: bool
    start: int
    awaiting: bool


async def tiered_losses(db: Executor, event_ids: Sequence[str]) -> list[TieredLoss]:
    """The snapshots of these events, and the one right after each, paying nothing on a tiered price."""
    if not event_ids:
        return []
    return [TieredLoss(r["event_id"], r["subscription_id"], r["at"], r["currency"], r["plan"],
                       bool(r["others_paying"]), int(r["start"]), r["awaiting"])
            for r in await db.fetch(TIERED_LOSSES, list(event_ids))]


async def event_ids(db: Executor, subscription_id: str) -> list[str]:
    """The events of one subscription's snapshots."""
    return [r["event_id"] for r in await db.fetch(EVENT_IDS, subscription_id)]
