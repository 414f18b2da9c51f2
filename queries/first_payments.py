"""SQL telling a subscription's first payment from a renewal: what the bot knew of a subscription before a batch.

A `subscription_cycle` invoice renews only a subscription that had paid before it (bot/subscriptions/
first_payments.py): an earlier paid invoice of it (`subscription_invoices`, migration 0035); only for one with no
invoice kept (paid before the migration), a snapshot whose event shows it paying before (`before_mrr_units` > 0),
or one in MRR a day or more before the invoice (a trial converts minutes before its first payment; PAYING_AHEAD). The
batch's own snapshots are left out ($4): the batch has counted those of its events that came before the invoice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from queries.executor import Executor

HISTORIES: Final = """
SELECT p.invoice_id,
       EXISTS (SELECT FROM subscription_events AS e
                WHERE e.subscription_id = p.subscription_id AND e.event_id <> ALL($4::text[]))
       OR EXISTS (SELECT FROM subscription_invoices AS i
                   WHERE i.subscription_id = p.subscription_id AND i.invoice_id <> p.invoice_id) AS known,
       EXISTS (SELECT FROM subscription_invoices AS i
                WHERE i.subscription_id = p.subscription_id AND i.invoice_id <> p.invoice_id) AS invoiced,
       EXISTS (SELECT FROM subscription_invoices AS i
                WHERE i.subscription_id = p.subscription_id AND i.invoice_id <> p.invoice_id AND i.paid
                  AND i.paid_at < p.at) AS paid_invoice,
       EXISTS (SELECT FROM subscription_events AS e
                WHERE e.subscription_id = p.subscription_id AND e.event_id <> ALL($4::text[]) AND e.at < p.at
                  AND (e.before_mrr_units > 0 OR (e.mrr_units > 0 AND e.at <= p.at - interval '1 day')))
                  AS paying_snapshot
  FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS p (invoice_id, subscription_id, at)
"""

REMEMBER: Final = """
INSERT INTO subscription_invoices (invoice_id, subscription_id, paid_at, paid)
SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bool[])
ON CONFLICT (invoice_id) DO NOTHING
"""


@dataclass(frozen=True, slots=True)
class History:
    """What the database held of an invoice's subscription before it."""

    known: bool  # any snapshot or other invoice of it
    invoiced: bool  # another invoice of it was kept (paid or at $0)
    paid_invoice: bool  # an earlier invoice of it took money
    paying_snapshot: bool  # an earlier snapshot's event showed it paying


async def histories(db: Executor, invoices: Sequence[tuple[str, str, dt.datetime]], *,
                    skip: Sequence[str]) -> dict[str, History]:
    """For each (invoice, subscription, paid at): what the stored ledger and invoices, without the snapshots of
    event ids `skip`, say of its subscription before it; by invoice id."""
    if not invoices:
        return {}
    rows = await db.fetch(HISTORIES, *(list(c) for c in zip(*invoices, strict=True)), list(skip))
    return {r["invoice_id"]: History(r["known"], r["invoiced"], r["paid_invoice"], r["paying_snapshot"])
            for r in rows}


async def remember(db: Executor, invoices: Sequence[tuple[str, str, dt.datetime, bool]]) -> None:
    """Record subscription invoices paid: (invoice, subscription, paid at, whether money was taken)."""
    if invoices:
        await db.execute(REMEMBER, *(list(c) for c in zip(*invoices, strict=True)))
