"""SQL behind net-of-fees figures: the queue of orders whose Stripe balance transactions are still to be read,
what was read, the account's default currency, and window totals of the settled columns (migration 0014).

The queue is filled by scanning what changed recently (new sales, refunds, disputes) rather than by a trigger, and
by one statement per intake batch whose events change figures already read or queued (REREAD); without
STRIPE_API_KEY nothing is ever read, so nothing is ever queued.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

from queries.cover import cover, local_cuts
from queries.executor import Executor

# Orders whose figures are missing or stale since `$1`: paid and never read; refunded since they were read;
# disputed after they were read (the dispute's withdrawal and fee are balance transactions of their own).
ENQUEUE: Final = """
INSERT INTO settlement_fetches (order_id, due_at, queued_at)
SELECT id, $2::timestamptz, $2::timestamptz FROM orders
 WHERE created_at >= $1 AND payment_status IN ('completed', 'refunded') AND settled_at IS NULL
   AND (charge_id IS NOT NULL OR payment_intent_id IS NOT NULL)
UNION
SELECT id, $2, $2 FROM orders
 WHERE refunded_at >= $1 AND settled_at IS NOT NULL AND amount_refunded <> coalesce(settled_refund_basis, 0)
UNION
SELECT o.id, $2, $2 FROM disputes AS d JOIN orders AS o ON o.id = d.order_id
 WHERE d.created_at >= $1 AND o.settled_at IS NOT NULL
   AND coalesce(o.settled_disputes, 0) < (SELECT count(*) FROM disputes AS k WHERE k.order_id = o.id)
ON CONFLICT (order_id) DO NOTHING
"""

# An event that changes an order's Stripe figures — a refund, a refund failed or canceled, a dispute opened, closed
# or its funds reinstated — reads them again if they were ever read or are queued (without STRIPE_API_KEY nothing
# is, so nothing is queued). A row given up on or backing off is made due now with fresh tries; one waiting keeps
# its place. queued_at moves on in every case: a read in flight when the event came (begun before it) then leaves
# its row to be read again when the lease ends (DONE). A dispute's status is the intake's (UPSERT_DISPUTES).
REREAD: Final = """
INSERT INTO settlement_fetches AS f (order_id, due_at, queued_at)
SELECT DISTINCT o.id, $2::timestamptz, $2::timestamptz
  FROM payment_refs AS p
  JOIN orders AS o ON o.id = p.order_id
 WHERE p.ref = ANY($1::text[])
   AND (o.settled_at IS NOT NULL OR EXISTS (SELECT FROM settlement_fetches AS q WHERE q.order_id = o.id))
ON CONFLICT (order_id) DO UPDATE
   SET queued_at = EXCLUDED.queued_at,
       due_at    = CASE WHEN f.due_at = 'infinity' OR f.attempts > 0 THEN EXCLUDED.due_at ELSE f.due_at END,
       attempts  = CASE WHEN f.due_at = 'infinity' OR f.attempts > 0 THEN 0 ELSE f.attempts END
"""

# Orders given up on after MAX_ATTEMPTS failed tries get one more try at the daily reconciliation ($4: the attempts
# that leave exactly one) while their sale is in its window ($2): an outage longer than the backoff ends. Not tried
# since $3 (a day before now): once a day, however many replicas and restarts; a failure gives the order up again at
# once. One known to have settled in another currency than the store's ($5) is left: it would again (a change of
# store currency brings back those that settled in the new one: queries/settled_currency.py).
REVIVE: Final = """
UPDATE settlement_fetches AS f
   SET due_at = $1, attempts = $4
  FROM orders AS o
 WHERE f.due_at = 'infinity' AND o.id = f.order_id AND o.created_at >= $2
   AND coalesce(f.tried_at, f.queued_at) <= $3
   AND (o.settled_currency IS NULL OR o.settled_currency = $5 OR $5::text IS NULL)
"""

# A lease, not a lock held across HTTP: the claimed rows' due_at moves past the batch's deadline, so another
# replica (or this one, after a crash) takes them again only if the batch never reports back.
CLAIM: Final = """
UPDATE settlement_fetches AS f
   SET due_at = $2
  FROM (SELECT order_id FROM settlement_fetches
         WHERE due_at <= $1
         ORDER BY due_at
         LIMIT $3
           FOR UPDATE SKIP LOCKED) AS c,
       orders AS o
 WHERE f.order_id = c.order_id AND o.id = c.order_id
RETURNING f.order_id, f.attempts, o.charge_id, o.payment_intent_id, o.amount_refunded,
          (SELECT count(*) FROM disputes AS d WHERE d.order_id = o.id) AS disputes
"""

RECORD: Final = """
UPDATE orders
   SET settled_amount = $2, settled_currency = $3, fee = $4, settled_refunded = $5, net = $6,
       balance_transaction = $7, settled_at = $8, settled_refund_basis = $9, settled_disputes = $10,
       settled_aside = NULL
 WHERE id = $1
"""

# Unless an event queued the order again after the claim ($2): then the row stays and, its lease ended, is read again.
DONE: Final = "DELETE FROM settlement_fetches WHERE order_id = $1 AND queued_at <= $2"

RETRY: Final = """UPDATE settlement_fetches SET due_at = $2, attempts = attempts + $3, last_error = $4, tried_at = $5
 WHERE order_id = $1"""

ACCOUNT_CURRENCY: Final = "SELECT default_currency FROM stripe_account"

SAVE_ACCOUNT: Final = """
INSERT INTO stripe_account (default_currency, checked_at) VALUES ($1, $2)
ON CONFLICT (id) DO UPDATE SET default_currency = EXCLUDED.default_currency, checked_at = EXCLUDED.checked_at
"""

BACKLOG: Final = """
SELECT count(*) FILTER (WHERE due_at < 'infinity') AS waiting, count(*) FILTER (WHERE due_at = 'infinity') AS given_up
  FROM settlement_fetches
"""

# queries/sales.py's cover with the settled columns; the edge rows come from the table (they are few). A fully
# refunded order counts its fee and what its refund took back beyond its sale (0050), an estimate while its refund is
# not read (its order then counted as waiting: 0057); those set aside (0047) apart.
SETTLED_PARTS: Final = """
WITH parts AS (
    SELECT bucket AS at, currency, orders, revenue, settled_orders, settled_revenue, settled, fees, deducted,
           aside_orders, aside_revenue, stale_orders FROM sales_rollups
     WHERE level = 'day' AND bucket = ANY($1::timestamptz[])
    UNION ALL
    SELECT bucket, currency, orders, revenue, settled_orders, settled_revenue, settled, fees, deducted, aside_orders,
           aside_revenue, stale_orders FROM sales_rollups WHERE level = 'hour' AND bucket = ANY($2::timestamptz[])
       AND bucket >= (SELECT min(b) FROM unnest($2::timestamptz[]) AS b)
       AND bucket <= (SELECT max(b) FROM unnest($2::timestamptz[]) AS b)
    UNION ALL
    SELECT bucket, currency, orders, revenue, settled_orders, settled_revenue, settled, fees, deducted, aside_orders,
           aside_revenue, stale_orders FROM order_rollups WHERE bucket = ANY($3::timestamptz[])
    UNION ALL
    SELECT o.created_at, coalesce(o.currency, ''), 1, coalesce(o.amount_total, 0), (o.settled_amount IS NOT NULL)::int,
           CASE WHEN o.settled_amount IS NULL THEN 0 ELSE coalesce(o.amount_total, 0) END,
           coalesce(o.settled_amount, 0), coalesce(o.fee, 0), coalesce(o.settled_refunded, 0) + settled_refund_wait(o),
           (o.settled_amount IS NULL AND o.settled_aside IS NOT NULL)::int,
           coalesce(o.amount_total, 0) * (o.settled_amount IS NULL AND o.settled_aside IS NOT NULL)::int,
           settled_stale(o)::int
      FROM unnest($4::timestamptz[], $5::timestamptz[]) AS w (lo, hi)
      JOIN orders AS o ON o.payment_status = 'completed' AND o.created_at >= w.lo AND o.created_at < w.hi
    UNION ALL
    SELECT o.created_at, coalesce(o.currency, ''), 0, 0, 0, 0, 0, o.fee,
           CASE WHEN settled_stale(o) THEN 0 ELSE coalesce(o.settled_refunded, 0) - coalesce(o.settled_amount, 0) END,
           0, 0, settled_stale(o)::int
      FROM unnest($4::timestamptz[], $5::timestamptz[]) AS w (lo, hi)
      JOIN orders AS o ON o.payment_status = 'refunded' AND o.created_at >= w.lo AND o.created_at < w.hi
     WHERE o.fee IS NOT NULL
)
"""
_SUMMED: Final = """sum(orders)::bigint AS orders, sum(revenue)::bigint AS revenue,
       sum(settled_orders)::bigint AS settled_orders, sum(settled_revenue)::bigint AS settled_revenue,
       sum(settled)::bigint AS settled, sum(fees)::bigint AS fees, sum(deducted)::bigint AS deducted,
       sum(aside_orders)::bigint AS aside_orders, sum(aside_revenue)::bigint AS aside_revenue,
       sum(stale_orders)::bigint AS stale_orders
  FROM parts"""

SETTLED_TOTALS: Final = SETTLED_PARTS + f"""
SELECT currency, {_SUMMED}
 GROUP BY currency
HAVING sum(orders) <> 0 OR sum(fees) <> 0 OR sum(deducted) <> 0 OR sum(stale_orders) <> 0
 ORDER BY currency
"""

# By local hour or day, as queries/sales.py TREND (the cover is cut at every local bucket).
SETTLED_TREND: Final = SETTLED_PARTS + f"""
SELECT date_trunc($6, at, $7) AS bucket, currency, {_SUMMED}
 GROUP BY 1, 2
HAVING sum(orders) <> 0 OR sum(fees) <> 0 OR sum(deducted) <> 0 OR sum(stale_orders) <> 0
 ORDER BY 1, 2
"""


@dataclass(frozen=True, slots=True)
class Claim:
    """An order leased for reading its balance transactions."""

    order_id: str
    attempts: int
    charge_id: str | None
    payment_intent_id: str | None
    amount_refunded: int
    disputes: int


@dataclass(frozen=True, slots=True)
class Figures:
    """What Stripe settled for one order, in `currency` (the account's), minor units."""

    amount: int
    currency: str
    fee: int
    refunded: int  # refunds and dispute withdrawals, positive
    net: int
    balance_transaction: str


@dataclass(frozen=True, slots=True)
class SettledTotal:
    """Completed orders of a window in one original currency, with what is known of their settlement."""

    currency: str
    orders: int
    revenue: int  # amount_total, in `currency`
    settled_orders: int  # orders whose balance transaction has been read
    settled_revenue: int  # their amount_total, in `currency`
    settled: int  # their settled amounts, in the store currency
    fees: int
    deducted: int  # refunds and disputes of these orders, settled
    aside_orders: int = 0  # orders whose figures were read in another currency than the store's (not counted)
    aside_revenue: int = 0  # their amount_total, in `currency`
    stale_orders: int = 0  # orders (completed or refunded) whose latest refunds Stripe's figures do not hold yet


@dataclass(frozen=True, slots=True)
class SettledPoint:
    """One local hour or day of settled_totals, in one original currency."""

    bucket: dt.datetime
    total: SettledTotal


@dataclass(frozen=True, slots=True)
class Backlog:
    """Orders waiting for their figures, and those given up on (see last_error)."""

    waiting: int
    given_up: int


async def enqueue(db: Executor, *, since: dt.datetime, now: dt.datetime) -> int:
    """Queue every order changed since `since` whose figures are missing or stale; how many were queued."""
    status: str = await db.execute(ENQUEUE, since, now)
    return int(status.split()[-1])


async def reread(db: Executor, *, refs: list[str], now: dt.datetime) -> None:
    """Refunds, failed refunds and disputes of these payments: queue their orders' figures to be read again."""
    if refs:
        await db.execute(REREAD, refs, now)


async def revive(db: Executor, *, now: dt.datetime, since: dt.datetime, tried_before: dt.datetime,
                 attempts: int, store: str | None) -> int:
    """Make the orders of sales since `since` given up on and not tried since `tried_before` due now, at `attempts`
    tries, but those settled in another currency than `store`; how many."""
    status: str = await db.execute(REVIVE, now, since, tried_before, attempts, store)
    return int(status.split()[-1])


async def claim(db: Executor, *, now: dt.datetime, lease_until: dt.datetime, limit: int) -> list[Claim]:
    """Lease up to `limit` due orders until `lease_until`."""
    rows = await db.fetch(CLAIM, now, lease_until, limit)
    return [Claim(r["order_id"], r["attempts"], r["charge_id"], r["payment_intent_id"], int(r["amount_refunded"]),
                  r["disputes"]) for r in rows]


async def record(db: Executor, *, claim: Claim, figures: Figures, at: dt.datetime) -> None:
    """Store an order's figures, as of the refunds and disputes known at its claim (`at`), and take it off the
    queue unless an event queued it again since (call inside one transaction)."""
    f = figures
    await db.execute(RECORD, claim.order_id, f.amount, f.currency, f.fee, f.refunded, f.net, f.balance_transaction,
                     at, claim.amount_refunded, claim.disputes)
    await db.execute(DONE, claim.order_id, at)


async def retry(db: Executor, *, order_id: str, due_at: dt.datetime, error: str, at: dt.datetime,
                attempt: bool = True) -> None:
    """Tried at `at`: try again at `due_at` ('infinity' gives up); `attempt` False for a rate limit, no fault."""
    await db.execute(RETRY, order_id, due_at, int(attempt), error[:500], at)


async def account_currency(db: Executor) -> str | None:
    """The Stripe account's default currency as last read, if ever."""
    value: str | None = await db.fetchval(ACCOUNT_CURRENCY)
    return value


async def save_account(db: Executor, *, currency: str, at: dt.datetime) -> None:
    """Remember the account's default currency."""
    await db.execute(SAVE_ACCOUNT, currency.upper(), at)


async def backlog(db: Executor) -> Backlog:
    """How many orders wait for their figures."""
    row = await db.fetchrow(BACKLOG)
    return Backlog(waiting=row["waiting"], given_up=row["given_up"])


def _settled(r: Any) -> SettledTotal:
    return SettledTotal(r["currency"] or "USD", r["orders"], int(r["revenue"]), r["settled_orders"],
                        int(r["settled_revenue"]), int(r["settled"]), int(r["fees"]), int(r["deducted"]),
                        r["aside_orders"], int(r["aside_revenue"]), r["stale_orders"])


async def settled_totals(db: Executor, *, start: dt.datetime, end: dt.datetime) -> list[SettledTotal]:
    """Completed orders of [start, end) per original currency, with their settled figures (and the fees Stripe
    kept on fully refunded ones)."""
    rows = await db.fetch(SETTLED_TOTALS, *cover(start, end).args("day", "hour", "quarter", "raw"))
    return [_settled(r) for r in rows]


async def settled_trend(db: Executor, *, start: dt.datetime, end: dt.datetime, bucket: str,
                        tz: str) -> list[SettledPoint]:
    """settled_totals per local hour or day (`bucket`), oldest first."""
    pieces = cover(start, end, cuts=local_cuts(start, end, bucket=bucket, tz=tz))
    rows = await db.fetch(SETTLED_TREND, *pieces.args("day", "hour", "quarter", "raw"), bucket, tz)
    return [SettledPoint(r["bucket"], _settled(r)) for r in rows]
