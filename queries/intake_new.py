"""SQL for the intake in fewer round trips: the batch logged and its payments locked at once; the common batch's
new orders, their refs, checkouts and messages written in one statement."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from queries.executor import Executor
from queries.intake import (
    CHECKOUT_MERGE,
    CheckoutRow,
    LogRow,
    OrderRow,
    QueuedMessage,
    checkout_values,
    columns,
    message_values,
    order_values,
)

# The received events logged (new ones returned) after LOCK_REFS ($10: the payment refs of the batch's events),
# in one round trip: the locks are taken first (a one-time filter), in key order, and held until commit; the
# orders are read after, by the next statement, so no other batch's order of the same payment can be missed.
LOG_AND_LOCK: Final = """
WITH locked AS (
SELECT count(*) AS n
  FROM (SELECT pg_advisory_xact_lock(k)
          FROM (SELECT DISTINCT hashtextextended(r, 0) AS k FROM unnest($10::text[]) AS r ORDER BY 1) AS keys) AS l
)
INSERT INTO webhook_logs (source, event_id, event_type, status, last_error, livemode, payload, event_created_at, via)
SELECT s, e, t, st, le, l, p::jsonb, c, w
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bool[], $7::timestamptz[],
              $8::text[], $9::text[])
       AS v(s, e, t, st, p, l, c, w, le)
 WHERE (SELECT n FROM locked) >= 0
ON CONFLICT (source, event_id) DO NOTHING
RETURNING source, event_id
"""

# The common batch — new orders only, no merge — in one round trip instead of four: its orders, their refs,
# checkouts and messages, as INSERT_ORDERS, INSERT_REFS, UPSERT_CHECKOUTS and ENQUEUE would write them one after
# the other (the refs' foreign keys are checked at the end of the statement, when the orders exist).
WRITE_NEW: Final = """
WITH new_orders AS (
INSERT INTO orders (id, payment_status, amount_total, amount_refunded, currency, customer_email, customer_name,
                    product_name, affiliate_id, checkout_session_id, payment_intent_id, invoice_id, charge_id,
                    failure_reason, livemode, metadata, created_at, refunded_at, status_at)
SELECT id, payment_status, amount_total, amount_refunded, currency, customer_email, customer_name, product_name,
       affiliate_id, checkout_session_id, payment_intent_id, invoice_id, charge_id, failure_reason, livemode,
       metadata::jsonb, created_at, refunded_at, status_at
  FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[],
              $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],
              $14::text[], $15::bool[], $16::text[], $17::timestamptz[], $18::timestamptz[],
              $19::timestamptz[])
       AS v(id, payment_status, amount_total, amount_refunded, currency, customer_email, customer_name,
            product_name, affiliate_id, checkout_session_id, payment_intent_id, invoice_id, charge_id,
            failure_reason, livemode, metadata, created_at, refunded_at, status_at)
), new_refs AS (
INSERT INTO payment_refs (ref, order_id)
SELECT * FROM unnest($20::text[], $21::text[])
ON CONFLICT (ref) DO NOTHING
), checkouts AS (
INSERT INTO checkout_sessions (id, status, amount_total, currency, customer_email, metadata,
                               created_at, completed_at, status_at)
SELECT id, status, amount_total, currency, customer_email, metadata::jsonb, created_at, completed_at, status_at
  FROM unnest($22::text[], $23::text[], $24::bigint[], $25::text[], $26::text[], $27::text[],
              $28::timestamptz[], $29::timestamptz[], $30::timestamptz[])
       AS v(id, status, amount_total, currency, customer_email, metadata, created_at, completed_at, status_at)
{checkout_merge})
INSERT INTO outbox (dedupe_key, channel, kind, payload, amount, currency, available_at)
SELECT k, ch, kd, p::jsonb, a, c, now() + make_interval(secs => d)
  FROM unnest($31::text[], $32::text[], $33::text[], $34::text[], $35::bigint[], $36::text[], $37::float8[])
       AS v(k, ch, kd, p, a, c, d)
ON CONFLICT (dedupe_key) DO NOTHING
RETURNING dedupe_key
""".replace("{checkout_merge}", CHECKOUT_MERGE.strip("\n"))


async def write_new(db: Executor, orders: Sequence[OrderRow], pairs: Sequence[tuple[str, str]],
                    checkouts: Sequence[CheckoutRow], messages: Sequence[QueuedMessage]) -> set[str]:
    """New orders, their refs, checkouts and messages in one statement (each list non-empty, every order new);
    returns the message keys actually queued, as enqueue() does."""
    args = [*columns([order_values(o) for o in orders]), *columns(pairs),
               *columns(checkout_values(checkouts)), *columns(message_values(messages))]
    return {r["dedupe_key"] for r in await db.fetch(WRITE_NEW, *args)}


async def log_and_lock(db: Executor, rows: Sequence[LogRow], refs: Sequence[str]) -> set[tuple[str, str]]:
    """Lock these payment refs until commit, then record the received events (each body stored as received, the
    raw JSON text: no decode/encode round trip); return the (source, event_id) keys that were new."""
    values = [(r.source, r.event_id, r.event_type, r.status, r.body, r.livemode, r.event_created_at, r.via,
               r.last_error) for r in rows]
    return {(r["source"], r["event_id"]) for r in await db.fetch(LOG_AND_LOCK, *columns(values), sorted(set(refs)))}
