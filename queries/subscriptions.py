"""SQL for the subscription intake: one snapshot per Stripe event, each subscription's newest state, quiet renewals.

Snapshots are keyed by the Stripe event id (a redelivery adds nothing) and read in event time, never arrival
order; the state row only ever moves to a newer event (at, rank, seq, event id: seq orders one second's events,
migration 0053), so a late older event changes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import astuple, dataclass
from typing import Any, Final

from queries.executor import Executor
from queries.outbox import HELD, UNTRIED
from queries.sales import CurrencyTotal

INSERT_SNAPSHOTS: Final = """
INSERT INTO subscription_events (event_id, subscription_id, at, rank, status, mrr_units, currency, plan,
                                 before_mrr_units, pricing, before_pricing, discounts)
SELECT e, s, a, r, st, m, c, p, b, pr::jsonb, bp::jsonb, d
  FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::smallint[], $5::text[], $6::bigint[], $7::text[],
              $8::text[], $9::bigint[], $10::text[], $11::text[], $12::text[])
       AS v (e, s, a, r, st, m, c, p, b, pr, bp, d)
ON CONFLICT (event_id) DO NOTHING
"""

# Row comparison (at, rank, seq, event id): the state moves forward only.
UPSERT_STATES: Final = """
INSERT INTO subscriptions (id, customer, status, mrr_units, currency, plan, cancel_at_period_end, cancel_at,
                           current_period_end, started_at, canceled_at, ended_at, livemode, last_event_id,
                           last_event_at, last_event_rank, last_event_seq)
SELECT *
  FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::bool[],
              $8::timestamptz[], $9::timestamptz[], $10::timestamptz[], $11::timestamptz[], $12::timestamptz[],
              $13::bool[], $14::text[], $15::timestamptz[], $16::smallint[], $17::smallint[])
ON CONFLICT (id) DO UPDATE
   SET customer = coalesce(EXCLUDED.customer, subscriptions.customer), status = EXCLUDED.status,
       mrr_units = EXCLUDED.mrr_units, currency = EXCLUDED.currency,
       plan = coalesce(EXCLUDED.plan, subscriptions.plan),
       cancel_at_period_end = EXCLUDED.cancel_at_period_end, cancel_at = EXCLUDED.cancel_at,
       current_period_end = EXCLUDED.current_period_end,
       started_at = coalesce(subscriptions.started_at, EXCLUDED.started_at),
       canceled_at = EXCLUDED.canceled_at, ended_at = EXCLUDED.ended_at, last_event_id = EXCLUDED.last_event_id,
       last_event_at = EXCLUDED.last_event_at, last_event_rank = EXCLUDED.last_event_rank,
       last_event_seq = EXCLUDED.last_event_seq, updated_at = now()
 WHERE (EXCLUDED.last_event_at, EXCLUDED.last_event_rank, EXCLUDED.last_event_seq, EXCLUDED.last_event_id)
     > (subscriptions.last_event_at, subscriptions.last_event_rank, subscriptions.last_event_seq,
        subscriptions.last_event_id)
"""

# Renewal sale pings not yet tried: report mode drops them (the daily report counts the money), coalesce mode
# holds them to the slot's end so the worker's burst summary sends the slot's renewals as one message.
REMEMBER_RENEWALS: Final = """
INSERT INTO renewal_invoices (invoice_id) SELECT unnest($1::text[]) ON CONFLICT (invoice_id) DO NOTHING
"""
# Renewals paid in [$1, $2) per currency: the morning report's line when SUBSCRIPTION_RENEWALS=report pings none.
# Counted as every other revenue figure is (queries/sales.py): completed orders at their amount, so a renewal
# refunded in full leaves it (shown under refunds) and a partly refunded one stays whole.
RENEWAL_TOTALS: Final = """
SELECT coalesce(o.currency, '') AS currency, count(*) AS orders, coalesce(sum(o.amount_total), 0) AS revenue
  FROM renewal_invoices AS r
  JOIN orders AS o ON o.invoice_id = r.invoice_id
 WHERE o.payment_status = 'completed' AND o.created_at >= $1 AND o.created_at < $2
 GROUP BY 1
 ORDER BY 1
"""

# Where each snapshot's movement starts, as the MRR summary reads it (queries/mrr.py): its predecessor's MRR, else
# what its event said came before. A churn's start is what the ledger counts as lost. Also whether it had paid
# before (`paid_before`: reactivation rather than new, its customer's other subscriptions included, 0043), whether
# the subscription itself had (`own_paid`), and the stretch of paying it is in: the latest snapshot before it
# where the subscription came back to paying after having paid (None: its first stretch); and whether its customer
# paid on another subscription just before it (`others_paying`, 0053: a subscription added or ended, no subscriber
# coming or going).
MOVEMENTS: Final = """
SELECT c.event_id, coalesce(c.prev_mrr_units, c.before_mrr_units, 0) AS start, c.paid_before, c.others_paying,
       coalesce(c.before_mrr_units, 0) > 0 OR EXISTS (
           SELECT FROM subscription_events AS p
            WHERE p.subscription_id = c.subscription_id AND (p.mrr_units > 0 OR p.before_mrr_units > 0)
              AND (p.at, p.rank, p.seq, p.event_id) < (c.at, c.rank, c.seq, c.event_id)) AS own_paid,
       (SELECT r.event_id
          FROM subscription_events AS r
         WHERE r.subscription_id = c.subscription_id AND r.mrr_units > 0
           AND coalesce(r.prev_mrr_units, r.before_mrr_units, 0) = 0
           AND (r.at, r.rank, r.seq, r.event_id) < (c.at, c.rank, c.seq, c.event_id)
           AND EXISTS (SELECT FROM subscription_events AS p
                        WHERE p.subscription_id = r.subscription_id AND (p.mrr_units > 0 OR p.before_mrr_units > 0)
                          AND (p.at, p.rank, p.seq, p.event_id) < (r.at, r.rank, r.seq, r.event_id))
         ORDER BY r.at DESC, r.rank DESC, r.seq DESC, r.event_id DESC
         LIMIT 1) AS stretch
  FROM subscription_events AS c
 WHERE c.event_id = ANY($1::text[])
"""

# Subscriptions known to have paid: an invoice of theirs that took money (migration 0035), or a snapshot other
# than the events $2 showing them paying or its event saying they were.
PAID_EVER: Final = """
SELECT s.id
  FROM unnest($1::text[]) AS s (id)
 WHERE EXISTS (SELECT FROM subscription_invoices AS i WHERE i.subscription_id = s.id AND i.paid)
    OR EXISTS (SELECT FROM subscription_events AS e
                WHERE e.subscription_id = s.id AND e.event_id <> ALL($2::text[])
                  AND (e.mrr_units > 0 OR e.before_mrr_units > 0))
"""

# Likely renewals (a "Subscription update" PaymentIntent before its invoice): held, never dropped, until it says.
HOLD_PINGS: Final = """
UPDATE outbox SET available_at = greatest(available_at, $2)
 WHERE dedupe_key = ANY(SELECT 'sale:' || unnest($1::text[])) AND status = 'pending' AND attempts = 0
"""
# The renewals' sale pings, locked before any is dropped: a worker records its attempt on a ping only under a
# key-share lock (outbox.RECORD_ATTEMPT), so from here on none can start sending, and one that has is seen below.
LOCK_RENEWAL_PINGS: Final = """
SELECT o.id
  FROM outbox AS o
 WHERE o.dedupe_key IN (SELECT 'sale:' || d.id
                          FROM orders AS d
                          JOIN renewal_invoices AS r ON r.invoice_id = d.invoice_id
                         WHERE d.id = ANY($1::text[]))
 ORDER BY o.id
   FOR UPDATE
"""
# Then, in a statement of its own (a snapshot taken after any attempt that held the lock committed), only those
# nothing can have sent are dropped: untried and covered by no burst's attempt either. One a worker is sending is
# announced after all, and keeps its row to be marked delivered. Its edits go with a ping (migration 0030).
DROP_UNSENT_PINGS: Final = f"""
DELETE FROM outbox AS o
 WHERE o.id = ANY($1::bigint[]) AND {UNTRIED}
   AND NOT EXISTS (SELECT FROM delivery_attempts AS a WHERE o.id = ANY (a.covers))
"""
HOLD_RENEWAL_PINGS: Final = """
UPDATE outbox SET available_at = greatest(available_at, $2)
 WHERE dedupe_key IN (SELECT 'sale:' || o.id
                        FROM orders AS o
                        JOIN renewal_invoices AS r ON r.invoice_id = o.invoice_id
                       WHERE o.id = ANY($1::text[]))
   AND status = 'pending' AND attempts = 0
"""

# The posted pings of these keys whose MRR is being computed for one of these events ($3: the payload key naming it,
# bot/subscriptions/late_mrr.py), locked as queries/declines.py PINGS: `untried`, its text may be rewritten; `held`,
# nobody can be sending it (else it is edited). Found by key: the outbox's unique index, not a scan of its payloads.
COMPUTING_PINGS: Final = f"""
SELECT o.id, o.dedupe_key, o.channel, o.kind, o.payload -> $3 ->> 'event_id' AS event_id,
       (o.payload -> $3)::text AS mark, {UNTRIED} AS untried, {HELD} AS held
  FROM outbox AS o
 WHERE o.dedupe_key = ANY($1::text[]) AND o.op = 'post' AND o.payload -> $3 ->> 'event_id' = ANY($2::text[])
   FOR NO KEY UPDATE OF o  -- not a key change: a worker recording its attempt (FOR KEY SHARE) goes on
"""
REWRITE_PING: Final = "UPDATE outbox SET payload = $2::text::jsonb WHERE id = $1"


@dataclass(frozen=True, slots=True)
class ComputingPing:
    """A subscription ping posted while its MRR was being computed (see COMPUTING_PINGS); `mark` what it shows."""

    id: int
    dedupe_key: str
    channel: str
    kind: str
    event_id: str
    mark: dict[str, Any]
    untried: bool
    held: bool


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A subscription's counted MRR as one event left it, in MRR units (12,000,000 to a minor unit a month, migration
    0046), as are `before_mrr` and StateRow's `mrr`."""

    event_id: str
    subscription_id: str
    at: dt.datetime
    rank: int
    status: str
    mrr: int
    currency: str
    plan: str | None
    before_mrr: int | None = None  # what the event says the MRR was just before it (None: it does not say)
    pricing: str | None = None  # JSON: what mrr is made of, when a Discount is named by id (pricing.py)
    before_pricing: str | None = None  # JSON: the same for before_mrr
    discounts: str | None = None  # 'pending' while such Discounts are to be read (migration 0017)


@dataclass(frozen=True, slots=True)
class StateRow:
    """A subscription as its newest event shows it (the `subscriptions` row)."""

    id: str
    customer: str | None
    status: str
    mrr: int
    currency: str
    plan: str | None
    cancel_at_period_end: bool
    cancel_at: dt.datetime | None
    current_period_end: dt.datetime | None
    started_at: dt.datetime | None
    canceled_at: dt.datetime | None
    ended_at: dt.datetime | None
    livemode: bool
    last_event_id: str
    last_event_at: dt.datetime
    last_event_rank: int
    last_event_seq: int = 0  # its place among the subscription's events of that second (migration 0053)


def _columns(rows: Sequence[Any]) -> list[list[Any]]:
    return [list(column) for column in zip(*(astuple(r) for r in rows), strict=True)]


async def insert_snapshots(db: Executor, rows: Sequence[Snapshot]) -> None:
    """Record each event's snapshot once."""
    if rows:
        await db.execute(INSERT_SNAPSHOTS, *_columns(rows))


async def upsert_states(db: Executor, rows: Sequence[StateRow]) -> None:
    """Move each subscription to the state of its newest event (one row per subscription)."""
    if rows:
        await db.execute(UPSERT_STATES, *_columns(rows))


async def remember_renewals(db: Executor, invoice_ids: Sequence[str]) -> None:
    """Record invoices that renewed a subscription."""
    if invoice_ids:
        await db.execute(REMEMBER_RENEWALS, list(invoice_ids))


async def quiet_renewals(db: Executor, order_ids: Sequence[str], *, hold_until: dt.datetime | None) -> None:
    """The untried sale pings of these orders that paid a renewal: held until `hold_until`, or dropped (None)."""
    if not order_ids:
        return
    if hold_until is None:
        locked = [r["id"] for r in await db.fetch(LOCK_RENEWAL_PINGS, list(order_ids))]
        if locked:
            await db.execute(DROP_UNSENT_PINGS, locked)
    else:
        await db.execute(HOLD_RENEWAL_PINGS, list(order_ids), hold_until)


async def hold_pings(db: Executor, order_ids: Sequence[str], *, hold_until: dt.datetime) -> None:
    """Hold the untried sale pings of these orders until `hold_until` (a release may still send them earlier)."""
    if order_ids:
        await db.execute(HOLD_PINGS, list(order_ids), hold_until)


@dataclass(frozen=True, slots=True)
class Movement:
    """Where a stored snapshot stands in its subscription's ledger."""

    start: int  # the MRR it moves from (what a churn loses), in MRR units
    paid_before: bool  # paid before it, the customer's other subscriptions included (reactivation, not new)
    own_paid: bool  # the subscription itself paid before it
    stretch: str | None  # the event id where its current stretch of paying began again; None: the first one
    others_paying: bool = False  # its customer paid on another subscription just before it (added or ended)


async def movements(db: Executor, event_ids: Sequence[str]) -> dict[str, Movement]:
    """Where each of these snapshots stands in the ledger, by event id."""
    if not event_ids:
        return {}
    rows = await db.fetch(MOVEMENTS, list(event_ids))
    return {r["event_id"]: Movement(int(r["start"]), r["paid_before"], r["own_paid"], r["stretch"], r["others_paying"])
            for r in rows}


async def paid_ever(db: Executor, subscription_ids: Sequence[str], *, besides: Sequence[str]) -> set[str]:
    """Those of these subscriptions the store knows to have paid (an invoice that took money, a paying snapshot
    other than of the events `besides`)."""
    if not subscription_ids:
        return set()
    return {r["id"] for r in await db.fetch(PAID_EVER, list(subscription_ids), list(besides))}


async def renewal_totals(db: Executor, *, start: dt.datetime, end: dt.datetime) -> list[CurrencyTotal]:
    """Renewals paid in [start, end), count and revenue per currency (renewal invoices are remembered unless
    SUBSCRIPTION_RENEWALS=ping)."""
    rows = await db.fetch(RENEWAL_TOTALS, start, end)
    return [CurrencyTotal(r["currency"] or "USD", r["orders"], int(r["revenue"])) for r in rows]


async def computing_pings(db: Executor, keys: Sequence[str], event_ids: Sequence[str], *,
                          mark: str) -> list[ComputingPing]:
    """The pings of these dedupe keys still showing an MRR being computed for one of these events, locked until
    commit."""
    if not keys or not event_ids:
        return []
    rows = await db.fetch(COMPUTING_PINGS, list(keys), list(event_ids), mark)
    return [ComputingPing(**{**dict(r), "mark": json.loads(r["mark"])}) for r in rows]


async def rewrite_ping(db: Executor, ping_id: int, payload: str) -> None:
    """Replace a ping's message (JSON text) while nobody can have sent it."""
    await db.execute(REWRITE_PING, ping_id, payload)
