"""The MRR statements of the release before migration 0046, verbatim (`git show` of queries/subscriptions.py,
queries/mrr.py and queries/discounts.py at that release): what a replica still running it sends during a rolling
deploy, and how the tests set up a store as that release left it (its columns were mrr, before_mrr, prev_mrr)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple
from typing import Any, Final

import asyncpg

from queries.subscriptions import Snapshot, StateRow

INSERT_SNAPSHOTS: Final = """
INSERT INTO subscription_events (event_id, subscription_id, at, rank, status, mrr, currency, plan, before_mrr,
                                 pricing, before_pricing, discounts)
SELECT e, s, a, r, st, m, c, p, b, pr::jsonb, bp::jsonb, d
  FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::smallint[], $5::text[], $6::bigint[], $7::text[],
              $8::text[], $9::bigint[], $10::text[], $11::text[], $12::text[])
       AS v (e, s, a, r, st, m, c, p, b, pr, bp, d)
ON CONFLICT (event_id) DO NOTHING
"""

UPSERT_STATES: Final = """
INSERT INTO subscriptions (id, customer, status, mrr, currency, plan, cancel_at_period_end, cancel_at,
                           current_period_end, started_at, canceled_at, ended_at, livemode, last_event_id,
                           last_event_at, last_event_rank)
SELECT *
  FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::bool[],
              $8::timestamptz[], $9::timestamptz[], $10::timestamptz[], $11::timestamptz[], $12::timestamptz[],
              $13::bool[], $14::text[], $15::timestamptz[], $16::smallint[])
ON CONFLICT (id) DO UPDATE
   SET customer = coalesce(EXCLUDED.customer, subscriptions.customer), status = EXCLUDED.status,
       mrr = EXCLUDED.mrr, currency = EXCLUDED.currency, plan = coalesce(EXCLUDED.plan, subscriptions.plan),
       cancel_at_period_end = EXCLUDED.cancel_at_period_end, cancel_at = EXCLUDED.cancel_at,
       current_period_end = EXCLUDED.current_period_end,
       started_at = coalesce(subscriptions.started_at, EXCLUDED.started_at),
       canceled_at = EXCLUDED.canceled_at, ended_at = EXCLUDED.ended_at, last_event_id = EXCLUDED.last_event_id,
       last_event_at = EXCLUDED.last_event_at, last_event_rank = EXCLUDED.last_event_rank, updated_at = now()
 WHERE (EXCLUDED.last_event_at, EXCLUDED.last_event_rank, EXCLUDED.last_event_id)
     > (subscriptions.last_event_at, subscriptions.last_event_rank, subscriptions.last_event_id)
"""

SUMMARY: Final = """
WITH edges AS (
        SELECT currency, at, m.*
          FROM subscription_events
         CROSS JOIN LATERAL mrr_movement(mrr, coalesce(prev_mrr, before_mrr, 0), paid_before) AS m
         WHERE (at >= $2 AND at < $4) OR (at > $3 AND at < $6) OR (at >= $5 AND at < $7)),
     parts AS (
        SELECT currency, new, reactivation, expansion, contraction, churned, churned_count, delta, active_delta,
               at >= $2 AND at <= $1::timestamptz AND NOT (at >= $4 AND at < $5) AS inside,
               at > $3 AND at <= $1::timestamptz AND NOT (at >= $6 AND at < $5)  AS last_week,
               at > $1 AND at < $7                                               AS after_now
          FROM edges
        UNION ALL
        SELECT currency, new, reactivation, expansion, contraction, churned, churned_count, delta, active_delta,
               day >= $4 AND day < $5, day >= $6 AND day < $5, day >= $7
          FROM mrr_movement_days
         WHERE day >= least($4::timestamptz, $6::timestamptz)),
     movement AS (
        SELECT currency,
               sum(new) FILTER (WHERE inside)                         AS new,
               sum(reactivation) FILTER (WHERE inside)                AS reactivation,
               sum(expansion) FILTER (WHERE inside)                   AS expansion,
               sum(contraction) FILTER (WHERE inside)                 AS contraction,
               sum(churned) FILTER (WHERE inside)                     AS churned,
               sum(churned_count) FILTER (WHERE inside)               AS churned_count,
               coalesce(sum(delta) FILTER (WHERE after_now), 0)       AS after_now,
               coalesce(sum(delta) FILTER (WHERE last_week), 0)       AS last_week,
               coalesce(sum(active_delta) FILTER (WHERE after_now), 0) AS active_after
          FROM parts
         WHERE inside OR last_week OR after_now
         GROUP BY currency),
     state AS (SELECT currency, sum(mrr) AS mrr, count(*) FILTER (WHERE mrr > 0) AS active
                 FROM subscriptions GROUP BY currency),
     currencies AS (SELECT currency FROM state UNION SELECT currency FROM movement)
SELECT c.currency,
       (coalesce(s.mrr, 0) - coalesce(m.after_now, 0))::bigint                              AS mrr,
       (coalesce(s.mrr, 0) - coalesce(m.after_now, 0) - coalesce(m.last_week, 0))::bigint   AS mrr_week_ago,
       coalesce(m.new, 0)::bigint                                                           AS new,
       coalesce(m.reactivation, 0)::bigint                                                  AS reactivation,
       coalesce(m.expansion, 0)::bigint                                                     AS expansion,
       coalesce(m.contraction, 0)::bigint                                                   AS contraction,
       coalesce(m.churned, 0)::bigint                                                       AS churned,
       coalesce(m.churned_count, 0)::bigint                                                 AS churned_count,
       (coalesce(s.active, 0) - coalesce(m.active_after, 0))::bigint                        AS active
  FROM currencies AS c
  LEFT JOIN state    AS s USING (currency)
  LEFT JOIN movement AS m USING (currency)
 ORDER BY mrr DESC, c.currency
"""

RECOMPUTED: Final = """
UPDATE subscription_events AS e
   SET mrr = v.mrr, before_mrr = coalesce(v.before_mrr, e.before_mrr), discounts = v.state
  FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[]) AS v (event_id, mrr, before_mrr, state)
 WHERE e.event_id = v.event_id
"""

SYNC_STATE: Final = """
UPDATE subscriptions AS s SET mrr = e.mrr, updated_at = now()
  FROM subscription_events AS e
 WHERE s.id = $1 AND e.event_id = s.last_event_id AND s.mrr <> e.mrr
"""


def columns(rows: Sequence[Snapshot | StateRow]) -> list[list[Any]]:
    return [list(column) for column in zip(*(astuple(r) for r in rows), strict=True)]


async def insert_snapshots(conn: asyncpg.Connection, rows: Sequence[Snapshot]) -> None:
    """As the old release's queries.subscriptions.insert_snapshots."""
    await conn.execute(INSERT_SNAPSHOTS, *columns(rows))


async def upsert_states(conn: asyncpg.Connection, rows: Sequence[StateRow]) -> None:
    """As the old release's queries.subscriptions.upsert_states (its StateRow's 16 fields: 0053 added a 17th)."""
    await conn.execute(UPSERT_STATES, *columns(rows)[:16])
