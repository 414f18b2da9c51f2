"""SQL the demo runs against the embedded server itself (its database, kept between runs or made afresh) and
against that database (where its history ends, its made-up settlements)."""

from __future__ import annotations

import datetime as dt
from typing import Final

from queries.executor import Executor

DEMO_DATABASE: Final = "salespulse_demo"
# WITH (FORCE): a demo killed a moment ago may still have sessions open on it.
DROP_DEMO_DATABASE: Final = "DROP DATABASE IF EXISTS salespulse_demo WITH (FORCE)"
CREATE_DEMO_DATABASE: Final = "CREATE DATABASE salespulse_demo"


DEMO_DATABASE_EXISTS: Final = "SELECT EXISTS (SELECT FROM pg_database WHERE datname = 'salespulse_demo')"
# Where the kept demo's history ends: where its seeding last reached (the database's comment, MARK_HISTORY), or the
# last event the simulator sent through the intake, whichever is later — or its last order, if a run stopped while
# loading before it could mark anything.
HISTORY_ENDS: Final = r"""
SELECT greatest((SELECT CASE WHEN c ~ '^\d{4}-\d\d-\d\d' THEN c::timestamptz END
                   FROM shobj_description((SELECT oid FROM pg_database WHERE datname = current_database()),
                                          'pg_database') AS c),
                (SELECT max(created_at) FROM webhook_logs),
                (SELECT max(created_at) FROM orders))
"""
# COMMENT takes no parameters: the statement is built by format() (%L quotes the time) and run next.
MARK_HISTORY: Final = "SELECT format('COMMENT ON DATABASE %I IS %L', current_database(), $1::timestamptz::text)"

# Successful orders (completed or refunded since), as the seeder counts them.
RECENT_ORDERS: Final = """
SELECT count(*) FROM orders WHERE payment_status IN ('completed', 'refunded') AND created_at >= $1
"""


async def demo_database(db: Executor, *, fresh: bool) -> str:
    """The demo database's name: kept from an earlier run unless `fresh`, else made empty. Not in a transaction
    (PostgreSQL refuses CREATE DATABASE inside one), so run it on a plain connection."""
    if not fresh and await db.fetchval(DEMO_DATABASE_EXISTS):
        return DEMO_DATABASE
    return await recreate_demo_database(db)


async def history_ends(db: Executor) -> dt.datetime | None:
    """The time of the kept demo's last order or event (None: it has none, e.g. a run stopped while loading)."""
    at: dt.datetime | None = await db.fetchval(HISTORY_ENDS)
    return at


async def mark_history(db: Executor, *, until: dt.datetime) -> None:
    """Remember that the synthetic history reaches `until`."""
    await db.execute(await db.fetchval(MARK_HISTORY, until))


async def recent_orders(db: Executor, *, since: dt.datetime) -> int:
    """Successful orders since `since`."""
    n: int = await db.fetchval(RECENT_ORDERS, since)
    return n


async def recreate_demo_database(db: Executor) -> str:
    """Drop the demo database if it exists and create it empty; its name. Not in a transaction (PostgreSQL
    refuses CREATE DATABASE inside one), so run it on a plain connection."""
    await db.execute(DROP_DEMO_DATABASE)
    await db.execute(CREATE_DEMO_DATABASE)
    return DEMO_DATABASE

# The demo has no Stripe account, so it writes what Stripe would have settled itself: each paid order (and any
# refund since) converted to USD at the demo's fixed rates, less a card fee of `fee_rate` of it plus 30 ¢.
# Real stores get these columns from their balance transactions (bot/stripe/settle.py), never from here.
DEMO_SETTLE: Final = """
UPDATE orders AS o
   SET settled_amount = s.amount, settled_currency = 'USD', fee = s.fee, settled_refunded = s.refunded,
       net = s.amount - s.fee - s.refunded, balance_transaction = 'txn_demo_' || o.id, settled_at = $1,
       settled_refund_basis = o.amount_refunded, settled_disputes = 0
  FROM (SELECT x.id, round(x.amount_total * r.rate)::bigint AS amount,
               round(x.amount_total * r.rate * r.fee_rate)::bigint + 30 AS fee,
               round(x.amount_refunded * r.rate)::bigint AS refunded
          FROM orders AS x
          JOIN unnest($2::text[], $3::float8[], $4::float8[]) AS r (currency, rate, fee_rate)
            ON r.currency = x.currency
         WHERE x.payment_status IN ('completed', 'refunded')
           AND (x.settled_at IS NULL OR x.settled_refund_basis <> x.amount_refunded)) AS s
 WHERE o.id = s.id
"""


async def settle_demo_orders(db: Executor, *, at: dt.datetime, rates: dict[str, tuple[float, float]]) -> int:
    """Give the demo's paid orders settled USD figures: `rates` maps a currency to (USD minor units per minor
    unit, fee share); how many orders were settled."""
    codes = list(rates)
    status: str = await db.execute(DEMO_SETTLE, at, codes, [rates[c][0] for c in codes],
                                   [rates[c][1] for c in codes])
    return int(status.split()[-1])
