"""Money given back, kept on its order whatever the order of arrival, and the 'refunded' status it decides.

Stripe retries, so a charge.refunded may arrive before the sale it refunds: it is then kept on a placeholder order
(`linked`, never counted) that the sale fills in. 'refunded' is derived, never an event's: an order is 'refunded'
wherever it would be 'completed' while its refunds reach its amount, so neither a refund's arrival nor a late
completed event (a checkout session redelivered after the refund) decides it alone.
"""

from __future__ import annotations

from bot.blocks.pings import RefundView
from bot.intake.events import PaymentEvent
from queries.intake import OrderRow

# The statuses of an order whose money was taken: a pending, failed or linked event never sets its amount.
PAID = frozenset({"completed", "refunded"})


def settle_refunded(order: OrderRow) -> None:
    """A 'completed' order whose refunds reach its amount is 'refunded'; a partial refund stays 'completed'."""
    if (order.payment_status == "completed" and order.amount_total is not None
            and 0 < order.amount_total <= order.amount_refunded):
        order.payment_status = "refunded"


def takes_amount(order: OrderRow, was: str, status: str, moves: bool) -> bool:
    """Whether an event's amount replaces the order's: only when its status moved the order (an older event's is
    stale: a session completed unpaid for the authorised amount, redelivered after a smaller capture), or the order
    has none yet; and never a pending, failed or linked amount over what was taken."""
    if order.amount_total is None:
        return True
    return moves and not (was in PAID and status not in PAID)


def placeholder(e: PaymentEvent) -> OrderRow:
    """The order a refund arriving before its sale is kept on: its ids and customer, no amount until the sale."""
    return OrderRow(id=e.order_ref, payment_status="linked", status_at=e.occurred_at, created_at=e.occurred_at,
                    currency=e.currency, customer_email=e.customer_email, customer_name=e.customer_name,
                    product_name=e.product, affiliate_id=e.affiliate, checkout_session_id=e.checkout_session_id,
                    payment_intent_id=e.payment_intent_id, invoice_id=e.invoice_id, charge_id=e.charge_id,
                    livemode=e.livemode, metadata=dict(e.metadata), is_new=True)


def take_refund(order: OrderRow, e: PaymentEvent, refunded: int) -> None:
    """Refunds are cumulative: the larger amount and the later time win."""
    order.amount_refunded = max(order.amount_refunded, refunded)
    order.refunded_at = max(order.refunded_at, e.occurred_at) if order.refunded_at else e.occurred_at
    order.currency = order.currency or e.currency
    settle_refunded(order)
    order.dirty = True


def refund_view(order: OrderRow, e: PaymentEvent, refunded: int) -> RefundView:
    """The refund ping: the order's amount, customer and product where known, else the charge's."""
    total = order.amount_total or e.amount
    return RefundView(order_id=order.id, amount_refunded=refunded, amount_total=total, currency=e.currency or "USD",
                      customer_email=order.customer_email or e.customer_email,
                      full=total is not None and refunded >= total, occurred_at=e.occurred_at,
                      product=order.product_name or e.product)
