"""SQL the demo runs against the embedded server itself: a fresh, empty database for each demo."""

from __future__ import annotations

import datetime as dt
from typing import Final

from queries.executor import Executor

DEMO_DATABASE: Final = "salespulse_demo"
# WITH (FORCE): a demo killed a moment ago may still have sessions open on it.
DROP_DEMO_DATABASE: Final = "DROP DATABASE IF EXISTS salespulse_demo WITH (FORCE)"
CREATE_DEMO_DATABASE: Final = "CREATE DATABASE salespulse_demo"


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
