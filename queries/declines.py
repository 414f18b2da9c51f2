"""SQL for the reason an invoice's payment failed, which only its PaymentIntent's event tells (bot/intake/declines.py):
the reasons kept, an invoice failure's look-up of its own, and a recorded failure's reason filled in afterwards."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from queries.executor import Executor
from queries.instants import micros
from queries.intake import ATTEMPT_INTERVAL
from queries.outbox import HELD, UNTRIED
from queries.rows import DECLINES, json_rows

# A decline is an invoice failure's (d, f) when its PaymentIntent named the invoice (before basil), or, from basil on
# where neither names the other, when it is the same customer's, for the same amount, within ATTEMPT_WINDOW.
# The window is stated from both sides, so an index on either side's created_at serves it.
_SAME_ATTEMPT: Final = f"""
d.created_at BETWEEN f.created_at - {ATTEMPT_INTERVAL} AND f.created_at + {ATTEMPT_INTERVAL}
AND f.created_at BETWEEN d.created_at - {ATTEMPT_INTERVAL} AND d.created_at + {ATTEMPT_INTERVAL}
AND (d.invoice_id = f.invoice_id
     OR (d.invoice_id IS NULL AND d.customer_id = f.customer_id AND d.amount = f.amount
         AND d.currency = f.currency))"""

# The batch's declines kept; those past any use (received over two days ago) go, a few at a time, as new ones come.
KEEP: Final = f"""
WITH gone AS (
DELETE FROM attempt_declines
 WHERE event_id IN (SELECT event_id FROM attempt_declines WHERE kept_at < now() - interval '2 days' LIMIT 100)
){DECLINES.insert("$1")}
ON CONFLICT (event_id) DO NOTHING
"""

# For each invoice failure of the batch ($1: event id, invoice id, customer id, amount, currency, at), the reason
# of its decline, kept by this batch or an earlier one; the nearest in time when several could be.
REASONS: Final = f"""
SELECT f.event_id,
       (SELECT d.reason FROM attempt_declines AS d
         WHERE {_SAME_ATTEMPT}
         ORDER BY abs(extract(epoch FROM d.created_at - f.created_at)), d.event_id LIMIT 1) AS reason
  FROM (SELECT e->>0 AS event_id, e->>1 AS invoice_id, e->>2 AS customer_id, (e->>3)::bigint AS amount,
               e->>4 AS currency, micros_at((e->>5)::bigint) AS created_at
          FROM jsonb_array_elements($1::text::jsonb) AS e) AS f
"""

# Invoice failures recorded by earlier batches without a reason ($2: the wording the intake gives them), told the
# reason of a decline of this batch ($1), Stripe's " (attempt N)" after it kept; each comes back with what its
# ping shows. (bot/intake/declines.py told() is the same rule for a failure told before it is recorded.)
TELL: Final = f"""
UPDATE payment_failures AS f SET reason = d.reason || substr(f.reason, length($2) + 1)
  FROM ({DECLINES.select("$1")}) AS d
 WHERE f.event_type = 'invoice.payment_failed' AND starts_with(f.reason, $2)
   AND {_SAME_ATTEMPT}
RETURNING f.event_id, f.amount, f.currency, f.customer_email, f.reason, f.created_at,
          (SELECT o.product_name FROM orders AS o WHERE o.id = f.order_id) AS product
"""

# The pings of those failures: `untried` (outbox.UNTRIED), its text may still change; `held` (outbox.HELD), nobody
# can be sending it either.
PINGS: Final = f"""
SELECT o.id, o.dedupe_key, {UNTRIED} AS untried, {HELD} AS held
  FROM outbox AS o
 WHERE o.dedupe_key = ANY($1::text[])
   FOR NO KEY UPDATE OF o  -- not a key change: a worker recording its attempt (FOR KEY SHARE) goes on
"""
# A ping still waiting is rewritten and released (it waited for this reason).
REWRITE: Final = "UPDATE outbox SET payload = $2::text::jsonb, available_at = least(available_at, now()) WHERE id = $1"


@dataclass(frozen=True, slots=True)
class ToldFailure:
    """A recorded invoice failure that has just been told its reason: what its ping shows."""

    event_id: str
    amount: int | None
    currency: str | None
    customer_email: str | None
    reason: str
    created_at: dt.datetime
    product: str | None


@dataclass(frozen=True, slots=True)
class Ping:
    """A failure's ping in the outbox: `untried`, its text may still be changed; `held`, nobody can be sending it."""

    id: int
    dedupe_key: str
    untried: bool
    held: bool


async def keep(db: Executor, rows: Sequence[tuple[Any, ...]]) -> None:
    """Keep declines: (event id, invoice id, customer id, amount, currency, reason, at)."""
    if rows:
        await db.execute(KEEP, DECLINES.json(rows))


async def reasons(db: Executor, failures: Sequence[tuple[Any, ...]]) -> dict[str, str]:
    """event id → the kept decline's reason, for the invoice failures (event id, invoice id, customer id, amount,
    currency, at) that have one."""
    if not failures:
        return {}
    args = json_rows([(*f[:5], micros(f[5])) for f in failures])
    return {r["event_id"]: r["reason"] for r in await db.fetch(REASONS, args) if r["reason"] is not None}


async def tell(db: Executor, declines: Sequence[tuple[Any, ...]], *, untold: str) -> list[ToldFailure]:
    """Give recorded invoice failures whose reason starts with `untold` the reason of their decline."""
    if not declines:
        return []
    return [ToldFailure(**dict(r)) for r in await db.fetch(TELL, DECLINES.json(declines), untold)]


async def pings(db: Executor, keys: Sequence[str]) -> list[Ping]:
    """The outbox rows of these keys, locked until commit."""
    return [Ping(**dict(r)) for r in await db.fetch(PINGS, list(keys))] if keys else []


async def rewrite(db: Executor, ping_id: int, payload: str) -> None:
    """Replace a waiting ping's message (JSON text) and let it go."""
    await db.execute(REWRITE, ping_id, payload)
