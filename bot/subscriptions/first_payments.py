"""A subscription's first payment is a sale, even when Stripe bills it as a renewal.

A trial's first real payment comes at the trial's end as a `subscription_cycle` invoice, the billing reason of a
renewal, though it is the customer's first money: README "The first payment of a subscription is still one order
and one sale ping". So a cycle invoice renews only a subscription that had paid before it: an earlier invoice of it
that took money (`subscription_invoices`, migration 0035). Only for a subscription with no invoice kept (its
invoices paid before that migration) does a snapshot stand in: one whose event says the MRR just before it was more
than 0, or one in MRR a day or more before the invoice (PAYING_AHEAD) — MRR counts an `active` subscription whose
first charge was declined, so where invoices are kept they alone say who paid. A subscription the bot has never
seen (first seen after install) is taken at its invoice's word: a renewal. A trial converting shows no paid
invoice — its only one is the trial's $0 — so its first cycle invoice is a sale, even after a declined first try.

Decided inside the intake's batch (bot/intake/fold.py notes what each event shows, in order; renewals.py decides)
as batches of one would: what the database held before the batch, plus the batch's own earlier events.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Final

from bot.intake.events import Kind, PaymentEvent
from bot.subscriptions.facts import SubscriptionFacts
from queries import first_payments as q
from queries.executor import Executor

CYCLE = "subscription_cycle"


@dataclass(frozen=True, slots=True, order=True)
class PaidInvoice:
    """A subscription's invoice paid in a batch, and what the batch's earlier events showed of the subscription."""

    invoice_id: str
    subscription_id: str
    at: dt.datetime
    paid: bool  # money was taken (a trial's first invoice is paid at $0)
    cycle: bool  # billing_reason subscription_cycle: a renewal, if the subscription had paid before
    seen: bool = False  # an earlier event of the batch named the subscription
    invoiced: bool = False  # an earlier invoice of it in the batch (paid or at $0)
    paid_invoice: bool = False  # an earlier invoice of it in the batch took money before `at`
    paying_snapshot: bool = False  # an earlier snapshot of the batch showed it paying before `at`
    batch_snapshots: tuple[str, ...] = ()  # the batch's snapshots of it: the stored ledger is read without them


# A snapshot in MRR this long before a cycle invoice shows a subscription already paying: a trial's conversion,
# whose first payment the invoice is, comes with it (minutes apart), a renewal a whole period after the last one.
PAYING_AHEAD: Final = dt.timedelta(days=1)


def paying_before(f: SubscriptionFacts, at: dt.datetime, invoice_at: dt.datetime, *, deleted: bool) -> bool:
    """Whether a snapshot taken at `at` shows its subscription paying before an invoice paid at `invoice_at` (as
    queries/first_payments.py reads stored ones): its event says the MRR just before it was more than 0, or it was
    in MRR a day or more before the invoice."""
    before = f.gross_mrr if deleted else f.previous_mrr
    return at < invoice_at and ((before or 0) > 0 or (f.mrr > 0 and at <= invoice_at - PAYING_AHEAD))


@dataclass
class Invoices:
    """The subscription invoices paid in a batch, in the order its events are applied."""

    found: list[tuple[int, PaidInvoice]] = field(default_factory=list)

    def note(self, index: int, e: PaymentEvent) -> None:
        """Keep an invoice.paid (a SALE, or FREE at $0) that names its subscription."""
        if e.invoice_id is not None and e.subscription_id is not None and e.kind in (Kind.SALE, Kind.FREE):
            self.found.append((index, PaidInvoice(e.invoice_id, e.subscription_id, e.occurred_at,
                                                  paid=e.kind is Kind.SALE, cycle=e.billing_reason == CYCLE)))

    def payments(self, subscription_events: Sequence[tuple[int, PaymentEvent]]) -> list[PaidInvoice]:
        """Each invoice with what the batch's events before it showed of its subscription."""
        out: dict[str, PaidInvoice] = {}
        for index, p in self.found:
            sub = p.subscription_id
            shown = [paying_before(e.subscription, e.occurred_at, p.at, deleted=e.event_type.endswith(".deleted"))
                     for i, e in subscription_events
                     if i < index and e.subscription is not None and e.subscription.id == sub]
            earlier = [o for i, o in self.found if i < index and o.subscription_id == sub]
            out.setdefault(p.invoice_id, replace(
                p, seen=bool(shown) or bool(earlier), invoiced=bool(earlier),
                paid_invoice=any(o.paid and o.at < p.at for o in earlier),
                paying_snapshot=any(shown),
                batch_snapshots=tuple(sorted(e.event_id for _, e in subscription_events
                                             if e.subscription is not None and e.subscription.id == sub))))
        return list(out.values())


def _paid_before(p: PaidInvoice, stored: q.History) -> bool:
    """Whether the subscription had paid before this invoice: by its invoices where any is kept, else its snapshots."""
    if p.paid_invoice or stored.paid_invoice:
        return True
    return not (p.invoiced or stored.invoiced) and (p.paying_snapshot or stored.paying_snapshot)


async def renewing(db: Executor, invoices: Sequence[PaidInvoice]) -> list[str]:
    """The cycle invoices among these that renew a subscription that had paid before; then every invoice is
    remembered, for the invoices to come."""
    cycles = [p for p in invoices if p.cycle and p.paid]
    stored = await q.histories(db, [(p.invoice_id, p.subscription_id, p.at) for p in cycles],
                               skip=sorted({s for p in cycles for s in p.batch_snapshots}))
    renews = [p.invoice_id for p in cycles if _paid_before(p, stored[p.invoice_id])
              or not (p.seen or stored[p.invoice_id].known)]
    await q.remember(db, [(p.invoice_id, p.subscription_id, p.at, p.paid) for p in invoices])
    return sorted(renews)
