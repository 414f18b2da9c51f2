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
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.blocks.pings import RefundView, refund_message
from bot.blocks.refund_pings import VOID_KIND, RefundVoidView, refund_void_message
from bot.intake.events import PaymentEvent
from bot.intake.refunds import PAID, take_refund, take_void
from queries.intake import OrderRow

if TYPE_CHECKING:
    from bot.intake.fold import Fold


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
        fold.queue(index, f"{VOID_KIND}:{e.refund_id}", "alerts", VOID_KIND,
                   refund_void_message(void_view(order, e, e.refund_id), tz=fold.tz))


def refund_view(order: OrderRow, e: PaymentEvent, refunded: int) -> RefundView:
    """The refund ping: the order's amount, customer and product where known, else the charge's."""
    total = order.amount_total or e.amount
    return RefundView(order_id=order.id, amount_refunded=refunded, amount_total=total, currency=e.currency or "USD",
                      customer_email=order.customer_email or e.customer_email,
                      full=total is not None and refunded >= total, occurred_at=e.occurred_at,
                      product=order.product_name or e.product)


def void_view(order: OrderRow, e: PaymentEvent, refund_id: str) -> RefundVoidView:
    """The failed or canceled refund's ping: the order's product and customer once its sale is known (before it, a
    placeholder that knows at most the customer a charge.refunded named), and always the charge, to find it by."""
    return RefundVoidView(refund_id=refund_id, canceled=e.refund_status == "canceled", amount=e.amount,
                          currency=e.currency or order.currency, reason=e.failure_reason, occurred_at=e.occurred_at,
                          charge_id=e.charge_id or e.payment_intent_id, product=order.product_name,
                          customer_email=order.customer_email, sale_known=order.payment_status in PAID)
