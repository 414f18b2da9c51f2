"""SQL for the intake: one set-based statement per table for a whole batch of events, and the rows they carry."""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from queries.executor import Executor
from queries.instants import micros
from queries.rows import CHECKOUTS, DISPUTES, FAILURES, MESSAGES, ORDERS, REFS, RowShape, json_rows

# Serialise every event about the same payment: two event types for one payment arriving together must
# not both decide "no order yet". Locks are taken in key order, so two transactions cannot deadlock.
LOCK_REFS: Final = """
SELECT pg_advisory_xact_lock(k)
  FROM (SELECT DISTINCT hashtextextended(r, 0) AS k FROM unnest($1::text[]) AS r ORDER BY 1) AS keys
"""

# Row locks in id order: two batches touching the same orders queue up instead of deadlocking. Each ref is looked
# up through its index whatever the statistics say: planned as `ref = ANY($1)`, a new database (before its first
# autoanalyze) read every ref and every order instead — 4 ms for a batch of 200 new refs over 60,000 stored, 18 ms
# when they named stored orders, against 0.4 and 1.5 ms this way (and the same once analysed).
ORDERS_BY_REFS: Final = """
WITH found AS MATERIALIZED (
SELECT r.ref, p.order_id
  FROM unnest($1::text[]) AS r(ref)
 CROSS JOIN LATERAL (SELECT order_id FROM payment_refs WHERE payment_refs.ref = r.ref LIMIT 1) AS p
)
SELECT f.ref, o.id, o.payment_status, o.amount_total, o.amount_refunded, o.currency, o.customer_email,
       o.customer_name, o.product_name, o.affiliate_id, o.checkout_session_id, o.payment_intent_id,
       o.invoice_id, o.charge_id, o.failure_reason, o.livemode, o.metadata, o.created_at, o.refunded_at,
       o.status_at, o.refund_ledger
  FROM orders AS o
  JOIN found AS f ON f.order_id = o.id
 WHERE o.id = ANY (ARRAY(SELECT order_id FROM found))
 ORDER BY o.id
   FOR UPDATE OF o
"""

# The columns the fold reads and writes, in `orders` order. Rows travel as JSON (queries/rows.py), one parameter
# per table.
ORDER_COLUMNS: Final = ORDERS.names
_ORDER_FIELDS: Final = operator.attrgetter(*ORDER_COLUMNS)
_ORDER_TIMES: Final = ORDERS.positions("micros")

INSERT_ORDERS: Final = ORDERS.insert("$1")

UPDATE_ORDERS: Final = """
UPDATE orders AS o
   SET payment_status = v.payment_status, amount_total = v.amount_total, amount_refunded = v.amount_refunded,
       currency = v.currency, customer_email = v.customer_email, customer_name = v.customer_name,
       product_name = v.product_name, affiliate_id = v.affiliate_id, checkout_session_id = v.checkout_session_id,
       payment_intent_id = v.payment_intent_id, invoice_id = v.invoice_id, charge_id = v.charge_id,
       failure_reason = v.failure_reason, metadata = v.metadata, created_at = v.created_at,
       refunded_at = v.refunded_at, status_at = v.status_at, refund_ledger = v.refund_ledger, updated_at = now()
  FROM (""" + ORDERS.select("$1") + """) AS v
 WHERE o.id = v.id
"""

# A dispute stored before its sale is linked by the statement that gives one of its refs an order (its first such
# ref's; bot/intake/disputes.py `linked` within a batch), through the index of unlinked disputes only (0038).
LINK_DISPUTES: Final = """
UPDATE disputes AS d
   SET order_id = (SELECT n.order_id FROM new_refs AS n WHERE d.refs ? n.ref ORDER BY n.ref COLLATE "C" LIMIT 1)
 WHERE d.order_id IS NULL AND d.refs ?| ARRAY(SELECT ref FROM new_refs)
"""
NEW_REFS: Final = REFS.insert("{param}") + "\nON CONFLICT (ref) DO NOTHING\nRETURNING ref, order_id"
INSERT_REFS: Final = f"WITH new_refs AS ({NEW_REFS.format(param='$1')}\n){LINK_DISPUTES}"

# How a checkout session already stored takes the batch's net observation: an older event never wins the
# status, the first completion time and email stay, amounts and metadata fill in. One rule, shared by
# UPSERT_CHECKOUTS and queries/intake_new.py's one-statement batch.
CHECKOUT_MERGE: Final = """
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
CHECKOUT_COLUMNS: Final = CHECKOUTS.names
UPSERT_CHECKOUTS: Final = CHECKOUTS.insert("$1") + CHECKOUT_MERGE

# Checkout sessions still open, listed from the Stripe API (bot/stripe/open_checkouts.py): only those nothing has
# told of yet; whatever is stored (an event's, an earlier listing's) stays as it is.
ADD_OPEN_CHECKOUTS: Final = CHECKOUTS.insert("$1") + """
ON CONFLICT (id) DO NOTHING
RETURNING id
"""

# One failed attempt, one row (bot/intake/failures.py): a failure of an order already failed within
# ATTEMPT_WINDOW is another event of the same attempt when both name the same charge, or when one names none
# and the two are events of different types (SAME_ATTEMPT: f stored, v the batch's). The batch's own rows are one per
# attempt already; the ids of the rows written come back, for their pings.
ATTEMPT_WINDOW: Final = dt.timedelta(seconds=60)  # one attempt's events, a second or two apart in practice
ATTEMPT_INTERVAL: Final = f"interval '{ATTEMPT_WINDOW.seconds} seconds'"  # the same, in SQL
SAME_ATTEMPT: Final = f"""f.order_id = v.order_id
  AND f.created_at BETWEEN v.created_at - {ATTEMPT_INTERVAL} AND v.created_at + {ATTEMPT_INTERVAL}
  AND (f.charge_id = v.charge_id
       OR ((f.charge_id IS NULL OR v.charge_id IS NULL) AND f.event_type IS DISTINCT FROM v.event_type))"""
INSERT_FAILURES: Final = f"""
INSERT INTO payment_failures ({", ".join(FAILURES.names)})
SELECT * FROM ({FAILURES.select("$1")}) AS v
 WHERE NOT EXISTS (SELECT FROM payment_failures AS f WHERE {SAME_ATTEMPT})
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
"""

# A dispute's row as the fold leaves it: the opening time, and the time of the event its status comes from.
# Its refs (a JSON array of ids, sorted) find it for a sale that comes later (LINK_DISPUTES).
DISPUTE_ROWS: Final = RowShape("disputes", (*DISPUTES.columns, ("status_at", "micros"), ("refs", "jsonb")))
# Stripe retries, so a dispute's events arrive in any order (charge.dispute.closed before the .created it follows):
# each is the dispute as of its time. The newer status wins — at the same second a decided one (won, lost,
# warning_closed; bot/intake/disputes.py DECIDED) over an open one — whichever came first; a NULL status_at (migration
# 0033) reads as created_at. The opening time is the earliest seen, and what one event lacked another fills in.
_NEWER_DISPUTE: Final = """EXCLUDED.status IS NOT NULL AND (disputes.status IS NULL
                             OR (EXCLUDED.status_at, EXCLUDED.status IN ('won', 'lost', 'warning_closed'))
                              > (coalesce(disputes.status_at, disputes.created_at),
                                 disputes.status IN ('won', 'lost', 'warning_closed')))"""
UPSERT_DISPUTES: Final = DISPUTE_ROWS.insert("$1") + f"""
ON CONFLICT (id) DO UPDATE
   SET status     = CASE WHEN {_NEWER_DISPUTE} THEN EXCLUDED.status ELSE disputes.status END,
       status_at  = CASE WHEN {_NEWER_DISPUTE} THEN EXCLUDED.status_at
                         ELSE coalesce(disputes.status_at, disputes.created_at) END,
       order_id   = coalesce(disputes.order_id, EXCLUDED.order_id),
       charge_id  = coalesce(disputes.charge_id, EXCLUDED.charge_id),
       amount     = coalesce(disputes.amount, EXCLUDED.amount),
       currency   = coalesce(disputes.currency, EXCLUDED.currency),
       reason     = coalesce(disputes.reason, EXCLUDED.reason),
       created_at = least(disputes.created_at, EXCLUDED.created_at),
       refs       = (SELECT jsonb_agg(r ORDER BY r COLLATE "C")
                       FROM (SELECT DISTINCT jsonb_array_elements_text(coalesce(disputes.refs, '[]')
                                                                       || coalesce(EXCLUDED.refs, '[]')) AS r) AS u)
"""

ENQUEUE: Final = MESSAGES.insert("$1") + """
ON CONFLICT (dedupe_key) DO NOTHING
RETURNING dedupe_key
"""


# Mutable on purpose: the fold changes these rows in memory, event after event, before one write-back.
@dataclass
class OrderRow:
    """An order as stored, changed in memory by the batch's events."""

    id: str
    payment_status: str
    status_at: dt.datetime
    created_at: dt.datetime
    amount_total: int | None = None
    amount_refunded: int = 0
    currency: str | None = None
    customer_email: str | None = None
    customer_name: str | None = None
    product_name: str | None = None
    affiliate_id: str | None = None
    checkout_session_id: str | None = None
    payment_intent_id: str | None = None
    invoice_id: str | None = None
    charge_id: str | None = None
    failure_reason: str | None = None
    livemode: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    refunded_at: dt.datetime | None = None
    # What Stripe said of its refunds (migration 0037), from which bot/intake/refunds.py derives amount_refunded,
    # refunded_at and the 'refunded' status. Replaced, never changed in place: `stored` holds the row as read.
    refund_ledger: dict[str, Any] = field(default_factory=dict)
    is_new: bool = False
    dirty: bool = False  # touched by the batch's events (see changed())
    stored: tuple[Any, ...] | None = None  # its ORDER_COLUMNS values as read from the table

    def changed(self) -> bool:
        """Whether the batch must write it: new, or touched into something other than it was. An event that
        teaches nothing new (a charge.succeeded after its PaymentIntent, a redelivered status) writes no new row
        version, and fires no rollup trigger."""
        return self.is_new or (self.dirty and _ORDER_FIELDS(self) != self.stored)


@dataclass
class CheckoutRow:
    """The batch's net change to one checkout session (merged with the stored row by the upsert)."""

    id: str
    status: str
    amount_total: int | None
    currency: str | None
    customer_email: str | None
    metadata: dict[str, Any]
    created_at: dt.datetime
    completed_at: dt.datetime | None
    status_at: dt.datetime


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """An outbox row to insert, and the index of the event that caused it."""

    event_index: int
    dedupe_key: str
    channel: str
    kind: str
    payload: dict[str, Any]
    amount: int | None = None
    currency: str | None = None
    delay: float = 0.0  # seconds before it may be sent


async def lock_refs(db: Executor, refs: Sequence[str]) -> None:
    """Hold transaction-scoped locks on these payment refs until commit."""
    await db.execute(LOCK_REFS, list(refs))


async def orders_by_refs(db: Executor, refs: Iterable[str]) -> list[tuple[str, OrderRow]]:
    """(ref, order) for every stored order these refs name, row-locked until commit."""
    found = []
    for r in await db.fetch(ORDERS_BY_REFS, sorted(set(refs))):
        values = tuple(r[name] for name in ORDER_COLUMNS)
        found.append((r["ref"], OrderRow(**dict(zip(ORDER_COLUMNS, values, strict=True)), stored=values)))
    return found


def order_values(o: OrderRow) -> tuple[Any, ...]:
    """An order's ORDER_COLUMNS values for json_rows(): its metadata the dict, its times micros()."""
    values = list(_ORDER_FIELDS(o))
    for i in _ORDER_TIMES:
        values[i] = micros(values[i])
    return tuple(values)


async def write_orders(db: Executor, orders: Iterable[OrderRow]) -> None:
    """Insert the batch's new orders and write back the changed ones."""
    orders = list(orders)
    new = [order_values(o) for o in orders if o.is_new]
    changed = [order_values(o) for o in orders if not o.is_new and o.changed()]
    if new:
        await db.execute(INSERT_ORDERS, json_rows(new))
    if changed:
        await db.execute(UPDATE_ORDERS, json_rows(changed))


def checkout_values(rows: Iterable[CheckoutRow]) -> list[tuple[Any, ...]]:
    """UPSERT_CHECKOUTS rows for json_rows(): the metadata the dict, the times micros()."""
    return [(c.id, c.status, c.amount_total, c.currency, c.customer_email, c.metadata, micros(c.created_at),
             micros(c.completed_at), micros(c.status_at)) for c in rows]


def message_values(messages: Sequence[QueuedMessage]) -> list[tuple[Any, ...]]:
    """ENQUEUE rows for json_rows(): the payload the dict."""
    return [(m.dedupe_key, m.channel, m.kind, m.payload, m.amount, m.currency, m.delay) for m in messages]


async def add_refs(db: Executor, pairs: Sequence[tuple[str, str]]) -> None:
    """(ref, order id) pairs; refs already taken keep their order."""
    if pairs:
        await db.execute(INSERT_REFS, json_rows(pairs))


async def upsert_checkouts(db: Executor, rows: Iterable[CheckoutRow]) -> None:
    """Merge the batch's checkout changes into the stored sessions."""
    values = checkout_values(rows)
    if values:
        await db.execute(UPSERT_CHECKOUTS, json_rows(values))


async def add_open_checkouts(db: Executor, rows: Iterable[CheckoutRow]) -> int:
    """Open checkout sessions not stored yet, as pending; how many were added."""
    values = checkout_values(rows)
    return len(await db.fetch(ADD_OPEN_CHECKOUTS, json_rows(values))) if values else 0


async def insert_failures(db: Executor, rows: Sequence[tuple[Any, ...]]) -> set[str]:
    """Failed payment attempts, (event id, order id, amount, currency, email, reason, at, charge id, event type),
    each unless its attempt is recorded already; the event ids written."""
    if not rows:
        return set()
    return {r["event_id"] for r in await db.fetch(INSERT_FAILURES, FAILURES.json(rows))}


async def upsert_disputes(db: Executor, rows: Sequence[tuple[Any, ...]]) -> None:
    """Disputes as the batch's events tell them, merged with the stored rows (the newer status wins):
    (id, order id, charge id, amount, currency, reason, status, opened at, status at, refs)."""
    if rows:
        await db.execute(UPSERT_DISPUTES, DISPUTE_ROWS.json(rows))


async def enqueue(db: Executor, messages: Sequence[QueuedMessage]) -> set[str]:
    """Queue the batch's messages once per dedupe key; return the keys actually queued."""
    if not messages:
        return set()
    return {r["dedupe_key"] for r in await db.fetch(ENQUEUE, json_rows(message_values(messages)))}
