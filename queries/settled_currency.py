"""SQL keeping the summed settled figures in the store currency only (migration 0047): an order read as settled in
another currency has its figures set aside (orders.settled_aside, summed nowhere), and the walk that applies a change
of store currency to the orders read before it.

The rollups sum orders.settled_amount, fee and settled_refunded as amounts in the store currency whatever their
settled_currency (queries/settlements.py SETTLED_PARTS, queries/reports.py TOP_PRODUCTS_IN), so those columns hold
figures in the store currency only: the sums stay one currency's, and /sales keeps reading them from the rollups.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from queries.executor import Executor
from queries.settlements import Claim, Figures

# An order read as settled in $3, not the store currency: its figures (queries/settlements.py RECORD's parameters)
# set aside, summed nowhere, and none in the summed columns.
SET_ASIDE: Final = """
UPDATE orders
   SET settled_currency = $3, settled_amount = NULL, fee = NULL, settled_refunded = NULL, net = NULL,
       balance_transaction = NULL, settled_at = NULL, settled_refund_basis = NULL, settled_disputes = NULL,
       settled_aside = jsonb_build_object('amount', $2::bigint, 'fee', $4::bigint, 'refunded', $5::bigint,
                                          'net', $6::bigint, 'balance_transaction', $7::text, 'at', $8::timestamptz,
                                          'refund_basis', $9::bigint, 'disputes', $10::int)
 WHERE id = $1
"""

WALKED: Final = """
SELECT currency IS NOT DISTINCT FROM $1 AND finished_at IS NOT NULL FROM settled_currency_walk
"""

# A walk for another currency than the last one starts from the newest order (whichever replica sees it first).
START: Final = """
UPDATE settled_currency_walk SET currency = $1, before_at = NULL, before_id = NULL, started_at = $2, finished_at = NULL
 WHERE currency IS DISTINCT FROM $1
"""

# The walk's row, locked for one step: none when another replica is stepping, or the walk is finished or for another
# currency.
LOCK: Final = """
SELECT before_at, before_id FROM settled_currency_walk
 WHERE currency = $1 AND finished_at IS NULL
   FOR UPDATE SKIP LOCKED
"""

# One step: the next $4 orders, newest first, before ($2, $3) or from the newest (orders_created_idx, then by id).
# Those to change are locked in id order, as the intake locks orders (no deadlock with it): figures in another
# currency than $1 are set aside, the order given up on with the reason at $6 tries (queries/settlements.py REVIVE
# leaves it: it would settle in the same currency again); figures set aside in $1, now the store currency, come back
# if no refund or dispute came since (else, or with none set aside, the order is due again at $5).
STEP: Final = """
WITH step AS MATERIALIZED (
    SELECT id, created_at FROM orders
     WHERE (created_at, id) < (coalesce($2::timestamptz, 'infinity'), coalesce($3::text, ''))
     ORDER BY created_at DESC, id DESC
     LIMIT $4
), touched AS MATERIALIZED (
    SELECT o.id, o.settled_amount IS NOT NULL AS elsewhere,
           coalesce((o.settled_aside ->> 'refund_basis')::bigint = o.amount_refunded
                    AND (o.settled_aside ->> 'disputes')::bigint = (SELECT count(*) FROM disputes AS d
                                                                     WHERE d.order_id = o.id), false) AS current
      FROM orders AS o JOIN step AS s ON s.id = o.id
     WHERE (o.settled_amount IS NOT NULL AND o.settled_currency IS DISTINCT FROM $1)
        OR (o.settled_amount IS NULL AND o.settled_currency = $1)
     ORDER BY o.id
       FOR UPDATE OF o
), aside AS (
    UPDATE orders AS o
       SET settled_aside = jsonb_build_object('amount', o.settled_amount, 'fee', o.fee, 'refunded', o.settled_refunded,
                                              'net', o.net, 'balance_transaction', o.balance_transaction,
                                              'at', o.settled_at, 'refund_basis', o.settled_refund_basis,
                                              'disputes', o.settled_disputes),
           settled_amount = NULL, fee = NULL, settled_refunded = NULL, net = NULL, balance_transaction = NULL,
           settled_at = NULL, settled_refund_basis = NULL, settled_disputes = NULL
      FROM touched AS t
     WHERE o.id = t.id AND t.elsewhere
    RETURNING o.id, o.settled_currency
), back AS (
    UPDATE orders AS o
       SET settled_amount = (o.settled_aside ->> 'amount')::bigint, fee = (o.settled_aside ->> 'fee')::bigint,
           settled_refunded = (o.settled_aside ->> 'refunded')::bigint, net = (o.settled_aside ->> 'net')::bigint,
           balance_transaction = o.settled_aside ->> 'balance_transaction',
           settled_at = (o.settled_aside ->> 'at')::timestamptz,
           settled_refund_basis = (o.settled_aside ->> 'refund_basis')::bigint,
           settled_disputes = (o.settled_aside ->> 'disputes')::int, settled_aside = NULL
      FROM touched AS t
     WHERE o.id = t.id AND NOT t.elsewhere AND t.current
    RETURNING o.id
), given_up AS (
    INSERT INTO settlement_fetches AS f (order_id, due_at, queued_at, attempts, last_error, tried_at)
    SELECT id, 'infinity', $5, $6,
           format('settled in %s, not the store currency %s', coalesce(settled_currency, '?'), $1::text), $5
      FROM aside
    ON CONFLICT (order_id) DO UPDATE
       SET due_at = 'infinity', attempts = EXCLUDED.attempts, last_error = EXCLUDED.last_error,
           tried_at = EXCLUDED.tried_at
    RETURNING 1
), settled AS (
    DELETE FROM settlement_fetches AS f USING back AS b WHERE f.order_id = b.id AND f.due_at = 'infinity'
), requeued AS (
    INSERT INTO settlement_fetches AS f (order_id, due_at, queued_at)
    SELECT id, $5, $5 FROM touched WHERE NOT elsewhere AND NOT current
    ON CONFLICT (order_id) DO UPDATE SET due_at = EXCLUDED.due_at, attempts = 0, queued_at = EXCLUDED.queued_at
     WHERE f.due_at = 'infinity'
    RETURNING 1
)
SELECT (SELECT count(*) FROM step) AS scanned, (SELECT count(*) FROM given_up) AS aside,
       (SELECT count(*) FROM back) AS back, (SELECT count(*) FROM requeued) AS requeued,
       last.created_at AS last_at, last.id AS last_id
  FROM (VALUES (1)) AS one
  LEFT JOIN LATERAL (SELECT created_at, id FROM step ORDER BY created_at, id LIMIT 1) AS last ON true
"""

MOVE: Final = """
UPDATE settled_currency_walk SET before_at = $1, before_id = $2, finished_at = $3
"""


@dataclass(frozen=True, slots=True)
class Step:
    """One step of the walk: orders looked at, figures set aside, brought back, orders to read again; `finished`:
    none left."""

    scanned: int
    aside: int
    back: int
    requeued: int
    finished: bool


async def set_aside(db: Executor, *, claim: Claim, figures: Figures, at: dt.datetime) -> None:
    """The order settled in another currency than the store's: its figures (as settlements.record takes them) set
    aside, none summed."""
    f = figures
    await db.execute(SET_ASIDE, claim.order_id, f.amount, f.currency, f.fee, f.refunded, f.net, f.balance_transaction,
                     at, claim.amount_refunded, claim.disputes)


async def walked(db: Executor, *, currency: str) -> bool:
    """Whether every order has been walked for `currency` as the store currency."""
    done: bool = await db.fetchval(WALKED, currency)
    return done


async def start(db: Executor, *, currency: str, at: dt.datetime) -> bool:
    """Start walking for `currency` unless the walk is already for it; whether this call started it."""
    status: str = await db.execute(START, currency, at)
    return status.split()[-1] != "0"


async def step(db: Executor, *, currency: str, limit: int, at: dt.datetime, attempts: int) -> Step | None:
    """One step of the walk for `currency` (call inside a transaction); None when there is none to take now."""
    walk = await db.fetchrow(LOCK, currency)
    if walk is None:
        return None
    row = await db.fetchrow(STEP, currency, walk["before_at"], walk["before_id"], limit, at, attempts)
    finished = row["scanned"] < limit
    await db.execute(MOVE, row["last_at"] or walk["before_at"], row["last_id"] or walk["before_id"],
                     at if finished else None)
    return Step(row["scanned"], row["aside"], row["back"], row["requeued"], finished)
