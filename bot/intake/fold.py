"""The intake's rules, the only copy: a batch of events folded in memory over the orders they touch.

The batch intake reads every order its events touch in one query, folds the events over those rows here,
and writes the final rows back with a handful of set-based statements (`queries.intake`). A single event is
a batch of one; tests check that any split of a stream into batches leaves the same tables.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any
from zoneinfo import ZoneInfo

from bot.blocks.message import Message
from bot.blocks.pings import (
    DisputeView,
    FailureView,
    SaleView,
    dispute_message,
    failure_message,
    sale_record,
)
from bot.intake.disputes import dispute_row, linked, merged
from bot.intake.events import Kind, PaymentEvent
from bot.intake.failures import one_per_attempt
from bot.intake.merge import absorb, fill, named, settled, status_moves, survivor_of
from bot.intake.paid_checkouts import complete
from bot.intake.refund_pings import refund, refund_void
from bot.intake.refunds import placeholder, settle_refunded, takes_amount
from bot.subscriptions.first_payments import Invoices, PaidInvoice
from queries.intake import CheckoutRow, OrderRow, QueuedMessage
from queries.intake_pings import PingUpdate

# A sale whose event is this much older than its arrival is pinged with a "late" note.
LATE_AFTER = dt.timedelta(minutes=10)

@dataclass
class Fold:
    """The batch's state: rows read, rows created, and everything to write back."""

    tz: ZoneInfo
    now: dt.datetime
    notify: bool = True  # False: apply the events but queue no Slack message (backfill)
    # How long a sale ping waits for the event that names its product and customer (SALE_SETTLE_SECONDS).
    settle: dt.timedelta = dt.timedelta(0)
    orders: dict[str, OrderRow] = field(default_factory=dict)
    ref_index: dict[str, str] = field(default_factory=dict)  # ref → order id
    new_refs: list[tuple[str, str]] = field(default_factory=list)
    checkouts: dict[str, CheckoutRow] = field(default_factory=dict)
    failures: list[tuple[Any, ...]] = field(default_factory=list)
    disputes: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    reread: list[PaymentEvent] = field(default_factory=list)  # refunds (voided too), disputes: read net again
    messages: list[QueuedMessage] = field(default_factory=list)
    queued_keys: set[str] = field(default_factory=set)  # the messages' dedupe keys: a lookup, not a scan per event
    merged: dict[str, str] = field(default_factory=dict)  # order id merged away → the order it went into
    stored_losers: list[str] = field(default_factory=list)  # of those, the ones already in the database
    unstated: set[str] = field(default_factory=set)  # orders completed by a PaymentIntent that may be an invoice's
    subscription_events: list[tuple[int, PaymentEvent]] = field(default_factory=list)  # bot/subscriptions applies
    invoices: Invoices = field(default_factory=Invoices)  # subscription invoices paid, noted in order
    renewals: list[PaidInvoice] = field(default_factory=list)  # set by finish(): renewals.py tells which renew
    likely: set[str] = field(default_factory=set)  # orders paid by a "Subscription update" PaymentIntent
    paid_checkouts: list[str] = field(default_factory=list)  # set by finish(): orders whose stored session is paid

    def load(self, ref: str, row: OrderRow) -> None:
        """Register a stored order under one of its refs."""
        self.orders.setdefault(row.id, row)
        self.ref_index[ref] = row.id

    def apply(self, index: int, e: PaymentEvent) -> None:
        """Apply one event on top of everything the batch applied before it."""
        match e.kind:
            case Kind.SALE:
                self._sale(index, e)
            case Kind.PENDING:
                self._upsert_order(e, status="pending")
                self._checkout(e, status="pending")
            case Kind.FAILURE:
                self._failure(index, e)
            case Kind.REFUND:
                refund(self, index, e)
            case Kind.REFUND_VOID:  # the money came back: the refunded amount drops again, and the owner is told
                refund_void(self, index, e)
            case Kind.DISPUTE:
                self._dispute(index, e)
            case Kind.DISPUTE_SETTLED:  # no ping: its status is kept, the order's Stripe figures read again
                self._dispute_row(e)
                self.reread.append(e)
            case Kind.CHECKOUT_EXPIRED:
                self._checkout(e, status="expired")
            case Kind.LINK:  # ids and a customer: fills (or merges) orders, or keeps them for the sale to come
                self._upsert_order(e, status="linked")
            case Kind.FREE:  # a trial or a 100% coupon: no order, no ping (webhook_logs keeps the event)
                self.invoices.note(index, e)
            case Kind.SUBSCRIPTION:  # no order: bot/subscriptions/apply.py stores it after the orders
                self.subscription_events.append((index, e))

    def resolve(self, order_id: str) -> str:
        """The order an id names now, following merges."""
        while order_id in self.merged:
            order_id = self.merged[order_id]
        return order_id

    def _find(self, refs: tuple[str, ...]) -> OrderRow | None:
        """The order these refs name; several orders named by one event are one payment, merged here."""
        ids = list(dict.fromkeys(self.ref_index[ref] for ref in refs if ref in self.ref_index))
        if not ids:
            return None
        rows = [self.orders[i] for i in ids]
        survivor = survivor_of(rows)
        for row in rows:
            if row is not survivor:
                self._merge(survivor, row)
        return survivor

    def _merge(self, survivor: OrderRow, loser: OrderRow) -> None:
        absorb(survivor, loser)
        for ref, order_id in self.ref_index.items():
            if order_id == loser.id:
                self.ref_index[ref] = survivor.id
        self.new_refs = [(ref, survivor.id if o == loser.id else o) for ref, o in self.new_refs]
        del self.orders[loser.id]
        self.merged[loser.id] = survivor.id
        if not loser.is_new:
            self.stored_losers.append(loser.id)
        if loser.id in self.unstated:
            self.unstated.add(survivor.id)

    def _add_refs(self, order_id: str, refs: tuple[str, ...]) -> None:
        for ref in refs:  # INSERT_REFS: refs already taken keep their order
            if ref not in self.ref_index:
                self.ref_index[ref] = order_id
                self.new_refs.append((ref, order_id))

    def _upsert_order(self, e: PaymentEvent, *, status: str) -> tuple[OrderRow, bool]:
        reason = e.failure_reason if status == "failed" else None
        row = self._find(e.refs)
        if row is None:
            row = OrderRow(id=e.order_ref, payment_status=status, status_at=e.occurred_at,
                           created_at=e.occurred_at, amount_total=e.amount, currency=e.currency,
                           customer_email=e.customer_email, customer_name=e.customer_name, product_name=e.product,
                           affiliate_id=e.affiliate, checkout_session_id=e.checkout_session_id,
                           payment_intent_id=e.payment_intent_id, invoice_id=e.invoice_id, charge_id=e.charge_id,
                           failure_reason=reason, livemode=e.livemode, metadata=dict(e.metadata), is_new=True)
            self.orders[row.id] = row
            self._add_refs(row.id, e.refs)
            return row, status != "linked"
        was = row.payment_status
        moves = status_moves(was, row.status_at, status, e.occurred_at)
        if moves:
            row.payment_status, row.status_at, row.failure_reason = status, e.occurred_at, reason
            if status == "completed" or was == "linked":
                row.created_at = e.occurred_at
        fill(row, e, amount=e.amount is not None and takes_amount(row, was, status, moves),
             paid=moves and status == "completed")
        settle_refunded(row)  # a completed event never undoes a full refund, whatever the order of arrival
        self._add_refs(row.id, e.refs)
        return row, moves and was != status

    def _checkout(self, e: PaymentEvent, *, status: str) -> None:
        if e.checkout_session_id is None:
            return
        completed_at = e.occurred_at if status == "completed" else None
        cur = self.checkouts.get(e.checkout_session_id)
        if cur is None:  # the batch's first sight; UPSERT_CHECKOUTS merges it with the stored row
            self.checkouts[e.checkout_session_id] = CheckoutRow(
                e.checkout_session_id, status, e.amount, e.currency, e.customer_email, dict(e.metadata),
                e.session_created_at or e.occurred_at, completed_at, e.occurred_at)
            return
        if e.occurred_at >= cur.status_at:
            cur.status = status
        cur.completed_at = cur.completed_at or completed_at
        cur.status_at = max(cur.status_at, e.occurred_at)
        cur.amount_total = e.amount if e.amount is not None else cur.amount_total
        cur.currency = e.currency if e.currency is not None else cur.currency
        cur.customer_email = cur.customer_email or e.customer_email
        cur.metadata = {**cur.metadata, **e.metadata}

    def queue(self, index: int, key: str, channel: str, kind: str, message: Message | None) -> None:
        """Queue a Slack message for event `index` once per dedupe key (the outbox drops a key it holds already)."""
        if not self.notify:
            return
        if key in self.queued_keys:
            return  # ON CONFLICT (dedupe_key) DO NOTHING, within the batch
        self.queued_keys.add(key)
        payload = message.as_payload() if message is not None else {}
        self.messages.append(QueuedMessage(index, key, channel, kind, payload))

    def _sale(self, index: int, e: PaymentEvent) -> None:
        order, entered = self._upsert_order(e, status="completed")
        self._checkout(e, status="completed")
        self.invoices.note(index, e)  # a renewal's ping is SUBSCRIPTION_RENEWALS's (bot/subscriptions/renewals.py)
        if not entered or order.amount_total is None or order.currency is None:
            return
        if e.invoice_unstated:  # basil+: this PaymentIntent may be an invoice's, whose event may still come
            self.unstated.add(order.id)
        if e.renewal_likely:
            self.likely.add(order.id)
        self.queue(index, f"sale:{order.id}", "sales", "sale", None)  # filled in by finish()

    def finish(self) -> list[PingUpdate]:
        """Settle the batch for writing: merged ids resolved, sale pings made from the orders as the batch leaves
        them; returns the sale pings of every order it touched, for those still pending in the outbox."""
        self.failures, repeated = one_per_attempt([(f[0], self.resolve(f[1]), *f[2:]) for f in self.failures])
        self.messages = [m for m in self.messages
                         if not (m.kind == "failure" and m.dedupe_key.removeprefix("failure:") in repeated)]
        self.disputes = linked(self.disputes, self.ref_index, self.resolve)
        self.renewals = self.invoices.payments(self.subscription_events)
        self.paid_checkouts = complete(self.orders.values(), self.checkouts)  # a manual capture's session too
        payloads: dict[str, dict[str, Any]] = {}  # each order's ping made once, for its message and its update
        self.messages = self._sale_messages(payloads)
        return [PingUpdate(f"sale:{o.id}", payloads.get(o.id) or self.sale_payload(o), o.amount_total, o.currency,
                           settled(o))
                for o in self.orders.values()
                if (o.is_new or o.dirty) and o.amount_total is not None and o.currency is not None]

    def likely_renewals(self) -> list[str]:
        """Orders paid by a "Subscription update" PaymentIntent whose invoice has not said what it was yet."""
        return sorted({o for o in map(self.resolve, self.likely) if not settled(self.orders[o])})

    def losers(self) -> list[tuple[str, str]]:
        """(stored order merged away, the order it went into)."""
        return [(loser, self.resolve(loser)) for loser in self.stored_losers]

    def _sale_messages(self, payloads: dict[str, dict[str, Any]]) -> list[QueuedMessage]:
        """The batch's messages with one sale ping per order left after merges, each filled in and timed."""
        out: list[QueuedMessage] = []
        seen: set[str] = set()
        for m in self.messages:
            if m.kind != "sale":
                out.append(m)
                continue
            order = self.orders[self.resolve(m.dedupe_key.removeprefix("sale:"))]
            if order.id in seen:
                continue
            seen.add(order.id)
            # A ping that would lack its product or customer, or may be an invoice's PaymentIntent, waits for the
            # checkout session or invoice to name it (PingUpdate releases it early when one does).
            now = settled(order) or (named(order) and order.id not in self.unstated)
            payloads[order.id] = self.sale_payload(order)
            out.append(replace(m, dedupe_key=f"sale:{order.id}", payload=payloads[order.id],
                               amount=order.amount_total, currency=order.currency,
                               delay=0.0 if now else self.settle.total_seconds()))
        return out

    def sale_payload(self, order: OrderRow) -> dict[str, Any]:
        """The sale ping of an order as it stands: its fields, not the message. Most sales of a burst are only
        summarised, so the delivery worker renders the ping (`bot.blocks.pings.sale_ping`) when it posts it."""
        view = SaleView(order_id=order.id, product=order.product_name, amount=order.amount_total or 0,
                        currency=order.currency or "USD", customer_email=order.customer_email,
                        affiliate=order.affiliate_id, occurred_at=order.created_at,
                        late=self.now - order.created_at > LATE_AFTER)
        return {"sale": sale_record(view)}

    def _failure(self, index: int, e: PaymentEvent) -> None:
        order, _ = self._upsert_order(e, status="failed")
        if e.checkout_session_id is not None:
            self._checkout(e, status="failed")
        if e.invoice_attempt:  # its invoice.payment_failed tells this attempt (bot/intake/failures.py)
            return
        self.failures.append((e.event_id, order.id, e.amount, e.currency, e.customer_email, e.failure_reason,
                              e.occurred_at, e.charge_id, e.event_type, e.invoice_id, e.customer_id))
        view = FailureView(product=order.product_name, amount=e.amount, currency=e.currency,
                           customer_email=e.customer_email, reason=e.failure_reason, occurred_at=e.occurred_at)
        self.queue(index, f"failure:{e.event_id}", "alerts", "failure", failure_message(view, tz=self.tz))

    def refunded_order(self, e: PaymentEvent) -> OrderRow:
        """The order a refund or a failed refund is about; before its sale (a retried sale event), a placeholder
        the sale fills in."""
        order = self._find(e.refs)
        if order is None:
            order = self.orders[e.order_ref] = placeholder(e)
        self._add_refs(order.id, e.refs)
        return order

    def _dispute_row(self, e: PaymentEvent) -> OrderRow | None:
        """The dispute's row as this event tells it, merged with what the batch knew (UPSERT_DISPUTES stores it)."""
        order = self._find(e.refs)
        dispute_id = e.dispute_id or (e.event_id if e.kind is Kind.DISPUTE else None)
        if dispute_id is not None:
            row = dispute_row(e, dispute_id, order.id if order else None)
            self.disputes[dispute_id] = merged(self.disputes[dispute_id], row) if dispute_id in self.disputes else row
        return order

    def _dispute(self, index: int, e: PaymentEvent) -> None:
        dispute_id = e.dispute_id or e.event_id
        order = self._dispute_row(e)
        self.reread.append(e)
        view = DisputeView(dispute_id=dispute_id, charge_id=e.charge_id, amount=e.amount, currency=e.currency,
                           reason=e.dispute_reason, occurred_at=e.occurred_at,
                           product=order.product_name if order is not None else e.product,
                           customer_email=(order.customer_email if order is not None else None) or e.customer_email)
        self.queue(index, f"dispute:{dispute_id}", "alerts", "dispute", dispute_message(view, tz=self.tz))
