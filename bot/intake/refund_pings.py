"""The fold's refund events and the pings they queue: a refund in the sales channel, one per charge.refunded; a refund
that failed or was canceled in the alerts channel, one per refund (bot/intake/refunds.py keeps the money right).

A refund ping's key is the charge, its cumulative amount refunded and the event's time. The amount alone once sufficed
(each further refund raises it) but a refund that fails brings it back down: refund 10.00, it fails, refund 10.00
again, and the second charge.refunded says 10.00 as the first did. Its time tells it apart; nothing else needs the
amount to dedupe: a redelivered event is dropped by its id before the fold (webhook_logs keeps every id), and the
backfill queues nothing. A failed or canceled refund's key is its re_…: the two or three events Stripe sends for one
failure, in any order and any batches, queue one message (the outbox keeps every key).

charge.refunded carries its Charge's customer (billing_details.email, else receipt_email; a Refund names none): an
order no earlier event named the customer of (a sale told by payment_intent.succeeded alone) takes it, so a later
failure of the refund names the customer the refund ping did, and /sales counts them.

A failure can come before anything named the customer, or before the sale itself (Stripe's events come in any
order): its ping then says "unknown" and that the sale is not known. So it keeps the refund's own facts beside its
message (RECORD), and once its order learns its sale, product or customer — later in the batch or in a later one —
`tell_voids` says it again: rewritten while no one can have sent it, else edited in place once it is out, as a late
decline reason is (bot/intake/declines.py). The order's ledger names its voided refunds, hence their pings.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo

from bot.blocks.message import Message
from bot.blocks.pings import RefundView, refund_message
from bot.blocks.refund_pings import VOID_KIND, RefundVoidView, refund_void_message
from bot.intake.events import PaymentEvent
from bot.intake.refunds import PAID, take_refund, take_void
from queries import declines, intake_later, outbox
from queries.executor import Executor
from queries.intake import OrderRow

if TYPE_CHECKING:
    from bot.intake.fold import Fold

# The payload key that keeps a failed refund's own facts beside its message (`void_record`): what its ping says again
# with what the order learnt since. The senders read only `text` and `blocks`.
RECORD: Final = "void"


@dataclass(frozen=True, slots=True)
class _Recorded(Message):
    """A failed refund's message, queued with its RECORD."""

    record: dict[str, Any] = field(default_factory=dict)

    def as_payload(self) -> dict[str, Any]:
        return {**Message.as_payload(self), RECORD: self.record}


def refund(fold: Fold, index: int, e: PaymentEvent) -> None:
    """charge.refunded: the refund counted on its order, read again from Stripe, and pinged."""
    refunded = e.amount_refunded or 0
    if refunded <= 0:
        return
    order = fold.refunded_order(e)
    take_customer(order, e)
    take_refund(order, e, refunded)
    fold.reread.append(e)
    fold.queue(index, refund_key(order, e, refunded), "sales", "refund",
               refund_message(refund_view(order, e, refunded), tz=fold.tz))


def take_customer(order: OrderRow, e: PaymentEvent) -> None:
    """The refunded charge's customer, on an order that has none (see the docstring); never over one it has."""
    if order.customer_email is None and e.customer_email is not None:
        order.customer_email, order.customer_name = e.customer_email, order.customer_name or e.customer_name
        order.dirty = True


def refund_key(order: OrderRow, e: PaymentEvent, refunded: int) -> str:
    """The refund ping's dedupe key: the charge, its cumulative amount refunded and when (see the docstring)."""
    return f"refund:{e.charge_id or order.id}:{refunded}:{int(e.occurred_at.timestamp())}"


def refund_void(fold: Fold, index: int, e: PaymentEvent) -> None:
    """A refund failed or canceled: its money comes off the order's refunds, and the owner is told once."""
    order = fold.refunded_order(e)
    take_void(order, e)
    fold.reread.append(e)
    if e.refund_id is not None:  # bot/stripe/refunds.py always names it
        record = void_record(order, e, e.refund_id)
        message = refund_void_message(void_view(record, order), tz=fold.tz)
        fold.queue(index, f"{VOID_KIND}:{e.refund_id}", "alerts", VOID_KIND,
                   _Recorded(message.text, message.blocks, record))


def refund_view(order: OrderRow, e: PaymentEvent, refunded: int) -> RefundView:
    """The refund ping: the order's amount, customer and product where known, else the charge's."""
    total = order.amount_total or e.amount
    return RefundView(order_id=order.id, amount_refunded=refunded, amount_total=total, currency=e.currency or "USD",
                      customer_email=order.customer_email or e.customer_email,
                      full=total is not None and refunded >= total, occurred_at=e.occurred_at,
                      product=order.product_name or e.product)


def void_record(order: OrderRow, e: PaymentEvent, refund_id: str) -> dict[str, Any]:
    """The failed or canceled refund's own facts, as its ping shows them (JSON: RECORD): the amount, why, when, and
    the charge to find it by (its PaymentIntent when the refund names no charge)."""
    return {"refund_id": refund_id, "canceled": e.refund_status == "canceled", "amount": e.amount,
            "currency": e.currency or order.currency, "reason": e.failure_reason,
            "occurred_at": e.occurred_at.isoformat(), "charge_id": e.charge_id or e.payment_intent_id}


def void_view(record: Mapping[str, Any], order: OrderRow) -> RefundVoidView:
    """The failed or canceled refund's ping: its own facts, and the order's product and customer as the order knows
    them now (before its sale, a placeholder that knows at most the customer a charge.refunded named)."""
    return RefundVoidView(refund_id=record["refund_id"], canceled=record["canceled"], amount=record["amount"],
                          currency=record["currency"], reason=record["reason"],
                          occurred_at=dt.datetime.fromisoformat(record["occurred_at"]),
                          charge_id=record["charge_id"], product=order.product_name,
                          customer_email=order.customer_email, sale_known=order.payment_status in PAID)


def void_payload(record: Mapping[str, Any], order: OrderRow, tz: ZoneInfo) -> dict[str, Any]:
    """What the refund's ping says with what its order knows now, its RECORD kept."""
    return {**refund_void_message(void_view(record, order), tz=tz).as_payload(), RECORD: dict(record)}


async def tell_voids(conn: Executor, fold: Fold, queued: set[str]) -> None:
    """The pings of refunds failed or canceled on the orders this batch changed, told what their order knows now
    when that is more than they say (see the module's docstring). One this batch `queued` is only rewritten: no one
    else can see it yet. One queued before: rewritten while untried, edited once out (or on its way); one edit per
    state shown, so a redelivery edits nothing."""
    if not fold.notify:
        return
    orders = {f"{VOID_KIND}:{refund_id}": o for o in fold.orders.values() if o.changed()
              for refund_id in o.refund_ledger.get("voids", {})}
    for ping in await intake_later.void_pings(conn, sorted(orders)):
        record = ping.payload.get(RECORD)
        if record is None:  # queued by a release that kept no record: said as it was
            continue
        payload = void_payload(record, orders[ping.dedupe_key], fold.tz)
        if payload == ping.payload:
            continue
        if ping.untried:
            await declines.rewrite(conn, ping.id, json.dumps(payload))
        if not ping.held and ping.dedupe_key not in queued:
            shown = hashlib.sha256(json.dumps(payload["blocks"], sort_keys=True).encode()).hexdigest()[:16]
            await outbox.enqueue(conn, dedupe_key=f"{ping.dedupe_key}:told:{shown}", channel="alerts",
                                 kind=VOID_KIND, payload=payload, op="update", target_id=ping.id)
