"""SQL for the webhook intake: webhook log, orders and their payment refs, failures, disputes, checkouts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from queries.executor import Executor

INSERT_WEBHOOK_LOG: Final = """
INSERT INTO webhook_logs (source, event_id, event_type, status, livemode, payload, event_created_at, via)
VALUES                   ($1,     $2,       $3,         $4,     $5,       $6,      $7,               $8)
ON CONFLICT (source, event_id) DO NOTHING
RETURNING id
"""

MARK_WEBHOOK_ERROR: Final = """
UPDATE webhook_logs
   SET status = 'error', last_error = $2, updated_at = now()
 WHERE id = $1
"""

# Serialise every event about the same payment: two event types for one payment arriving together must
# not both decide "no order yet". Locks are taken in key order, so two transactions cannot deadlock.
LOCK_REFS: Final = """
SELECT pg_advisory_xact_lock(k)
  FROM (SELECT DISTINCT hashtextextended(r, 0) AS k FROM unnest($1::text[]) AS r ORDER BY 1) AS keys
"""

FIND_ORDER_BY_REFS: Final = """
SELECT o.id, o.payment_status, o.status_at, o.amount_total, o.amount_refunded
  FROM payment_refs AS p
  JOIN orders AS o ON o.id = p.order_id
 WHERE p.ref = ANY($1::text[])
 ORDER BY array_position($1::text[], p.ref)
 LIMIT 1
"""

INSERT_ORDER: Final = """
INSERT INTO orders (id, payment_status, amount_total, currency, customer_email, customer_name,
                    product_name, affiliate_id, checkout_session_id, payment_intent_id, invoice_id,
                    charge_id, failure_reason, livemode, metadata, created_at, status_at)
VALUES             ($1, $2, $3, $4, $5, $6,
                    $7, $8, $9, $10, $11,
                    $12, $13, $14, $15, $16, $16)
"""

# Descriptive fields fill in what earlier events lacked; status moves only when the caller decided so.
UPDATE_ORDER: Final = """
UPDATE orders
   SET payment_status      = CASE WHEN $2::bool THEN $3::text ELSE payment_status END,
       status_at           = CASE WHEN $2::bool THEN $4::timestamptz ELSE status_at END,
       created_at          = CASE WHEN $2::bool AND $3::text = 'completed' THEN $4::timestamptz
                                  ELSE created_at END,
       failure_reason      = CASE WHEN $2::bool THEN $5::text ELSE failure_reason END,
       amount_total        = COALESCE($6, amount_total),
       currency            = COALESCE($7, currency),
       customer_email      = COALESCE(customer_email, $8),
       customer_name       = COALESCE(customer_name, $9),
       product_name        = COALESCE(product_name, $10),
       affiliate_id        = COALESCE(affiliate_id, $11),
       checkout_session_id = COALESCE(checkout_session_id, $12),
       payment_intent_id   = COALESCE(payment_intent_id, $13),
       invoice_id          = COALESCE(invoice_id, $14),
       charge_id           = COALESCE(charge_id, $15),
       metadata            = metadata || $16,
       updated_at          = now()
 WHERE id = $1
RETURNING customer_email, product_name, affiliate_id, amount_total, currency
"""

INSERT_REFS: Final = """
INSERT INTO payment_refs (ref, order_id)
SELECT r, $2 FROM unnest($1::text[]) AS r
ON CONFLICT (ref) DO NOTHING
"""

APPLY_REFUND: Final = """
UPDATE orders
   SET amount_refunded = GREATEST(amount_refunded, $2),
       refunded_at     = GREATEST(refunded_at, $3),
       payment_status  = CASE WHEN payment_status = 'completed' AND amount_total IS NOT NULL
                               AND GREATEST(amount_refunded, $2) >= amount_total
                              THEN 'refunded' ELSE payment_status END,
       updated_at      = now()
 WHERE id = $1
RETURNING amount_total, customer_email
"""

INSERT_FAILURE: Final = """
INSERT INTO payment_failures (event_id, order_id, amount, currency, customer_email, reason, created_at)
VALUES                       ($1,       $2,       $3,     $4,       $5,             $6,     $7)
ON CONFLICT (event_id) DO NOTHING
"""

INSERT_DISPUTE: Final = """
INSERT INTO disputes (id, order_id, charge_id, amount, currency, reason, status, created_at)
VALUES               ($1, $2,       $3,        $4,     $5,       $6,     $7,     $8)
ON CONFLICT (id) DO NOTHING
RETURNING id
"""

# How a checkout session already stored takes a newer observation: an older event never wins the status,
# the first completion time and email stay, amounts and metadata fill in. Shared with the batch intake.
MERGE_CHECKOUT: Final = """
ON CONFLICT (id) DO UPDATE
   SET status         = CASE WHEN EXCLUDED.status_at >= checkout_sessions.status_at
                             THEN EXCLUDED.status ELSE checkout_sessions.status END,
       completed_at   = COALESCE(checkout_sessions.completed_at, EXCLUDED.completed_at),
       status_at      = GREATEST(checkout_sessions.status_at, EXCLUDED.status_at),
       amount_total   = COALESCE(EXCLUDED.amount_total, checkout_sessions.amount_total),
       currency       = COALESCE(EXCLUDED.currency, checkout_sessions.currency),
       customer_email = COALESCE(checkout_sessions.customer_email, EXCLUDED.customer_email),
       metadata       = checkout_sessions.metadata || EXCLUDED.metadata,
       updated_at     = now()
"""

# Sessions start 'pending' in the guide's sense ("started, not finished").
UPSERT_CHECKOUT: Final = """
INSERT INTO checkout_sessions (id, status, amount_total, currency, customer_email, metadata,
                               created_at, completed_at, status_at)
VALUES                        ($1, $2::text, $3, $4, $5, $6,
                               $7, CASE WHEN $2::text = 'completed' THEN $8::timestamptz END, $8)
""" + MERGE_CHECKOUT


@dataclass(frozen=True, slots=True)
class OrderState:
    """What the intake needs to know about an existing order before changing it."""

    id: str
    payment_status: str
    status_at: dt.datetime
    amount_total: int | None
    amount_refunded: int


@dataclass(frozen=True, slots=True)
class OrderFields:
    """The descriptive columns of an order, as one event knows them."""

    amount_total: int | None
    currency: str | None
    customer_email: str | None
    customer_name: str | None
    product_name: str | None
    affiliate_id: str | None
    checkout_session_id: str | None
    payment_intent_id: str | None
    invoice_id: str | None
    charge_id: str | None
    livemode: bool
    metadata: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class OrderSummary:
    """An order's descriptive fields after an update merged them."""

    customer_email: str | None
    product_name: str | None
    affiliate_id: str | None
    amount_total: int | None
    currency: str | None


async def log_webhook(db: Executor, *, source: str, event_id: str, event_type: str, status: str,
                      livemode: bool, payload: Any, event_created_at: dt.datetime | None,
                      via: str = "webhook") -> int | None:
    """Record a received webhook; None when this event id was already recorded (a redelivery)."""
    row_id: int | None = await db.fetchval(INSERT_WEBHOOK_LOG, source, event_id, event_type, status,
                                           livemode, payload, event_created_at, via)
    return row_id


async def mark_webhook_error(db: Executor, *, log_id: int, error: str) -> None:
    """Flag a stored webhook whose processing failed, keeping its payload for a later replay."""
    await db.execute(MARK_WEBHOOK_ERROR, log_id, error[:2000])


async def lock_refs(db: Executor, refs: Sequence[str]) -> None:
    """Hold transaction-scoped locks on these payment refs until commit."""
    await db.execute(LOCK_REFS, list(refs))


async def find_order(db: Executor, refs: Sequence[str]) -> OrderState | None:
    """The order any of these refs already names, preferring the earliest ref."""
    row = await db.fetchrow(FIND_ORDER_BY_REFS, list(refs))
    return OrderState(**dict(row)) if row else None


async def insert_order(db: Executor, *, order_id: str, status: str, fields: OrderFields,
                       failure_reason: str | None, at: dt.datetime) -> None:
    """Create an order in `status` as of `at`."""
    f = fields
    await db.execute(INSERT_ORDER, order_id, status, f.amount_total, f.currency, f.customer_email,
                     f.customer_name, f.product_name, f.affiliate_id, f.checkout_session_id,
                     f.payment_intent_id, f.invoice_id, f.charge_id, failure_reason, f.livemode,
                     dict(f.metadata), at)


async def update_order(db: Executor, *, order_id: str, move_status: bool, status: str, at: dt.datetime,
                       failure_reason: str | None, fields: OrderFields) -> OrderSummary:
    """Merge an event's fields into an order, moving its status only when `move_status`."""
    f = fields
    row = await db.fetchrow(UPDATE_ORDER, order_id, move_status, status, at, failure_reason,
                            f.amount_total, f.currency, f.customer_email, f.customer_name,
                            f.product_name, f.affiliate_id, f.checkout_session_id, f.payment_intent_id,
                            f.invoice_id, f.charge_id, dict(f.metadata))
    return OrderSummary(**dict(row))


async def add_refs(db: Executor, *, order_id: str, refs: Sequence[str]) -> None:
    """Remember that these refs name `order_id` (refs already taken keep their order)."""
    await db.execute(INSERT_REFS, list(refs), order_id)


async def apply_refund(db: Executor, *, order_id: str, amount_refunded: int,
                       at: dt.datetime) -> tuple[int | None, str | None]:
    """Raise an order's cumulative refund; a full refund marks it refunded. Returns (total, email)."""
    row = await db.fetchrow(APPLY_REFUND, order_id, amount_refunded, at)
    return (row["amount_total"], row["customer_email"]) if row else (None, None)


async def insert_failure(db: Executor, *, event_id: str, order_id: str | None, amount: int | None,
                         currency: str | None, customer_email: str | None, reason: str | None,
                         at: dt.datetime) -> None:
    """Record one failed payment attempt."""
    await db.execute(INSERT_FAILURE, event_id, order_id, amount, currency, customer_email, reason, at)


async def insert_dispute(db: Executor, *, dispute_id: str, order_id: str | None, charge_id: str | None,
                         amount: int | None, currency: str | None, reason: str | None,
                         status: str | None, at: dt.datetime) -> bool:
    """Record an opened dispute; False when it was already recorded."""
    return await db.fetchval(INSERT_DISPUTE, dispute_id, order_id, charge_id, amount, currency, reason,
                             status, at) is not None


async def upsert_checkout(db: Executor, *, session_id: str, status: str, amount_total: int | None,
                          currency: str | None, customer_email: str | None, metadata: Mapping[str, str],
                          created_at: dt.datetime, at: dt.datetime) -> None:
    """Create or move a checkout session; an event older than the stored state never wins."""
    await db.execute(UPSERT_CHECKOUT, session_id, status, amount_total, currency, customer_email,
                     dict(metadata), created_at, at)
