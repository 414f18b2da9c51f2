"""The intake's rules, the only copy: a batch of events folded in memory over the orders they touch.

The batch intake reads every order its events touch in one query, folds the events over those rows here,
and writes the final rows back with a handful of set-based statements (`queries.intake`). A single event is
a batch of one; tests check that any split of a stream into batches leaves the same tables.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from bot.blocks.message import Message
from bot.blocks.pings import (
    DisputeView,
    FailureView,
    RefundView,
    SaleView,
    dispute_message,
    failure_message,
    refund_message,
    sale_message,
)
from bot.intake.events import Kind, PaymentEvent
from queries.intake import CheckoutRow, OrderRow, QueuedMessage

# A sale whose event is this much older than its arrival is pinged with a "late" note.
LATE_AFTER = dt.timedelta(minutes=10)

# When two events about one payment carry the same second, the further-along state wins.
_STATUS_RANK = {"pending": 0, "failed": 1, "completed": 2, "refunded": 3}

# Descriptive fields that fill in what earlier events lacked, but never overwrite a stored value.
_FILLED_IF_MISSING = ("customer_email", "customer_name", "product_name", "affiliate_id", "checkout_session_id",
                      "payment_intent_id", "invoice_id", "charge_id")


def status_moves(current: str, current_at: dt.datetime, new: str, new_at: dt.datetime) -> bool:
    """Whether an event's status replaces the stored one: newer wins; a tie goes to the further state."""
    if new_at != current_at:
        return new_at > current_at
    return _STATUS_RANK.get(new, 0) >= _STATUS_RANK.get(current, 0)


_BIGINT = range(-(2**63), 2**63)  # what PostgreSQL's bigint holds: amounts in minor units


def unstorable(e: PaymentEvent) -> str | None:
    """Why the tables cannot hold this event's values (None when they can).

    Checked per event before the fold applies it: a value that would only fail at write time could be
    overwritten by a later event in the same batch and never reach the database, so a batch would keep an
    event that, alone, fails. Checking here makes an event's fate the same in any batch."""
    for name in ("amount", "amount_refunded"):
        value = getattr(e, name)
        if value is not None and value not in _BIGINT:
            return f"{name} {value} is beyond PostgreSQL's bigint"
    texts = [v for v in (e.currency, e.customer_email, e.customer_name, e.product, e.affiliate,
                         e.checkout_session_id, e.payment_intent_id, e.invoice_id, e.charge_id, e.failure_reason,
                         e.dispute_id, e.dispute_reason, e.dispute_status, *e.refs) if v is not None]
    for text in [*texts, *e.metadata.keys(), *e.metadata.values()]:
        if "\x00" in text or (not text.isascii() and not _utf8(text)):
            return f"text {text[:40]!r} cannot be stored (NUL or a lone surrogate)"
    return None


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass
class Fold:
    """The batch's state: rows read, rows created, and everything to write back."""

    tz: ZoneInfo
    now: dt.datetime
    notify: bool = True  # False: apply the events but queue no Slack message (backfill)
    orders: dict[str, OrderRow] = field(default_factory=dict)
    ref_index: dict[str, str] = field(default_factory=dict)  # ref → order id
    new_refs: list[tuple[str, str]] = field(default_factory=list)
    checkouts: dict[str, CheckoutRow] = field(default_factory=dict)
    failures: list[tuple[Any, ...]] = field(default_factory=list)
    disputes: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    messages: list[QueuedMessage] = field(default_factory=list)

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
                self._refund(index, e)
            case Kind.DISPUTE:
                self._dispute(index, e)
            case Kind.CHECKOUT_EXPIRED:
                self._checkout(e, status="expired")

    def _find(self, refs: tuple[str, ...]) -> OrderRow | None:
        for ref in refs:  # the earliest ref that names an order wins
            if ref in self.ref_index:
                return self.orders[self.ref_index[ref]]
        return None

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
            return row, True
        moves = status_moves(row.payment_status, row.status_at, status, e.occurred_at)
        entered = moves and row.payment_status != status
        if moves:
            row.payment_status, row.status_at, row.failure_reason = status, e.occurred_at, reason
            if status == "completed":
                row.created_at = e.occurred_at
        row.amount_total = e.amount if e.amount is not None else row.amount_total
        row.currency = e.currency if e.currency is not None else row.currency
        for name, value in zip(_FILLED_IF_MISSING, (e.customer_email, e.customer_name, e.product, e.affiliate,
                                                    e.checkout_session_id, e.payment_intent_id, e.invoice_id,
                                                    e.charge_id), strict=True):
            if getattr(row, name) is None:
                setattr(row, name, value)
        row.metadata = {**row.metadata, **e.metadata}
        row.dirty = True
        self._add_refs(row.id, e.refs)
        return row, entered

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

    def _queue(self, index: int, key: str, channel: str, kind: str, message: Message, *,
               amount: int | None = None, currency: str | None = None,
               extra: dict[str, Any] | None = None) -> None:
        if not self.notify:
            return
        if any(m.dedupe_key == key for m in self.messages):
            return  # ON CONFLICT (dedupe_key) DO NOTHING, within the batch
        payload = message.as_payload() | (extra or {})
        self.messages.append(QueuedMessage(index, key, channel, kind, payload, amount, currency))

    def _sale(self, index: int, e: PaymentEvent) -> None:
        order, entered = self._upsert_order(e, status="completed")
        self._checkout(e, status="completed")
        if not entered or order.amount_total is None or order.currency is None:
            return
        view = SaleView(order_id=order.id, product=order.product_name, amount=order.amount_total,
                        currency=order.currency, customer_email=order.customer_email,
                        affiliate=order.affiliate_id, occurred_at=e.occurred_at,
                        late=self.now - e.occurred_at > LATE_AFTER)
        self._queue(index, f"sale:{order.id}", "sales", "sale", sale_message(view, tz=self.tz),
                    amount=order.amount_total, currency=order.currency,
                    extra={"sale": {"order_id": order.id, "product": order.product_name,
                                    "customer": order.customer_email}})

    def _failure(self, index: int, e: PaymentEvent) -> None:
        order, _ = self._upsert_order(e, status="failed")
        if e.checkout_session_id is not None:
            self._checkout(e, status="failed")
        self.failures.append((e.event_id, order.id, e.amount, e.currency, e.customer_email, e.failure_reason,
                              e.occurred_at))
        view = FailureView(product=order.product_name, amount=e.amount, currency=e.currency,
                           customer_email=e.customer_email, reason=e.failure_reason, occurred_at=e.occurred_at)
        self._queue(index, f"failure:{e.event_id}", "alerts", "failure", failure_message(view, tz=self.tz))

    def _refund(self, index: int, e: PaymentEvent) -> None:
        refunded = e.amount_refunded or 0
        if refunded <= 0:
            return
        order = self._find(e.refs)
        total, email, order_id = e.amount, e.customer_email, e.order_ref
        if order is not None:  # refunds are cumulative: the larger amount wins
            order_id = order.id
            order.amount_refunded = max(order.amount_refunded, refunded)
            order.refunded_at = max(order.refunded_at, e.occurred_at) if order.refunded_at else e.occurred_at
            if (order.payment_status == "completed" and order.amount_total is not None
                    and order.amount_refunded >= order.amount_total):
                order.payment_status = "refunded"
            order.dirty = True
            total, email = order.amount_total or total, order.customer_email or email
        view = RefundView(order_id=order_id, amount_refunded=refunded, amount_total=total,
                          currency=e.currency or "USD", customer_email=email,
                          full=total is not None and refunded >= total, occurred_at=e.occurred_at)
        self._queue(index, f"refund:{e.charge_id or order_id}:{refunded}", "sales", "refund",
                    refund_message(view, tz=self.tz))

    def _dispute(self, index: int, e: PaymentEvent) -> None:
        dispute_id = e.dispute_id or e.event_id
        order = self._find(e.refs)
        self.disputes.setdefault(dispute_id, (dispute_id, order.id if order else None, e.charge_id, e.amount,
                                              e.currency, e.dispute_reason, e.dispute_status, e.occurred_at))
        view = DisputeView(dispute_id=dispute_id, charge_id=e.charge_id, amount=e.amount, currency=e.currency,
                           reason=e.dispute_reason, occurred_at=e.occurred_at)
        self._queue(index, f"dispute:{dispute_id}", "alerts", "dispute", dispute_message(view, tz=self.tz))
