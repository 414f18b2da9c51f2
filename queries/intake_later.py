"""SQL for what an event tells a row an earlier batch stored: a failed attempt's reason that comes after its first
event, a checkout session paid by a later capture of its order, and a failed refund's ping told what its order
learnt after it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from queries.declines import ToldFailure
from queries.executor import Executor
from queries.intake import SAME_ATTEMPT
from queries.outbox import HELD, UNTRIED
from queries.rows import FAILURES

# Failures recorded by earlier batches with Stripe's generic wording ($2: checkout.session.async_payment_failed's,
# bot/intake/failures.py), told the bank's reason by another event of the same attempt in this batch ($1, rows of
# the batch that say why); each comes back with what its ping shows.
TELL_ATTEMPTS: Final = f"""
UPDATE payment_failures AS f SET reason = v.reason
  FROM ({FAILURES.select("$1")}) AS v
 WHERE f.reason = $2 AND f.event_id <> v.event_id AND {SAME_ATTEMPT}
RETURNING f.event_id, f.amount, f.currency, f.customer_email, f.reason, f.created_at,
          (SELECT o.product_name FROM orders AS o WHERE o.id = f.order_id) AS product
"""  # noqa: S608  # constant SQL fragments spliced in, never a value (values are $n)

# The pending checkout sessions of these orders ($1), paid in this batch (bot/intake/paid_checkouts.py), completed
# at the time the order was; the rollup triggers on checkout_sessions move each from started to completed once.
COMPLETE_CHECKOUTS: Final = """
UPDATE checkout_sessions AS c
   SET status = 'completed', completed_at = coalesce(c.completed_at, o.created_at),
       status_at = greatest(c.status_at, o.created_at), updated_at = now()
  FROM orders AS o
 WHERE o.id = ANY($1::text[]) AND o.payment_status IN ('completed', 'refunded')
   AND c.id = o.checkout_session_id AND c.status = 'pending'
"""

# The posted pings of failed or canceled refunds ($1: their keys), locked as queries/declines.py PINGS locks a
# failure's: `untried`, its text may still change; `held`, nobody can be sending it either.
VOID_PINGS: Final = f"""
SELECT o.id, o.dedupe_key, o.payload, {UNTRIED} AS untried, {HELD} AS held
  FROM outbox AS o
 WHERE o.dedupe_key = ANY($1::text[]) AND o.op = 'post'
 ORDER BY o.id
   FOR NO KEY UPDATE OF o
"""  # noqa: S608  # constant SQL fragments spliced in, never a value (values are $n)


@dataclass(frozen=True, slots=True)
class VoidPing:
    """A failed refund's ping in the outbox, as queries/declines.py Ping, with what it says (`payload`)."""

    id: int
    dedupe_key: str
    payload: dict[str, Any]
    untried: bool
    held: bool


async def void_pings(db: Executor, keys: Sequence[str]) -> list[VoidPing]:
    """The outbox posts of these keys, locked until commit."""
    return [VoidPing(**dict(r)) for r in await db.fetch(VOID_PINGS, list(keys))] if keys else []


async def tell_attempts(db: Executor, rows: Sequence[tuple[Any, ...]], *, untold: str) -> list[ToldFailure]:
    """Give recorded failures whose reason is `untold` the reason of a failure row (queries.rows.FAILURES) of the
    same attempt."""
    if not rows:
        return []
    return [ToldFailure(**dict(r)) for r in await db.fetch(TELL_ATTEMPTS, FAILURES.json(rows), untold)]


async def complete_checkouts(db: Executor, order_ids: Sequence[str]) -> None:
    """Complete the pending checkout sessions of these paid orders."""
    if order_ids:
        await db.execute(COMPLETE_CHECKOUTS, list(order_ids))
